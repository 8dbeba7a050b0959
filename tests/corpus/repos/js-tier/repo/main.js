const { price } = require('./price');

console.log(price(100, process.argv[2] || 'basic'));
