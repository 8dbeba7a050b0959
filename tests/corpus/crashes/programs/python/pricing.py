"""Prices and promotions."""
from datetime import datetime

PROMOTIONS = {"2026-11-27": 0.2}


def promotion_day(text):
    return datetime.strptime(text, "%Y-%m-%d")


def promotion(day, chained):
    if not chained:
        return PROMOTIONS.get(promotion_day(day).date().isoformat(), 0.0)
    try:
        parsed = promotion_day(day)
    except ValueError:
        # The fallback looks the raw text up, and fails while handling the first error.
        return PROMOTIONS[day]
    return PROMOTIONS.get(parsed.date().isoformat(), 0.0)
