const TIERS = {
  gold: { factor: 0.8 },
  silver: { factor: 0.9 },
};

function lookupTier(plan) {
  return TIERS[plan];
}

module.exports = { lookupTier };
