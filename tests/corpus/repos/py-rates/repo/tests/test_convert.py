import unittest

from shop.convert import to_eur


class ToEur(unittest.TestCase):
    def test_lower_case_codes(self):
        self.assertEqual(to_eur(10, "usd"), 9.2)

    def test_upper_case_codes(self):
        self.assertEqual(to_eur(10, "GBP"), 11.7)
