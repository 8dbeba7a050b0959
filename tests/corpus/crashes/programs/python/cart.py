"""The cart: reads what the client sent and prices it."""
import json

import pricing


class CartError(Exception):
    """A cart that cannot be checked out."""


def load(payload):
    return json.loads(payload)


def checkout(cart_id, payload, chained):
    if not chained:
        lines = load(payload)
    else:
        try:
            lines = load(payload)
        except json.JSONDecodeError as error:
            raise CartError(f"cart {cart_id} is unreadable") from error
    return sum(line["qty"] for line in lines)


def apply_promotion(cart_id, day, chained):
    rate = pricing.promotion(day, chained)
    return cart_id, rate
