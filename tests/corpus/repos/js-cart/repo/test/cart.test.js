const test = require('node:test');
const assert = require('node:assert');
const { total } = require('../cart');

test('sums the items', () => assert.strictEqual(total({ items: [{ price: 2, qty: 3 }] }), 6));
test('a cart without items is empty', () => assert.strictEqual(total({ id: 7 }), 0));
