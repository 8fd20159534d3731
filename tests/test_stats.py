"""
L{pooled_http.stats.percentiles}: the one nearest-rank definition the
command line and the benchmarks report latencies with.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pooled_http.stats import percentiles


class PercentilesTests(SynchronousTestCase):
    """
    The C{p}th percentile of C{n} values is the value of rank
    C{ceil(p * n / 100)}, the smallest value for C{p = 0}.
    """

    def test_hundredValues(self) -> None:
        """
        Of 1..100, the C{p}th percentile is C{p}, for every whole C{p}.
        """
        points = list(range(1, 101))
        self.assertEqual(percentiles(range(100, 0, -1), points), points)

    def test_evenCount(self) -> None:
        """
        For an even count the median is the lower of the two middle values,
        never their mean; the order of the sample does not matter.
        """
        self.assertEqual(percentiles([4.0, 1.0, 3.0, 2.0], (50,)), [2.0])
        self.assertEqual(percentiles([10, 20], (50, 51, 100)), [10, 20, 20])
        self.assertEqual(percentiles(range(1, 7), (50,)), [3])

    def test_oddCount(self) -> None:
        """
        For an odd count the median is the middle value.
        """
        self.assertEqual(percentiles([5, 1, 3], (50,)), [3])
        self.assertEqual(percentiles(range(1, 6), (50,)), [3])

    def test_ends(self) -> None:
        """
        The 0th percentile is the smallest value, the 100th the largest, and
        one value is every percentile of itself.
        """
        self.assertEqual(percentiles([3, 1, 2], (0, 100)), [1, 3])
        self.assertEqual(percentiles([7.0], (0, 1, 99, 100)), [7.0] * 4)

    def test_wholeRank(self) -> None:
        """
        A rank that is a whole number is taken as it is: computing
        C{p / 100 * n} would give C{7.000000000000001} for C{p = 7} and
        C{n = 100}, and the rank above.
        """
        self.assertEqual(percentiles(range(1, 101), (7, 14, 28, 57)), [7, 14, 28, 57])

    def test_empty(self) -> None:
        """
        An empty sample has no percentiles: L{None} for each point asked.
        """
        self.assertEqual(percentiles([], (50, 99)), [None, None])
        self.assertEqual(percentiles(iter(()), ()), [])

    def test_badPoint(self) -> None:
        """
        A point outside 0..100 is a L{ValueError} naming it.
        """
        for bad in (-1, 100.5, 150):
            error = self.assertRaises(ValueError, percentiles, [1.0], (50, bad))
            self.assertIn(repr(bad), str(error))
