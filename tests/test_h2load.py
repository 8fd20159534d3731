"""
L{LearntLimit}: what an HTTP/2 server's refusals say of the streams it
takes at once.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from pooled_http._h2load import LearntLimit


class LearntLimitTests(SynchronousTestCase):
    """
    Refusals lower the limit to the older streams still open; each round
    of answers raises it by one, until the settings rule again.
    """

    def test_settingsRuleUntilRefused(self) -> None:
        """
        Before any refusal the advertised limit applies, and answers
        change nothing.
        """
        limit = LearntLimit()
        self.assertEqual(limit.applied(100), 100)
        self.assertFalse(limit.answered(100))
        self.assertIsNone(limit.value)

    def test_refusalWhileBusy(self) -> None:
        """
        A refusal with older streams open takes their number; a later one
        with fewer open lowers it, with more does not raise it.
        """
        limit = LearntLimit()
        self.assertTrue(limit.refused(7))
        self.assertEqual(limit.applied(100), 7)
        self.assertTrue(limit.refused(5))
        self.assertTrue(limit.refused(9))
        self.assertEqual(limit.applied(100), 5)
        self.assertEqual(limit.applied(3), 3)

    def test_refusalWithNothingOpen(self) -> None:
        """
        A refusal with no older stream open says nothing of load.
        """
        limit = LearntLimit()
        self.assertFalse(limit.refused(0))
        self.assertIsNone(limit.value)

    def test_roundsOfAnswers(self) -> None:
        """
        Each round of as many answers as the limit allows one stream more;
        reaching the advertised limit forgets what was learnt.
        """
        limit = LearntLimit()
        limit.refused(2)
        self.assertEqual(
            [limit.answered(4) for _ in range(5)], [False, True, False, False, True]
        )
        self.assertEqual(limit.value, None)
        self.assertEqual(limit.applied(4), 4)

    def test_refusalRestartsTheRound(self) -> None:
        """
        Answers counted before a refusal do not count towards the next
        raise.
        """
        limit = LearntLimit()
        limit.refused(3)
        limit.answered(100)
        limit.answered(100)
        limit.refused(3)
        self.assertEqual([limit.answered(100) for _ in range(3)], [False, False, True])
        self.assertEqual(limit.value, 4)
