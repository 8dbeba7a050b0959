const { parseSettings } = require('./settings');

console.log(parseSettings(''));
