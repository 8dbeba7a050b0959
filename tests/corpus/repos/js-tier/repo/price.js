const { lookupTier } = require('./tiers');

function price(amount, plan) {
  const tier = lookupTier(plan);
  return Math.round(amount * tier.factor * 100) / 100;
}

module.exports = { price };
