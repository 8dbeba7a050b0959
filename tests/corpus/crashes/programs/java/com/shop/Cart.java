package com.shop;

final class Cart {
    private final long id;

    Cart(long id) {
        this.id = id;
    }

    int quantity(String text) {
        return Integer.parseInt(text.trim());
    }

    int addLine(String quantityText, boolean chained) {
        if (!chained) {
            return quantity(quantityText);
        }
        try {
            return quantity(quantityText);
        } catch (NumberFormatException e) {
            throw new IllegalStateException("cart " + id + " has an unreadable line", e);
        }
    }

    double total(String sku, boolean chained) {
        Pricing pricing = new Pricing();
        if (!chained) {
            return pricing.priceOf(sku);
        }
        try {
            return pricing.priceOrFail(sku);
        } catch (PricingException e) {
            throw new RuntimeException("checkout of cart " + id + " failed", e);
        }
    }
}
