// A checkout service's entry point: `java com.shop.Main BUG VARIANT CART_ID VALUE`.
// BUG a: a quantity is not a number (Integer.parseInt throws in java.base).
// BUG b: a SKU has no price (Objects.requireNonNull throws in java.base).
// VARIANT single: the exception escapes as it is; chained: the app wraps it (Caused by:).
package com.shop;

public final class Main {
    public static void main(String[] args) {
        boolean chained = args[1].equals("chained");
        Cart cart = new Cart(Long.parseLong(args[2]));
        if (args[0].equals("a")) {
            cart.addLine(args[3], chained);
        } else {
            cart.total(args[3], chained);
        }
    }
}
