# Two different bugs on one line: a bad number (ValueError) or a zero divisor (ZeroDivisionError).
import sys


def ratio(numerator, denominator):
    return int(numerator) / int(denominator)


print(ratio(sys.argv[1], sys.argv[2]))
