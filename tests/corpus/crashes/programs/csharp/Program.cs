// A checkout service's entry point: `mono --debug shop.exe BUG VARIANT CART_ID VALUE`.
// BUG a: a quantity is not a number (int.Parse throws FormatException in the class library).
// BUG b: a SKU has no price (the Dictionary indexer throws KeyNotFoundException).
// VARIANT single: the exception escapes as it is; chained: the app wraps it as an inner
// exception (` ---> `).
using System;

namespace Shop
{
    public static class Program
    {
        public static void Main(string[] args)
        {
            bool chained = args[1] == "chained";
            var cart = new Cart(long.Parse(args[2]));
            if (args[0] == "a")
            {
                cart.AddLine(args[3], chained);
            }
            else
            {
                cart.Total(args[3], chained);
            }
        }
    }
}
