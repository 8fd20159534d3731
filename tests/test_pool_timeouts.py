"""
The timeouts of one request, driven by a L{Clock}: connecting, waiting for
the response headers, reading the body, and the races at each deadline.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.web._newclient import ResponseDone, ResponseNeverReceived

from pooled_http.errors import (
    ConnectTimeoutError,
    ReadTimeoutError,
    ResponseTimeoutError,
)
from tests.support.fakes import KEY, BodyCollector, PoolTestCase, makeRequest, settle


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
