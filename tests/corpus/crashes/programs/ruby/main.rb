# A checkout service's entry point: `ruby main.rb BUG VARIANT CART_ID VALUE`.
# BUG a: a quantity is not a number (Kernel#Integer raises ArgumentError) in cart.rb.
# BUG b: a price list is not JSON (JSON::ParserError from the json library) in pricing.rb.
# VARIANT single: the error escapes as it is; chained: the app raises its own error while
# rescuing it, so Ruby prints the cause after it.
require_relative "cart"

bug, variant, cart_id, value = ARGV
cart = Cart.new(Integer(cart_id))
if bug == "a"
  cart.add_line(value, variant == "chained")
else
  cart.reprice(value, variant == "chained")
end
