function parseSettings(text) {
  const settings = JSON.parse(text);
  return { theme: settings.theme || 'light' };
}

module.exports = { parseSettings };
