'use strict';

const PRICES = { 'A-1': { amount: 950 }, 'B-2': { amount: 1200 } };

class PricingError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'PricingError';
  }
}

function amountOf(sku) {
  return PRICES[sku].amount;
}

function priceOf(sku, cartId, chained) {
  if (!chained) {
    return amountOf(sku);
  }
  try {
    return amountOf(sku);
  } catch (error) {
    throw new PricingError(`no price for ${sku} in cart ${cartId}`, { cause: error });
  }
}

module.exports = { priceOf };
