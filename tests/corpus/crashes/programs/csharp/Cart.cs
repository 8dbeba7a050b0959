using System;

namespace Shop
{
    public class Cart
    {
        private readonly long id;

        public Cart(long id)
        {
            this.id = id;
        }

        private static int Quantity(string text)
        {
            return int.Parse(text);
        }

        public int AddLine(string text, bool chained)
        {
            if (!chained)
            {
                return Quantity(text);
            }
            try
            {
                return Quantity(text);
            }
            catch (FormatException e)
            {
                throw new InvalidOperationException($"cart {id} has an unreadable line", e);
            }
        }

        public decimal Total(string sku, bool chained)
        {
            var pricing = new Pricing();
            if (!chained)
            {
                return pricing.PriceOf(sku);
            }
            try
            {
                return pricing.PriceOrFail(sku);
            }
            catch (PricingException e)
            {
                throw new ApplicationException($"checkout of cart {id} failed", e);
            }
        }
    }
}
