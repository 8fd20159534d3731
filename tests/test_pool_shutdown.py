"""
Shutting a pool down, driven by a L{Clock}: C{close()} with requests in
flight, waiters and connections still opening, and
C{closeCachedConnections()}, for every key or one, against peers that take
long to close.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import Protocol
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived, _DataLoss
from twisted.web.http import PotentialDataLoss

from pooled_http.errors import PoolClosedError
from tests.support.fakes import KEY, OTHER_KEY, PoolTestCase, makeRequest, settle
from tests.support.protocols import onEachProtocol

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

    def test_abortedStragglerNotRetried(self) -> None:
        """
        The request of a reused connection aborted when the grace period is
        over fails; it is not sent again on a new connection (which would
        leave the key a connection after the Deferred fired).
        """
        self.makePool(closeGracePeriod=3)
        self.roundTrip(self.getNow())
        reused = self.getNow()
        self.assertTrue(reused.reused)
        response = reused.request(makeRequest())
        d = self.pool.closeCachedConnections()
        self.clock.advance(3)
        settle(self.clock)
        self.successResultOf(d)
        self.failureResultOf(response, ResponseNeverReceived)
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.assertEqual(self.pool.stats().retried, 0)
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


class _Collect(Protocol):
    """
    A body protocol that keeps what it is told.
    """

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.reason: Any = None

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


@onEachProtocol
class CutShortTests(PoolTestCase):
    """
    A body that ends with the connection (no length, not chunked) and is
    cut short by the pool's own shutdown fails as a data loss: it is not
    reported as the server's end of the body (C{PotentialDataLoss}, which
    treq and others read as complete).
    """

    protocol = "httptools"

    def startCloseDelimited(self) -> _Collect:
        self.makePool(protocol=self.protocol)
        rd = self.getNow().request(makeRequest())
        self.endpoint.attempts[0].feed(b"HTTP/1.1 200 OK\r\n\r\nabc")
        body = _Collect()
        self.successResultOf(rd).deliverBody(body)
        return body

    def test_closeTimeout(self) -> None:
        """
        C{close(timeout)} aborting the connection at the timeout fails the
        body with L{ResponseFailed} holding a data loss.
        """
        body = self.startCloseDelimited()
        closed = self.pool.close(timeout=10)
        self.clock.advance(10)
        settle(self.clock)
        self.successResultOf(closed)
        self.assertEqual(b"".join(body.data), b"abc")
        body.reason.trap(ResponseFailed)
        self.assertTrue(
            any(f.check(_DataLoss) for f in body.reason.value.reasons),
            body.reason.value.reasons,
        )

    def test_serverCloseStillPotentialDataLoss(self) -> None:
        """
        The server closing the connection is that body's end, as Twisted
        reports it: C{PotentialDataLoss}.
        """
        body = self.startCloseDelimited()
        self.endpoint.attempts[0].transport.loseNow()
        settle(self.clock)
        body.reason.trap(PotentialDataLoss)
