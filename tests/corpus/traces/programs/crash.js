// An inventory lookup that throws on an unknown item.
function stockOf(inventory, item) {
  if (!(item in inventory)) {
    throw new Error(`unknown item ${item}`);
  }
  return inventory[item];
}

function reserve(item) {
  return stockOf({ apple: 3 }, item) - 1;
}

console.log("2026-01-01T12:00:03.000Z info inventory starting");
try {
  reserve("pear");
} catch (error) {
  console.error("2026-01-01T12:00:03.100Z error reserve failed:", error.stack);
}
reserve(process.argv[2] || "plum");
