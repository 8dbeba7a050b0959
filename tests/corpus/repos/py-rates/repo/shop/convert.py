from shop.rates import RATES_TO_EUR


def to_eur(amount, currency):
    """Converts an amount in `currency` (any case) to euros."""
    code = currency.strip()
    rate = RATES_TO_EUR[code]
    return round(amount * rate, 2)
