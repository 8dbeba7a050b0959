const test = require('node:test');
const assert = require('node:assert');
const { price } = require('../price');

test('gold is 20% off', () => assert.strictEqual(price(100, 'gold'), 80));
test('an unknown plan pays full price', () => assert.strictEqual(price(100, 'basic'), 100));
