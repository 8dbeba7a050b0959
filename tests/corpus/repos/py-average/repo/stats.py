def average(values):
    total = sum(values)
    return total / len(values)


def report(values):
    return f"average {average(values):.1f} of {len(values)}"
