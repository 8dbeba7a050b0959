const test = require('node:test');
const assert = require('node:assert');
const { parseSettings } = require('../settings');

test('reads the theme', () => assert.deepStrictEqual(parseSettings('{"theme":"dark"}'), { theme: 'dark' }));
test('no settings are the defaults', () => assert.deepStrictEqual(parseSettings(''), { theme: 'light' }));
