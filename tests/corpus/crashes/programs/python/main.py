"""A checkout service's entry point: `main.py BUG VARIANT CART_ID VALUE`.

BUG a: the cart payload a client sent is not JSON (json.decoder raises).
BUG b: a promotion day is not a date (_strptime raises).
VARIANT single: the error escapes as it is; chained: the app wraps or handles it and fails again.
"""
import sys

import cart


def main(argv):
    bug, variant, cart_id, value = argv
    chained = variant == "chained"
    if bug == "a":
        cart.checkout(int(cart_id), value, chained)
    else:
        cart.apply_promotion(int(cart_id), value, chained)


if __name__ == "__main__":
    main(sys.argv[1:])
