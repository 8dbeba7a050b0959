import unittest

from orders import total


class Total(unittest.TestCase):
    def test_number(self):
        self.assertEqual(total(5, "3"), 15)

    def test_blank_is_one(self):
        self.assertEqual(total(5, " "), 5)
