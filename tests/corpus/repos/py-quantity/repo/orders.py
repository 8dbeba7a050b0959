def parse_quantity(text):
    """A quantity from a form field; a blank field means one."""
    return int(text.strip())


def total(price, field):
    return price * parse_quantity(field)
