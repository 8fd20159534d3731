"""
Keeping a connection for the next request, and when to stop, driven by a
L{Clock}: the idle timeout and idle cap, idle connections the server closed,
the age and request limits, and the server's C{Keep-Alive} hints.
"""

from __future__ import annotations

from pooled_http import HTTPConnectionPool
from pooled_http.stats import CloseReason
from tests.support.fakes import OTHER_KEY, PoolTestCase, makeRequest, settle


class IdleTests(PoolTestCase):
    """
    Idle connections: timeout, cap, server close.
    """

    def test_idleTimeout(self) -> None:
        """
        An idle connection is closed after C{cachedConnectionTimeout}, by a
        timer on the pool's reactor, and leaves no timer behind.
        """
        self.makePool(cachedConnectionTimeout=10)
        self.roundTrip(self.getNow())
        transport = self.endpoint.attempts[0].transport
        assert transport is not None
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        self.clock.advance(9.5)
        self.assertFalse(transport.closing)
        self.clock.advance(0.5)
        self.assertTrue(transport.closing)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.stats().closed.get(CloseReason.IDLE_TIMEOUT), 1)

    def test_idleTimeoutCancelledOnReuse(self) -> None:
        """
        Reusing an idle connection cancels its idle timer; going idle again
        starts a new one.
        """
        self.makePool(cachedConnectionTimeout=10)
        self.roundTrip(self.getNow())
        transport = self.endpoint.attempts[0].transport
        assert transport is not None
        self.clock.advance(5)
        conn = self.getNow()
        self.assertTrue(conn.reused)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertFalse(transport.closing)
        self.roundTrip(conn)
        self.clock.advance(9.5)
        self.assertFalse(transport.closing)
        self.clock.advance(0.5)
        self.assertTrue(transport.closing)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))

    def test_assignedIdleTimeout(self) -> None:
        """
        Assigning C{cachedConnectionTimeout} applies to connections going
        idle afterwards.
        """
        pool = self.makePool()
        pool.cachedConnectionTimeout = 3
        self.roundTrip(self.getNow())
        self.clock.advance(3)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))

    def burst(self, count: int) -> None:
        """
        Take C{count} connections at once, then give each back after one
        request and let the pool settle.
        """
        conns = [self.getNow() for _ in range(count)]
        for conn in conns:
            self.roundTrip(conn)
        settle(self.clock)

    def test_atMostMaxPersistentIdle(self) -> None:
        """
        At most C{maxPersistentPerHost} connections of a key stay idle; the
        others are closed as they come back.
        """
        self.makePool(maxConnectionsPerHost=4, maxPersistentPerHost=2)
        self.burst(4)
        self.assertEqual(self.counts(), (2, 0, 0, 0))
        closing = [a for a in self.endpoint.attempts if a.transport and a.transport.closing]
        self.assertEqual(len(closing), 2)
        self.assertEqual(self.stats().closed.get(CloseReason.TOO_MANY_IDLE), 2)

    def test_unsetMaxPersistentFollowsCap(self) -> None:
        """
        With C{maxPersistentPerHost} never set, raising
        C{maxConnectionsPerHost} keeps every connection a burst opened:
        none is closed as it comes back, and the next burst reuses them all.
        """
        pool = self.makePool(maxConnectionsPerHost=12)
        self.assertEqual(pool.maxPersistentPerHost, 12)
        for _ in range(2):
            self.burst(12)
            self.assertEqual(self.counts(), (12, 0, 0, 0))
        self.assertEqual(self.endpoint.connects, 12)
        self.assertEqual(sum(self.stats().closed.values()), 0)
        pool.maxConnectionsPerHost = 3
        self.assertEqual(pool.maxPersistentPerHost, 3)

    def test_setMaxPersistentStaysBelowCap(self) -> None:
        """
        Once set, C{maxPersistentPerHost} no longer follows
        C{maxConnectionsPerHost}.
        """
        pool = self.makePool()
        pool.maxPersistentPerHost = 2
        pool.maxConnectionsPerHost = 6
        self.assertEqual(pool.maxPersistentPerHost, 2)
        self.burst(6)
        self.assertEqual(self.counts(), (2, 0, 0, 0))

    def test_subclassMaxPersistentStays(self) -> None:
        """
        A subclass's C{maxPersistentPerHost} class attribute counts as set:
        it does not follow C{maxConnectionsPerHost}.
        """
        self.makePool()

        class Pool(HTTPConnectionPool):
            maxPersistentPerHost = 2

        pool = self.pool = Pool(self.clock, maxConnectionsPerHost=6)
        self.assertEqual((pool.maxConnectionsPerHost, pool.maxPersistentPerHost), (6, 2))
        self.burst(6)
        self.assertEqual(self.counts(), (2, 0, 0, 0))

    def test_serverClosedIdleLeavesAtOnce(self) -> None:
        """
        An idle connection the server closes leaves the pool at once (not at
        its idle timeout), frees its slot and cancels its timer.
        """
        self.makePool()
        self.roundTrip(self.getNow())
        self.endpoint.attempts[0].serverClose()
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.stats().closed.get(CloseReason.SERVER_CLOSED), 1)
        self.assertEqual(self.stats().perKey, {})
        conn = self.getNow()
        self.assertFalse(conn.reused)
        self.assertEqual(self.endpoint.connects, 2)

    def test_serverClosedIdleFreesSlotForWaiter(self) -> None:
        """
        With a global cap of 1, a waiter of another key gets the slot once
        the server closed the idle connection (or it was evicted).
        """
        self.makePool(maxConnections=1)
        conn = self.getNow()
        d = self.get(OTHER_KEY, self.endpointFor())
        self.roundTrip(conn)
        # The returned connection has no waiter of its own key: it is closed
        # for the other key's waiter.
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.successResultOf(d)
        self.assertEqual(self.counts(), (0, 1, 0, 0))


class ConnectionLifeTests(PoolTestCase):
    """
    C{maxConnectionAge}, C{maxRequestsPerConnection} and C{Keep-Alive}.
    """

    def test_maxRequestsPerConnection(self) -> None:
        """
        A connection that served C{maxRequestsPerConnection} requests is
        closed when it goes idle.
        """
        self.makePool(maxRequestsPerConnection=2)
        self.roundTrip(self.getNow())
        conn = self.getNow()
        self.assertTrue(conn.reused)
        self.roundTrip(conn)
        transport = self.endpoint.attempts[0].transport
        self.assertTrue(transport.closing)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertFalse(self.getNow().reused)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(transport.requestCount(), 2)

    def test_maxConnectionAge(self) -> None:
        """
        A connection past C{maxConnectionAge} is closed when it next goes
        idle, not reused; a younger one is reused.
        """
        self.makePool(maxConnectionAge=60)
        self.roundTrip(self.getNow())
        self.clock.advance(30)
        conn = self.getNow()
        self.assertTrue(conn.reused)
        rd = conn.request(makeRequest())
        self.clock.advance(31)
        self.endpoint.attempts[0].respond()
        self.successResultOf(rd)
        self.assertTrue(self.endpoint.attempts[0].transport.closing)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertFalse(self.getNow().reused)
        self.assertEqual(self.stats().closed.get(CloseReason.EXPIRED), 1)

    def test_keepAliveTimeout(self) -> None:
        """
        C{Keep-Alive: timeout=5} closes the idle connection no later than 5
        seconds, well before C{cachedConnectionTimeout}.
        """
        self.makePool(cachedConnectionTimeout=240)
        self.roundTrip(self.getNow(), headers={b"Keep-Alive": b"timeout=5, max=100"})
        transport = self.endpoint.attempts[0].transport
        self.clock.advance(1)
        self.assertFalse(transport.closing)
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        self.clock.advance(4)
        self.assertTrue(transport.closing)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_keepAliveTimeoutNeverExtends(self) -> None:
        """
        A C{Keep-Alive} timeout longer than C{cachedConnectionTimeout} does
        not keep the connection longer.
        """
        self.makePool(cachedConnectionTimeout=3)
        self.roundTrip(self.getNow(), headers={b"Keep-Alive": b"timeout=100"})
        self.clock.advance(3)
        self.assertTrue(self.endpoint.attempts[0].transport.closing)

    def test_keepAliveMax(self) -> None:
        """
        C{Keep-Alive: max=2}: no more than 2 requests are sent on the
        connection.
        """
        self.makePool()
        ka = {b"Keep-Alive": b"timeout=100, max=2"}
        self.roundTrip(self.getNow(), headers=ka)
        second = self.getNow()
        self.assertTrue(second.reused)
        self.roundTrip(second, headers=ka)
        settle(self.clock)
        third = self.getNow()
        self.assertFalse(third.reused)
        self.assertEqual(self.endpoint.attempts[0].transport.requestCount(), 2)
        self.assertTrue(self.endpoint.attempts[0].transport.closing)

    def test_malformedKeepAliveIgnored(self) -> None:
        """
        A malformed C{Keep-Alive} header is ignored, not an error.
        """
        self.makePool(cachedConnectionTimeout=10)
        self.roundTrip(self.getNow(), headers={b"Keep-Alive": b"timeout=soon, max=-3, ="})
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        self.assertTrue(self.getNow().reused)
