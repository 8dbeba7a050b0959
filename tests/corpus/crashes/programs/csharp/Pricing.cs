using System;
using System.Collections.Generic;

namespace Shop
{
    public class PricingException : Exception
    {
        public PricingException(string message, Exception inner) : base(message, inner)
        {
        }
    }

    public class Pricing
    {
        private static readonly Dictionary<string, decimal> Prices =
            new Dictionary<string, decimal> { ["A-1"] = 9.5m, ["B-2"] = 12.0m };

        public decimal PriceOf(string sku)
        {
            return Prices[sku];
        }

        public decimal PriceOrFail(string sku)
        {
            try
            {
                return PriceOf(sku);
            }
            catch (KeyNotFoundException e)
            {
                throw new PricingException($"price list has no {sku}", e);
            }
        }
    }
}
