import unittest

from stats import average, report


class Average(unittest.TestCase):
    def test_values(self):
        self.assertEqual(average([1, 2, 3]), 2)

    def test_no_values(self):
        self.assertEqual(report([]), "average 0.0 of 0")
