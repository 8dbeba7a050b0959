require_relative 'lib/invoice'

puts Invoice.new([{ price: 3, qty: 2 }, { qty: 1 }]).total
