"""
What a pool tells about itself, driven by a L{Clock}: C{stats()} in every
state, closes counted by reason, C{repr()}, and the log events.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionRefusedError
from twisted.logger import globalLogPublisher

from pooled_http.errors import ResponseTimeoutError
from pooled_http.stats import CloseReason, KeyStats, PoolStats
from tests.support.fakes import KEY, OTHER_KEY, PoolTestCase, makeRequest, settle


class StatsTests(PoolTestCase):
    """
    C{stats()} and C{repr()}.
    """

    def test_everyState(self) -> None:
        """
        Totals and per-key counts for idle, in use, connecting and waiting.
        """
        self.makePool(maxConnectionsPerHost=2, maxPersistentPerHost=2)
        c1 = self.getNow()
        self.getNow()
        self.roundTrip(c1)
        c3 = self.getNow()
        self.assertTrue(c3.reused)
        self.roundTrip(c3)
        other = self.endpointFor(autoConnect=False)
        connecting = [self.get(OTHER_KEY, other), self.get(OTHER_KEY, other)]
        waiter = self.get(OTHER_KEY, other)
        s = self.stats()
        self.assertIsInstance(s, PoolStats)
        self.assertEqual((s.idle, s.inUse, s.connecting, s.waiting), (1, 1, 2, 1))
        self.assertEqual(s.total, 4)
        self.assertEqual(s.opened, 2)
        self.assertEqual(s.reused, 1)
        self.assertEqual(
            s.perKey[KEY],
            KeyStats(idle=1, inUse=1, connecting=0, waiting=0, opened=2, reused=1),
        )
        self.assertEqual(
            s.perKey[OTHER_KEY],
            KeyStats(idle=0, inUse=0, connecting=2, waiting=1, opened=0, reused=0),
        )
        other.attempts[0].fail(ConnectionRefusedError())
        settle(self.clock)
        s = self.stats()
        self.assertEqual(s.failed, 1)
        self.assertEqual((s.connecting, s.waiting), (2, 0))
        self.assertNoResult(waiter)
        for d in list(other.attempts):
            if not d.done:
                d.fail(ConnectionRefusedError())
        settle(self.clock)
        for d in connecting + [waiter]:
            self.failureResultOf(d, ConnectionRefusedError)

    def test_closedByReason(self) -> None:
        """
        C{closed} counts closes by reason.
        """
        self.makePool(cachedConnectionTimeout=5)
        self.roundTrip(self.getNow())
        self.clock.advance(5)
        settle(self.clock)
        self.roundTrip(self.getNow())
        self.endpoint.attempts[1].serverClose()
        s = self.stats()
        closed = {reason: n for reason, n in s.closed.items() if n}
        self.assertEqual(closed, {CloseReason.IDLE_TIMEOUT: 1, CloseReason.SERVER_CLOSED: 1})
        self.assertEqual(s.closedTotal, 2)
        self.assertEqual(s.opened, 2)

    def test_statsSnapshotIsFrozen(self) -> None:
        """
        A snapshot does not change when the pool does.
        """
        self.makePool()
        before = self.stats()
        self.getNow()
        self.assertEqual(before.inUse, 0)
        self.assertEqual(self.stats().inUse, 1)

    def test_reprOneLine(self) -> None:
        """
        C{repr(pool)} is a single line that changes with the pool's state.
        """
        pool = self.makePool()
        empty = repr(pool)
        self.assertNotIn("\n", empty)
        self.getNow()
        busy = repr(pool)
        self.assertNotIn("\n", busy)
        self.assertNotEqual(empty, busy)
        self.assertIn("HTTPConnectionPool", busy)


class LogEventTests(PoolTestCase):
    """
    Structured log events with stable names, each with the key and reason.
    """

    def test_events(self) -> None:
        """
        Open, reuse (when C{logReuse} is set), retry, timeout, close and
        eviction are logged.
        """
        events: list[dict[str, Any]] = []

        def observer(event: dict[str, Any]) -> None:
            if "pooledHttpEvent" in event:
                events.append(event)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.makePool(maxConnections=1, responseTimeout=5)
        self.pool.logReuse = True
        self.roundTrip(self.getNow())
        conn = self.getNow()
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.endpoint.attempts[1].respond()
        self.successResultOf(rd)
        other = self.endpointFor()
        evicted = self.get(OTHER_KEY, other)
        settle(self.clock)
        conn = self.successResultOf(evicted)
        rd = conn.request(makeRequest())
        self.clock.advance(5)
        self.failureResultOf(rd, ResponseTimeoutError)
        settle(self.clock)
        names = {e["pooledHttpEvent"] for e in events}
        for name in ("open", "reuse", "retry", "timeout", "close", "evict"):
            self.assertIn("pooled_http." + name, names)
        # One event per occurrence: as many "open" events as connections
        # opened, as many "reuse" events as reuses.
        opened = [e for e in events if e["pooledHttpEvent"] == "pooled_http.open"]
        reused = [e for e in events if e["pooledHttpEvent"] == "pooled_http.reuse"]
        self.assertEqual(len(opened), self.stats().opened)
        self.assertEqual(len(reused), self.stats().reused)
        for event in events:
            if event["pooledHttpEvent"] == "pooled_http.shutdown":
                continue
            self.assertIn(event.get("key"), (KEY, OTHER_KEY), event)
            self.assertTrue(event.get("reason"), event)
