// A checkout service's entry point: `node main.js BUG VARIANT CART_ID VALUE`.
// BUG a: the cart payload is not JSON (JSON.parse throws a SyntaxError).
// BUG b: a SKU has no price (a TypeError reading a property of undefined).
// VARIANT single: the error escapes as it is; chained: the app wraps it ({ cause }).
'use strict';
const cart = require('./cart');

const [bug, variant, cartId, value] = process.argv.slice(2);
const chained = variant === 'chained';
if (bug === 'a') {
  cart.checkout(Number(cartId), value, chained);
} else {
  cart.total(Number(cartId), value, chained);
}
