'use strict';
const pricing = require('./pricing');

function parseCart(payload) {
  return JSON.parse(payload);
}

function checkout(cartId, payload, chained) {
  if (!chained) {
    return parseCart(payload);
  }
  try {
    return parseCart(payload);
  } catch (error) {
    throw new Error(`cart ${cartId} is unreadable`, { cause: error });
  }
}

function total(cartId, sku, chained) {
  return pricing.priceOf(sku, cartId, chained);
}

module.exports = { checkout, total };
