# logging.exception: a log prefix on the first line, then the traceback.
import logging

logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
log = logging.getLogger("payments")


def charge(amount):
    if amount < 0:
        raise ValueError(f"negative amount: {amount}")
    return amount


log.info("payment service ready")
for amount in (10, -5):
    try:
        charge(amount)
    except ValueError:
        log.exception("charge failed for order 4711")
log.info("payment service idle")
