# A small shop service whose discount code divides by zero.
import sys


def discount(total, parts):
    return total / parts


def checkout(cart):
    return discount(sum(cart), len(cart) - len(cart))


print("2026-01-01 12:00:00,000 INFO shop starting", flush=True)
checkout([int(arg) for arg in sys.argv[1:]] or [3, 4])
