package com.shop;

import java.util.Map;
import java.util.Objects;

final class Pricing {
    private static final Map<String, Double> PRICES = Map.of("A-1", 9.5, "B-2", 12.0);

    double priceOf(String sku) {
        return Objects.requireNonNull(PRICES.get(sku), "no price for " + sku);
    }

    double priceOrFail(String sku) {
        try {
            return priceOf(sku);
        } catch (NullPointerException e) {
            throw new PricingException("price list has no " + sku, e);
        }
    }
}

final class PricingException extends RuntimeException {
    PricingException(String message, Throwable cause) {
        super(message, cause);
    }
}
