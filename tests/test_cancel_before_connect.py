"""
A waiter cancelled after the core chose it to open a connection, but
before its connect began, must not be handed a connection later and must
not keep its slot.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred

from tests.support.fakes import PoolTestCase, settle


class CancelBeforeConnectTests(PoolTestCase):
    def test_cancelledBetweenChoiceAndConnect(self) -> None:
        """
        Raising the global limit lets two waiters of two keys connect in one
        go.  The first connects synchronously and its caller, from its
        callback, cancels the second before the pool started the second's
        connect: the second fails with L{CancelledError} only, its slot is
        free, and nothing is handed to its fired Deferred.
        """
        self.makePool(maxConnections=1)
        first = self.getNow()
        a, b = self.endpointFor(), self.endpointFor()
        waitingA = self.get(("http", b"a", 80), a)
        waitingB: Deferred[Any] = self.get(("http", b"b", 80), b)
        self.assertEqual(self.counts(), (0, 1, 0, 2))
        handed: list[Any] = []

        def gotA(lease: Any) -> Any:
            handed.append(lease)
            waitingB.cancel()
            return lease

        waitingA.addCallback(gotA)
        self.pool.maxConnections = 3
        self.assertEqual(len(handed), 1)
        self.failureResultOf(waitingB, CancelledError)
        # b's connect never started, and its slot went back.
        self.assertEqual(b.connects, 0)
        stats = self.stats()
        self.assertEqual((stats.inUse, stats.connecting, stats.waiting), (2, 0, 0))
        self.assertEqual(stats.total, 2)
        self.assertNotIn(("http", b"b", 80), stats.perKey)
        # Everything still works and ends at rest.
        self.roundTrip(first)
        self.roundTrip(handed[0], a)
        settle(self.clock)
        self.assertEqual(self.counts(), (2, 0, 0, 0))
