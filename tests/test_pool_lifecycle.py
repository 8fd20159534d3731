"""
The life of a pooled connection, driven by a L{Clock}: idle timeout and
idle cap, server-closed idle connections, connect/response/read timeouts,
age and request limits, the server's C{Keep-Alive} hints, shutdown with
C{close()} and C{closeCachedConnections()}, the races between them, and
C{stats()} / C{repr()}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectingCancelledError, ConnectionRefusedError
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.web._newclient import ResponseDone, ResponseNeverReceived
from twisted.web.client import Agent, readBody

from _fakes import (
    KEY,
    OTHER_KEY,
    BodyCollector,
    FakeEndpoint,
    PoolTestCase,
    makeRequest,
    settle,
)
from pooled_http import HTTPConnectionPool
from pooled_http.errors import (
    ConnectTimeoutError,
    PoolClosedError,
    ReadTimeoutError,
    ResponseTimeoutError,
)
from pooled_http.stats import CloseReason, KeyStats, PoolStats

#: Enough time for any "short grace period" before an abort.
GRACE = 60


def advanceInSteps(clock: Any, total: float, step: float = 0.5) -> None:
    """
    Move C{clock} forward by C{total} seconds in small steps, letting
    zero-delay calls run in between.
    """
    moved = 0.0
    while moved < total:
        clock.advance(step)
        settle(clock)
        moved += step


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

    def test_atMostMaxPersistentIdle(self) -> None:
        """
        At most C{maxPersistentPerHost} connections of a key stay idle; the
        others are closed as they come back.
        """
        self.makePool(maxConnectionsPerHost=4, maxPersistentPerHost=2)
        conns = [self.getNow() for _ in range(4)]
        for conn in conns:
            self.roundTrip(conn)
        settle(self.clock)
        self.assertEqual(self.counts(), (2, 0, 0, 0))
        closing = [a for a in self.endpoint.attempts if a.transport and a.transport.closing]
        self.assertEqual(len(closing), 2)
        self.assertEqual(self.stats().closed.get(CloseReason.TOO_MANY_IDLE), 2)

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


class ConnectTimeoutTests(PoolTestCase):
    """
    C{connectTimeout}.
    """

    def test_connectTimeout(self) -> None:
        """
        A connect taking longer than C{connectTimeout} fails with
        L{ConnectTimeoutError} (also Twisted's C{TimeoutError}), the
        endpoint's connect is cancelled and the slot freed.
        """
        self.makePool(connectTimeout=5)
        self.endpoint.autoConnect = False
        d = self.get()
        self.clock.advance(4.5)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        f = self.failureResultOf(d, ConnectTimeoutError)
        self.assertIsInstance(f.value, TwistedTimeoutError)
        self.assertEqual(f.value.key, KEY)
        self.assertEqual(f.value.timeout, 5)
        self.assertTrue(self.endpoint.attempts[0].cancelled)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        s = self.stats()
        self.assertEqual(s.timedOut, 1)
        self.assertEqual(s.failed, 1)

    def test_defaultConnectTimeout(self) -> None:
        """
        The default C{connectTimeout} is 30 seconds.
        """
        pool = self.makePool()
        self.assertEqual(pool.connectTimeout, 30)
        self.endpoint.autoConnect = False
        d = self.get()
        self.clock.advance(29.5)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.failureResultOf(d, ConnectTimeoutError)

    def test_connectTimeoutFreesSlotForWaiter(self) -> None:
        """
        The waiter behind a timed-out connect gets a new attempt.
        """
        self.makePool(connectTimeout=5, maxConnectionsPerHost=1, maxPersistentPerHost=1)
        self.endpoint.autoConnect = False
        d1, d2 = self.get(), self.get()
        self.clock.advance(5)
        self.failureResultOf(d1, ConnectTimeoutError)
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 2)
        self.endpoint.attempts[1].succeed()
        self.successResultOf(d2)

    def test_connectInTimeLeavesNoTimer(self) -> None:
        """
        A connection made in time cancels the connect timer.
        """
        self.makePool(connectTimeout=5)
        self.endpoint.autoConnect = False
        d = self.get()
        self.clock.advance(1)
        self.endpoint.attempts[0].succeed()
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        transport = self.endpoint.attempts[0].transport
        assert transport is not None
        self.assertFalse(transport.closing)

    def test_noConnectTimeout(self) -> None:
        """
        C{connectTimeout=None} waits for the endpoint as long as it takes.
        """
        self.makePool(connectTimeout=None)
        self.endpoint.autoConnect = False
        d = self.get()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10000)
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d, CancelledError, ConnectingCancelledError)


class ResponseTimeoutTests(PoolTestCase):
    """
    C{responseTimeout}: from the request being written to the headers.
    """

    def test_responseTimeout(self) -> None:
        """
        No headers within C{responseTimeout}: the request fails with
        L{ResponseTimeoutError} (a L{ResponseNeverReceived}), the connection
        is aborted and not reused.
        """
        self.makePool(responseTimeout=3, maxConnectionsPerHost=1, maxPersistentPerHost=1)
        conn = self.getNow()
        waiter = self.get()
        rd = conn.request(makeRequest())
        self.clock.advance(2.5)
        self.assertNoResult(rd)
        self.clock.advance(0.5)
        f = self.failureResultOf(rd, ResponseTimeoutError)
        self.assertIsInstance(f.value, ResponseNeverReceived)
        self.assertEqual(f.value.key, KEY)
        self.assertEqual(f.value.timeout, 3)
        transport = self.endpoint.attempts[0].transport
        assert transport is not None
        self.assertTrue(transport.aborted)
        settle(self.clock)
        fresh = self.successResultOf(waiter)
        self.assertFalse(fresh.reused)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.counts(), (0, 1, 0, 0))
        self.assertEqual(self.stats().timedOut, 1)

    def test_responseInTime(self) -> None:
        """
        Headers in time cancel the response timer.
        """
        self.makePool(responseTimeout=3, cachedConnectionTimeout=100)
        conn = self.getNow()
        rd = conn.request(makeRequest())
        self.clock.advance(2.5)
        self.endpoint.attempts[0].respond()
        self.successResultOf(rd)
        self.clock.advance(10)
        transport = self.endpoint.attempts[0].transport
        assert transport is not None
        self.assertFalse(transport.closing)
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_responseTimeoutCoversHeadersOnly(self) -> None:
        """
        Once the headers arrived, a slow body is not a response timeout.
        """
        response, attempt = self.startResponse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", responseTimeout=3
        )
        body = BodyCollector()
        response.deliverBody(body)
        self.clock.advance(10)
        self.assertIsNone(body.reason)
        attempt.feed(b"cd")
        self.assertEqual(body.data, b"abcd")
        assert body.reason is not None
        self.assertTrue(body.reason.check(ResponseDone))

    def test_raceResponseAtDeadline(self) -> None:
        """
        Headers that arrive at the same instant as the deadline, before the
        timer runs, win: the response is delivered and the connection kept.
        """
        self.makePool(responseTimeout=3)
        conn = self.getNow()
        attempt = self.endpoint.attempts[0]
        self.clock.callLater(3, attempt.respond)
        rd = conn.request(makeRequest())
        self.clock.advance(3)
        self.assertEqual(self.successResultOf(rd).code, 200)
        settle(self.clock)
        assert attempt.transport is not None
        self.assertFalse(attempt.transport.aborted)
        self.assertEqual(self.counts(), (1, 0, 0, 0))

    def test_raceResponseAfterTimeout(self) -> None:
        """
        Headers that arrive after the timer fired, while the abort is still
        under way, are ignored: the request stays failed with
        L{ResponseTimeoutError} and the connection is not pooled.
        """
        self.makePool(responseTimeout=3)
        conn = self.getNow()
        attempt = self.endpoint.attempts[0]
        rd = conn.request(makeRequest())
        self.clock.callLater(3, attempt.respond)
        self.clock.advance(3)
        self.failureResultOf(rd, ResponseTimeoutError)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ReadTimeoutTests(PoolTestCase):
    """
    C{readTimeout}: no body bytes for that long while a response is being
    delivered.
    """

    def test_bodyStall(self) -> None:
        """
        A body that stalls for C{readTimeout} fails with L{ReadTimeoutError}
        (a L{ResponseFailed}); each chunk restarts the timer; the connection
        is aborted and its slot freed.
        """
        response, attempt = self.startResponse(readTimeout=4)
        body = BodyCollector()
        response.deliverBody(body)
        self.clock.advance(3.5)
        attempt.feed(b"def")
        self.clock.advance(3.5)
        self.assertIsNone(body.reason)
        self.clock.advance(0.5)
        settle(self.clock)
        assert body.reason is not None
        self.assertTrue(body.reason.check(ReadTimeoutError), body.reason)
        self.assertEqual(body.reason.value.key, KEY)
        self.assertEqual(body.data, b"abcdef")
        self.assertTrue(attempt.transport.aborted)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.stats().timedOut, 1)

    def test_bodyNeverRead(self) -> None:
        """
        A response whose body the caller never starts reading times out too,
        and the caller learns why when it finally reads.
        """
        response, attempt = self.startResponse(readTimeout=4)
        self.clock.advance(4)
        settle(self.clock)
        self.assertTrue(attempt.transport.aborted)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        body = BodyCollector()
        response.deliverBody(body)
        assert body.reason is not None
        self.assertTrue(body.reason.check(ReadTimeoutError), body.reason)

    def test_readTimeoutFreesSlotForWaiter(self) -> None:
        """
        The waiter behind a read-timed-out connection gets a new one.
        """
        response, attempt = self.startResponse(
            readTimeout=4, maxConnectionsPerHost=1, maxPersistentPerHost=1
        )
        waiter = self.get()
        response.deliverBody(BodyCollector())
        self.clock.advance(4)
        settle(self.clock)
        self.assertFalse(self.successResultOf(waiter).reused)
        self.assertEqual(self.endpoint.connects, 2)

    def test_completeUnreadBodyNoTimeout(self) -> None:
        """
        A body that arrived completely is not timed out even if unread.
        """
        self.makePool(readTimeout=4)
        conn = self.getNow()
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].respond(b"hello")
        response = self.successResultOf(rd)
        self.clock.advance(10)
        self.assertFalse(self.endpoint.attempts[0].transport.closing)
        body = BodyCollector()
        response.deliverBody(body)
        self.assertEqual(body.data, b"hello")
        assert body.reason is not None
        self.assertTrue(body.reason.check(ResponseDone))
        self.assertEqual(self.counts(), (1, 0, 0, 0))

    def test_readTimeoutNotBeforeHeaders(self) -> None:
        """
        C{readTimeout} is about the body: slow headers are the business of
        C{responseTimeout}.
        """
        self.makePool(readTimeout=2)
        conn = self.getNow()
        rd = conn.request(makeRequest())
        self.clock.advance(5)
        self.assertNoResult(rd)
        self.endpoint.attempts[0].respond()
        self.successResultOf(rd)


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


class ShutdownTests(PoolTestCase):
    """
    C{close()} and C{closeCachedConnections()}.
    """

    def test_getConnectionAfterClose(self) -> None:
        """
        After C{close()}, C{getConnection} fails with L{PoolClosedError}
        naming the key, without connecting.
        """
        self.makePool()
        self.successResultOf(self.pool.close())
        f = self.failureResultOf(self.get(), PoolClosedError)
        self.assertEqual(f.value.key, KEY)
        self.assertEqual(self.endpoint.connects, 0)

    def test_closeFailsWaiters(self) -> None:
        """
        Waiters are failed with L{PoolClosedError}.
        """
        self.makePool(maxConnectionsPerHost=1, maxPersistentPerHost=1)
        conn = self.getNow()
        rd = conn.request(makeRequest())
        w1, w2 = self.get(), self.get()
        closed = self.pool.close()
        self.failureResultOf(w1, PoolClosedError)
        self.failureResultOf(w2, PoolClosedError)
        self.assertEqual(self.stats().waiting, 0)
        self.endpoint.attempts[0].respond()
        self.successResultOf(rd)
        settle(self.clock)
        self.successResultOf(closed)

    def test_closeClosesIdle(self) -> None:
        """
        Idle connections are closed; the Deferred fires after their
        C{connectionLost}, and no timer is left.
        """
        self.makePool()
        self.roundTrip(self.getNow())
        other = self.endpointFor()
        self.roundTrip(self.getNow(OTHER_KEY, other), other)
        closed = self.pool.close()
        transport = self.endpoint.attempts[0].transport
        self.assertTrue(transport.closing)
        self.assertNoResult(closed)
        settle(self.clock)
        self.successResultOf(closed)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.stats().perKey, {})

    def test_closeLetsInFlightFinish(self) -> None:
        """
        Without a timeout, an in-flight request may finish; its connection
        is then closed, not pooled, and the Deferred fires.
        """
        self.makePool()
        conn = self.getNow()
        rd = conn.request(makeRequest())
        closed = self.pool.close()
        self.clock.advance(1000)
        settle(self.clock)
        transport = self.endpoint.attempts[0].transport
        self.assertFalse(transport.aborted)
        self.assertNoResult(closed)
        self.endpoint.attempts[0].respond()
        self.assertEqual(self.successResultOf(rd).code, 200)
        self.assertTrue(transport.closing)
        settle(self.clock)
        self.successResultOf(closed)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeTimeoutAbortsInFlight(self) -> None:
        """
        With C{close(timeout)}, in-flight requests are aborted at the
        timeout; the Deferred fires after their C{connectionLost}.
        """
        self.makePool()
        conn = self.getNow()
        rd = conn.request(makeRequest())
        closed = self.pool.close(timeout=10)
        transport = self.endpoint.attempts[0].transport
        lostWhenClosed: list[bool] = []
        closed.addCallback(lambda _: lostWhenClosed.append(transport.lost))
        self.clock.advance(9.5)
        settle(self.clock)
        self.assertFalse(transport.closing)
        self.assertNoResult(rd)
        self.assertNoResult(closed)
        self.clock.advance(0.5)
        self.assertTrue(transport.aborted)
        settle(self.clock)
        self.failureResultOf(rd)
        self.successResultOf(closed)
        self.assertEqual(lostWhenClosed, [True])
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeTimeoutHandedOutUnused(self) -> None:
        """
        A connection handed out and never used does not keep C{close()}
        from finishing past its timeout.
        """
        self.makePool()
        self.getNow()
        closed = self.pool.close(timeout=5)
        advanceInSteps(self.clock, 5)
        self.successResultOf(closed)
        self.assertTrue(self.endpoint.attempts[0].transport.closing)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeWaitsForConnectionLost(self) -> None:
        """
        The Deferred waits for C{connectionLost}, even from a peer that takes
        its time; a peer that never finishes closing is aborted.
        """
        self.makePool()
        self.endpoint.hangOnClose = True
        self.roundTrip(self.getNow())
        closed = self.pool.close()
        transport = self.endpoint.attempts[0].transport
        self.assertTrue(transport.closing)
        settle(self.clock)
        self.assertNoResult(closed)
        advanceInSteps(self.clock, GRACE)
        self.assertTrue(transport.aborted)
        self.successResultOf(closed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeTwice(self) -> None:
        """
        A second C{close()} gives a Deferred that fires too.
        """
        self.makePool()
        self.roundTrip(self.getNow())
        first = self.pool.close()
        second = self.pool.close()
        settle(self.clock)
        self.successResultOf(first)
        self.successResultOf(second)

    def test_closeDuringConnect(self) -> None:
        """
        C{close()} while a connection is being opened: the caller gets no
        connection, and a connection that still arrives is closed at once.
        """
        self.makePool()
        self.endpoint.autoConnect = False
        d = self.get()
        closed = self.pool.close()
        attempt = self.endpoint.attempts[0]
        if not attempt.cancelled:
            attempt.succeed()
            self.assertTrue(attempt.transport.closing)
        self.failureResultOf(d, PoolClosedError, CancelledError, ConnectingCancelledError)
        advanceInSteps(self.clock, 1)
        self.successResultOf(closed)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeWithWaitersOfAnotherKey(self) -> None:
        """
        C{close()} fires even when a key had nothing but a waiter (blocked
        by the global cap) and another key only a connection attempt.
        """
        self.makePool(maxConnections=1)
        self.endpoint.autoConnect = False
        connecting = self.get()
        waiting = self.get(OTHER_KEY, self.endpointFor(autoConnect=False))
        closed = self.pool.close()
        self.failureResultOf(waiting, PoolClosedError)
        self.failureResultOf(connecting, PoolClosedError, CancelledError, ConnectingCancelledError)
        advanceInSteps(self.clock, 1)
        self.successResultOf(closed)
        self.assertEqual(self.stats().perKey, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeCachedConnectionsWaitsForInUse(self) -> None:
        """
        C{closeCachedConnections()} closes idle connections at once; one in
        use then is closed when it comes back, and the returned Deferred
        waits for it too; the pool stays usable.
        """
        self.makePool()
        self.roundTrip(self.getNow())
        busy = self.getNow()
        self.assertTrue(busy.reused)
        fresh = self.getNow()
        self.roundTrip(fresh)
        # Now: attempt 0 in use (busy), attempt 1 idle.
        d = self.pool.closeCachedConnections()
        idle = self.endpoint.attempts[1].transport
        inUse = self.endpoint.attempts[0].transport
        self.assertTrue(idle.closing)
        self.assertFalse(inUse.closing)
        settle(self.clock)
        # The idle one is gone; the Deferred still waits for the busy one.
        self.assertNoResult(d)
        self.assertEqual(self.counts(), (0, 1, 0, 0))
        self.roundTrip(busy)
        self.assertTrue(inUse.closing)
        settle(self.clock)
        self.successResultOf(d)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        later = self.getNow()
        self.assertFalse(later.reused)
        self.roundTrip(later)
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        self.assertTrue(self.getNow().reused)

    def test_closeCachedConnectionsAbortsStragglers(self) -> None:
        """
        A connection still in use C{closeGracePeriod} seconds after
        C{closeCachedConnections()} is aborted then, so the Deferred never
        waits for a response nobody finishes; no timer is left.
        """
        self.makePool(closeGracePeriod=3)
        busy = self.getNow()
        response = busy.request(makeRequest())
        inUse = self.endpoint.attempts[0].transport
        d = self.pool.closeCachedConnections()
        self.clock.advance(2.9)
        self.assertNoResult(d)
        self.assertFalse(inUse.lost)
        self.clock.advance(0.1)
        settle(self.clock)
        self.successResultOf(d)
        self.failureResultOf(response)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closeCachedConnectionsForKey(self) -> None:
        """
        C{closeCachedConnections(key)} closes only that key's idle
        connections.
        """
        self.makePool()
        other = self.endpointFor()
        self.roundTrip(self.getNow())
        self.roundTrip(self.getNow(OTHER_KEY, other), other)
        d = self.pool.closeCachedConnections(OTHER_KEY)
        settle(self.clock)
        self.successResultOf(d)
        self.assertTrue(other.attempts[0].transport.closing)
        self.assertFalse(self.endpoint.attempts[0].transport.closing)
        self.assertEqual(self.counts(), (1, 0, 0, 0))

    def test_closeCachedConnectionsEmpty(self) -> None:
        """
        With nothing idle, C{closeCachedConnections()} fires at once.
        """
        self.makePool()
        self.successResultOf(self.pool.closeCachedConnections())

    def test_closeCachedConnectionsNeverHangs(self) -> None:
        """
        A connection whose peer never finishes closing is aborted after a
        short grace period, and the Deferred fires.
        """
        self.makePool()
        self.endpoint.hangOnClose = True
        self.roundTrip(self.getNow())
        d = self.pool.closeCachedConnections()
        transport = self.endpoint.attempts[0].transport
        settle(self.clock)
        self.assertNoResult(d)
        advanceInSteps(self.clock, GRACE)
        self.assertTrue(transport.aborted)
        self.successResultOf(d)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_returnDuringCloseCachedConnections(self) -> None:
        """
        A connection that comes back while C{closeCachedConnections()} is
        under way is closed, not pooled.
        """
        self.makePool()
        self.endpoint.hangOnClose = True
        idle = self.getNow()
        busy = self.getNow()
        rd = busy.request(makeRequest())
        self.roundTrip(idle)
        d = self.pool.closeCachedConnections()
        self.assertTrue(self.endpoint.attempts[0].transport.closing)
        self.assertNoResult(d)
        self.endpoint.attempts[1].respond()
        self.successResultOf(rd)
        self.assertTrue(self.endpoint.attempts[1].transport.closing)
        self.assertEqual(self.stats().idle, 0)
        advanceInSteps(self.clock, GRACE)
        self.successResultOf(d)
        self.assertEqual(self.counts(), (0, 0, 0, 0))


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



class _EndpointFactory:
    """
    An C{IAgentEndpointFactory} handing out one L{FakeEndpoint} per key.
    """

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.endpoints: dict[tuple[bytes, bytes, int], FakeEndpoint] = {}

    def endpointForURI(self, uri: Any) -> FakeEndpoint:
        """
        The L{FakeEndpoint} of the URI's key.
        """
        key = (uri.scheme, uri.host, uri.port)
        if key not in self.endpoints:
            self.endpoints[key] = FakeEndpoint(self.clock)
        return self.endpoints[key]


class AgentTests(PoolTestCase):
    """
    Through Twisted's stock L{Agent}, unchanged, on a L{MemoryReactorClock}.
    """

    def test_agentQueuesAndReuses(self) -> None:
        """
        Three concurrent requests with a cap of one go over one connection,
        in order, and every body arrives.
        """
        reactor = MemoryReactorClock()
        self.clock = reactor
        pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=1, maxPersistentPerHost=1)
        factory = _EndpointFactory(reactor)
        agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
        ds = [agent.request(b"GET", b"http://a.example/%d" % (i,)) for i in range(3)]
        endpoint = factory.endpoints[(b"http", b"a.example", 80)]
        self.assertEqual(endpoint.connects, 1)
        attempt = endpoint.attempts[0]
        bodies = []
        for i, d in enumerate(ds):
            self.assertEqual(attempt.transport.requestCount(), i + 1)
            self.assertIn(b"GET /%d HTTP/1.1" % (i,), attempt.transport.value())
            attempt.respond(b"body%d" % (i,))
            response = self.successResultOf(d)
            bodies.append(self.successResultOf(readBody(response)))
        self.assertEqual(bodies, [b"body0", b"body1", b"body2"])
        self.assertEqual(endpoint.connects, 1)
        s = pool.stats()
        self.assertEqual((s.idle, s.inUse, s.opened, s.reused), (1, 0, 1, 2))
        closed = pool.close()
        settle(reactor)
        self.successResultOf(closed)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_agentRetry(self) -> None:
        """
        Agent's GET on a stale reused connection is retried on a new one.
        """
        reactor = MemoryReactorClock()
        pool = HTTPConnectionPool(reactor)
        factory = _EndpointFactory(reactor)
        agent = Agent.usingEndpointFactory(reactor, factory, pool=pool)
        d = agent.request(b"GET", b"http://a.example/")
        endpoint = factory.endpoints[(b"http", b"a.example", 80)]
        endpoint.attempts[0].respond()
        self.successResultOf(readBody(self.successResultOf(d)))
        d = agent.request(b"GET", b"http://a.example/")
        endpoint.attempts[0].serverClose()
        settle(reactor)
        self.assertEqual(endpoint.connects, 2)
        endpoint.attempts[1].respond(b"again")
        self.assertEqual(self.successResultOf(readBody(self.successResultOf(d))), b"again")
        self.assertEqual(pool.stats().retried, 1)


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
