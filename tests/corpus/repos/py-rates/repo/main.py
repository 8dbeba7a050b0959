import sys

from shop.convert import to_eur

print(to_eur(10, sys.argv[1] if len(sys.argv) > 1 else "usd"))
