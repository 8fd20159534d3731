"""
Edge cases of the pool's bookkeeping: responses without a body, a server
answering before the request is fully sent, bytes arriving on an idle
connection, aborting and cancelling in use, limits changed at run time, and
timers measured from the right moment.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.web._newclient import (
    RequestNotSent,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)

from pooled_http.errors import ConnectTimeoutError, ResponseTimeoutError
from pooled_http.stats import CloseReason
from tests.support.fakes import (
    KEY,
    OTHER_KEY,
    BodyCollector,
    PoolTestCase,
    makeRequest,
    settle,
)


class SlowProducer:
    """
    A body producer that writes only when the test says so.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.consumer: Any = None
        self.finished: Deferred[None] = Deferred()

    def startProducing(self, consumer: Any) -> Deferred[None]:
        """
        Remember the consumer; finish when L{finish} is called.
        """
        self.consumer = consumer
        return self.finished

    def write(self, data: bytes) -> None:
        """
        Write C{data} to the consumer now.
        """
        self.consumer.write(data)

    def finish(self) -> None:
        """
        The body is complete.
        """
        self.finished.callback(None)

    def pauseProducing(self) -> None:
        """
        Nothing to pause.
        """
        pass

    def resumeProducing(self) -> None:
        """
        Nothing to resume.
        """
        pass

    def stopProducing(self) -> None:
        """
        Fail the body if it is not complete.
        """
        if not self.finished.called:
            self.finished.errback(Exception("stopped"))


class BodylessResponseTests(PoolTestCase):
    """
    Responses that have no body return their connection before the caller
    even gets the response.
    """

    def test_head(self) -> None:
        """
        A HEAD response with a Content-Length but no body: the connection
        goes idle and is reused.
        """
        self.makePool()
        conn = self.getNow()
        rd = conn.request(makeRequest(b"HEAD"))
        self.endpoint.attempts[0].feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
        response = self.successResultOf(rd)
        self.assertEqual(response.length, 0)
        self.assertEqual(self.counts(), (1, 0, 0, 0))
        self.assertTrue(self.getNow().reused)

    def test_noContent(self) -> None:
        """
        A 204 response returns the connection at once.
        """
        self.makePool()
        conn = self.getNow()
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].feed(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual(self.successResultOf(rd).code, 204)
        self.assertEqual(self.counts(), (1, 0, 0, 0))

    def test_chunked(self) -> None:
        """
        A chunked body: the connection returns after the last chunk.
        """
        response, attempt = self.startResponse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        body = BodyCollector()
        response.deliverBody(body)
        self.assertEqual(self.counts(), (0, 1, 0, 0))
        attempt.feed(b"0\r\n\r\n")
        self.assertEqual(body.data, b"abc")
        assert body.reason is not None
        self.assertTrue(body.reason.check(ResponseDone))
        self.assertEqual(self.counts(), (1, 0, 0, 0))


class EarlyResponseTests(PoolTestCase):
    """
    A server may answer before the request body is fully sent.
    """

    def test_earlyResponseNotPooled(self) -> None:
        """
        The connection of a request still being written when its response
        completed is not reused, and its slot is freed.
        """
        self.makePool(maxConnectionsPerHost=1, maxPersistentPerHost=1)
        conn = self.getNow()
        producer = SlowProducer(10)
        rd = conn.request(makeRequest(b"POST", producer))
        producer.write(b"abc")
        waiter = self.get()
        self.endpoint.attempts[0].respond(code=413)
        self.assertEqual(self.successResultOf(rd).code, 413)
        producer.write(b"defghij")
        producer.finish()
        settle(self.clock)
        self.assertFalse(self.successResultOf(waiter).reused)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.counts(), (0, 1, 0, 0))

    def test_responseTimeoutStartsWhenRequestWritten(self) -> None:
        """
        C{responseTimeout} counts from the end of the request: a slow upload
        is not a response timeout.
        """
        self.makePool(responseTimeout=3)
        conn = self.getNow()
        producer = SlowProducer(6)
        rd = conn.request(makeRequest(b"PUT", producer))
        producer.write(b"abc")
        self.clock.advance(10)
        self.assertNoResult(rd)
        producer.write(b"def")
        producer.finish()
        self.clock.advance(2.5)
        self.assertNoResult(rd)
        self.clock.advance(0.5)
        self.failureResultOf(rd, ResponseTimeoutError)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))


class IdleConnectionBytesTests(PoolTestCase):
    """
    Bytes or errors arriving on an idle connection.
    """

    def test_bytesOnIdleConnection(self) -> None:
        """
        A server that sends something on an idle connection (a 408, say) has
        given up on it: it leaves the pool at once.
        """
        self.makePool()
        self.roundTrip(self.getNow())
        attempt = self.endpoint.attempts[0]
        attempt.feed(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        self.assertTrue(attempt.transport.closing)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertFalse(self.getNow().reused)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_resetOnIdleConnection(self) -> None:
        """
        A reset (not a clean close) of an idle connection also removes it.
        """
        self.makePool()
        self.roundTrip(self.getNow())
        self.endpoint.attempts[0].serverClose(ConnectionLost())
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.stats().closed.get(CloseReason.SERVER_CLOSED), 1)


class InUseTests(PoolTestCase):
    """
    Aborting and cancelling a connection in use.
    """

    def test_abortFreesSlot(self) -> None:
        """
        C{abort()} on a handed-out connection closes it, frees its slot, and
        its Deferred fires once the connection is gone.
        """
        self.makePool(maxConnectionsPerHost=1, maxPersistentPerHost=1)
        conn = self.getNow()
        waiter = self.get()
        aborted = conn.abort()
        self.assertTrue(self.endpoint.attempts[0].transport.closing)
        settle(self.clock)
        self.successResultOf(aborted)
        self.assertFalse(self.successResultOf(waiter).reused)
        self.assertEqual(self.endpoint.connects, 2)

    def test_abortDuringRequest(self) -> None:
        """
        C{abort()} while a request is in flight fails that request and frees
        the slot.
        """
        self.makePool()
        conn = self.getNow()
        rd = conn.request(makeRequest())
        conn.abort()
        settle(self.clock)
        self.failureResultOf(rd)
        self.assertEqual(self.counts(), (0, 0, 0, 0))

    def test_cancelRequestOnFreshConnection(self) -> None:
        """
        Cancelling a request in flight aborts its connection (it cannot be
        reused mid-response), frees the slot and is not retried.
        """
        self.makePool(maxConnectionsPerHost=1, maxPersistentPerHost=1)
        conn = self.getNow()
        rd = conn.request(makeRequest())
        waiter = self.get()
        rd.cancel()
        self.failureResultOf(rd)
        settle(self.clock)
        self.assertFalse(self.successResultOf(waiter).reused)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.stats().retried, 0)

    def test_cancelWhileReadingBody(self) -> None:
        """
        A response abandoned half-way (the body protocol calls
        C{transport.stopProducing()}) frees the slot.
        """
        response, attempt = self.startResponse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab"
        )
        body = BodyCollector()
        response.deliverBody(body)
        body.transport.stopProducing()
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertIsNotNone(body.reason)


class RuntimeLimitTests(PoolTestCase):
    """
    Limits assigned while requests wait.
    """

    def test_raisingCapServesWaiters(self) -> None:
        """
        Raising C{maxConnectionsPerHost} lets waiters connect at once.
        """
        self.makePool(maxConnectionsPerHost=1, maxPersistentPerHost=1)
        self.getNow()
        w1, w2 = self.get(), self.get()
        self.pool.maxConnectionsPerHost = 3
        settle(self.clock)
        self.assertFalse(self.successResultOf(w1).reused)
        self.assertFalse(self.successResultOf(w2).reused)
        self.assertEqual(self.endpoint.connects, 3)

    def test_raisingGlobalCapServesWaiters(self) -> None:
        """
        Raising C{maxConnections} lets waiters of any key connect.
        """
        self.makePool(maxConnections=1)
        other = self.endpointFor()
        self.getNow()
        w = self.get(OTHER_KEY, other)
        self.pool.maxConnections = 2
        settle(self.clock)
        self.successResultOf(w)

    def test_loweringCapAppliesToNewRequests(self) -> None:
        """
        Lowering the cap closes nothing in use, but new requests wait until
        the key is under the new cap.
        """
        self.makePool(maxConnectionsPerHost=3, maxPersistentPerHost=3)
        conns = [self.getNow() for _ in range(3)]
        self.pool.maxPersistentPerHost = 1
        self.pool.maxConnectionsPerHost = 1
        waiter = self.get()
        self.assertNoResult(waiter)
        self.assertEqual(self.counts(), (0, 3, 0, 1))
        for attempt in self.endpoint.attempts:
            self.assertFalse(attempt.transport.closing)
        # All three come back: the waiter is served, and the key ends up
        # within its new cap (connections over it are closed, not kept).
        for conn in conns:
            self.roundTrip(conn)
            settle(self.clock)
            s = self.stats()
            self.assertLessEqual(s.idle + s.inUse, 3)
        self.successResultOf(waiter)
        s = self.stats()
        self.assertLessEqual(s.idle + s.inUse, 1)

    def test_poolTimeoutAssignedLater(self) -> None:
        """
        Assigning C{poolTimeout} applies to requests that start waiting
        afterwards.
        """
        self.makePool(maxConnectionsPerHost=1, maxPersistentPerHost=1)
        self.getNow()
        self.pool.poolTimeout = 2
        waiter = self.get()
        self.clock.advance(2)
        from pooled_http.errors import PoolTimeoutError

        self.failureResultOf(waiter, PoolTimeoutError)


class KeyTests(PoolTestCase):
    """
    Keys are opaque hashables.
    """

    def test_anyHashableKey(self) -> None:
        """
        Any hashable works as a key, and keys that compare equal share
        connections.
        """
        self.makePool()
        key = ("custom", frozenset({1, 2}), 3)
        self.roundTrip(self.getNow(key))
        again = self.getNow(("custom", frozenset({2, 1}), 3))
        self.assertTrue(again.reused)
        self.assertEqual(again.key, key)
        self.assertIn(key, self.stats().perKey)
        self.assertNotIn(KEY, self.stats().perKey)

    def test_cancelledWaiterNotLeftInStats(self) -> None:
        """
        A key whose only waiter was cancelled disappears from C{perKey}.
        """
        self.makePool(maxConnections=1)
        self.getNow()
        d = self.get(OTHER_KEY, self.endpointFor())
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertNotIn(OTHER_KEY, self.stats().perKey)


class HandshakeTimeoutTests(PoolTestCase):
    """
    C{connectTimeout} covers the TLS handshake, which finishes after the
    endpoint's connect.
    """

    def test_handshakeTooSlow(self) -> None:
        """
        A TLS connection whose handshake does not finish within what is
        left of C{connectTimeout} is aborted with L{ConnectTimeoutError}
        and its slot freed.
        """
        self.makePool(connectTimeout=5, maxConnectionsPerHost=1, maxPersistentPerHost=1)
        self.endpoint.autoConnect = False
        d = self.get()
        waiter = self.get()
        self.clock.advance(2)
        self.endpoint.attempts[0].succeed(tls=True)
        outcome: list[Any] = []
        d.addCallback(lambda conn: conn.request(makeRequest()))
        d.addBoth(outcome.append)
        self.clock.advance(2.5)
        self.assertEqual(outcome, [])
        self.clock.advance(0.5)
        settle(self.clock)
        self.assertTrue(self.endpoint.attempts[0].transport.aborted)
        self.assertEqual(len(outcome), 1)
        failure = outcome[0]
        self.assertTrue(failure.check(ConnectTimeoutError), failure)
        self.assertEqual(self.endpoint.connects, 2)
        self.endpoint.attempts[1].succeed()
        self.successResultOf(waiter)
        self.assertEqual(self.stats().timedOut, 1)

    def test_handshakeInTime(self) -> None:
        """
        A handshake finished in time leaves no timer, and the connection
        works.
        """
        self.makePool(connectTimeout=5)
        self.endpoint.autoConnect = False
        d = self.get()
        protocol = self.endpoint.attempts[0].succeed(tls=True)
        self.clock.advance(1)
        protocol.handshakeCompleted()
        conn = self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.roundTrip(conn)
        self.clock.advance(10)
        self.assertFalse(self.endpoint.attempts[0].transport.closing)


class TwistedFailuresTests(PoolTestCase):
    """
    Twisted's own request failures reach callers unchanged.
    """

    def test_responseNeverReceived(self) -> None:
        """
        A connection lost before any response byte: exactly
        L{ResponseNeverReceived}, wrapping the connection's reason.
        """
        self.makePool()
        conn = self.getNow()
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose(ConnectionLost())
        f = self.failureResultOf(rd)
        self.assertIs(type(f.value), ResponseNeverReceived)
        self.assertTrue(f.value.reasons[0].check(ConnectionLost))

    def test_responseFailed(self) -> None:
        """
        A connection lost in the middle of the headers: exactly
        L{ResponseFailed}.
        """
        self.makePool()
        conn = self.getNow()
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].feed(b"HTTP/1.1 200 OK\r\nContent-Le")
        self.endpoint.attempts[0].serverClose(ConnectionLost())
        f = self.failureResultOf(rd)
        self.assertIs(type(f.value), ResponseFailed)

    def test_requestNotSent(self) -> None:
        """
        With retries off, a request on a connection already lost fails with
        exactly L{RequestNotSent}.
        """
        self.makePool(retryAutomatically=False)
        conn = self.getNow()
        self.endpoint.attempts[0].serverClose()
        f = self.failureResultOf(conn.request(makeRequest()))
        self.assertIs(type(f.value), RequestNotSent)

    def test_bodyCutShort(self) -> None:
        """
        A body cut short by the server: the body protocol gets Twisted's
        L{ResponseFailed} with the reason and the data-loss marker.
        """
        response, attempt = self.startResponse()
        body = BodyCollector()
        response.deliverBody(body)
        attempt.serverClose(ConnectionLost())
        assert body.reason is not None
        self.assertIs(type(body.reason.value), ResponseFailed)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
