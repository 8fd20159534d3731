"""
Automatic retries through the pool, and the L{RetryPolicy} value.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.python.failure import Failure
from twisted.web._newclient import (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.client import _RetryingHTTP11ClientProtocol

from pooled_http import IDEMPOTENT_METHODS, RetryPolicy
from pooled_http.errors import ReadTimeoutError, ResponseTimeoutError
from tests.support.fakes import KEY, BytesProducer, PoolTestCase, makeRequest, settle


def _cancelledIn(failure: Failure) -> bool:
    """
    Whether C{failure} is, or wraps, a cancellation.
    """
    if failure.check(CancelledError, ConnectingCancelledError):
        return True
    reasons = getattr(failure.value, "reasons", None) or ()
    return any(
        isinstance(r, Failure) and r.check(CancelledError, ConnectingCancelledError)
        for r in reasons
    )


class PoolRetryTests(PoolTestCase):
    """
    The pool retries an idempotent request that failed on a reused
    connection before any response arrived, once, on a new connection.
    """

    def reusedConnection(self, **options: Any) -> Any:
        """
        Make a pool, use a connection once so that it is idle, and take it
        again: return the reused connection.
        """
        self.makePool(**options)
        self.roundTrip(self.getNow())
        conn = self.getNow()
        self.assertTrue(conn.reused)
        return conn

    def test_getRetriedOnReusedConnection(self) -> None:
        """
        A GET that fails on a reused connection before any response byte is
        sent again on a new connection; the caller sees only the response.
        """
        conn = self.reusedConnection()
        rd = conn.request(makeRequest(b"GET"))
        self.assertEqual(self.endpoint.attempts[0].transport.requestCount(), 2)
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.assertNoResult(rd)
        self.assertEqual(self.endpoint.connects, 2)
        retry = self.endpoint.attempts[1]
        self.assertEqual(retry.transport.requestCount(), 1)
        self.assertTrue(retry.transport.value().startswith(b"GET / HTTP/1.1\r\n"))
        retry.respond(b"second")
        response = self.successResultOf(rd)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.stats().retried, 1)
        self.assertEqual(self.counts(), (1, 0, 0, 0))

    def test_otherIdempotentMethodsRetried(self) -> None:
        """
        HEAD, OPTIONS, DELETE and TRACE are retried like GET.
        """
        for method in (b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"):
            conn = self.reusedConnection()
            rd = conn.request(makeRequest(method))
            self.endpoint.attempts[0].serverClose()
            settle(self.clock)
            self.assertEqual(self.endpoint.connects, 2, method)
            self.endpoint.attempts[1].respond(b"" if method == b"HEAD" else b"ok")
            self.assertEqual(self.successResultOf(rd).code, 200, method)

    def test_retriedOnlyOnce(self) -> None:
        """
        If the retry fails too, the caller gets the failure: no third try.
        """
        conn = self.reusedConnection()
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.endpoint.attempts[1].serverClose()
        settle(self.clock)
        self.failureResultOf(rd, ResponseNeverReceived)
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.stats().retried, 1)

    def test_retryConnectFails(self) -> None:
        """
        If the retry cannot connect, the caller gets that error.
        """
        conn = self.reusedConnection()
        self.endpoint.autoConnect = False
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.endpoint.attempts[1].fail(ConnectionRefusedError())
        self.failureResultOf(rd, ConnectionRefusedError)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))

    def test_postNotRetried(self) -> None:
        """
        A POST with a body is not retried.
        """
        conn = self.reusedConnection()
        rd = conn.request(makeRequest(b"POST", BytesProducer(b"data")))
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.failureResultOf(rd, ResponseNeverReceived)
        self.assertEqual(self.endpoint.connects, 1)
        self.assertEqual(self.stats().retried, 0)

    def test_postWithoutBodyNotRetried(self) -> None:
        """
        POST is not idempotent: not retried even without a body.
        """
        conn = self.reusedConnection()
        rd = conn.request(makeRequest(b"POST"))
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.failureResultOf(rd, ResponseNeverReceived)
        self.assertEqual(self.endpoint.connects, 1)

    def test_getWithWrittenBodyNotRetried(self) -> None:
        """
        An idempotent request whose body was written is not retried.
        """
        conn = self.reusedConnection()
        rd = conn.request(makeRequest(b"DELETE", BytesProducer(b"data")))
        self.assertIn(b"data", self.endpoint.attempts[0].transport.value())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.failureResultOf(rd, ResponseNeverReceived)
        self.assertEqual(self.endpoint.connects, 1)

    def test_unsentBodyRetried(self) -> None:
        """
        A request with a body of which nothing was written (the reused
        connection was gone before it could be sent) is retried, and its
        body goes out on the new connection.
        """
        conn = self.reusedConnection()
        self.endpoint.attempts[0].serverClose()
        rd = conn.request(makeRequest(b"DELETE", BytesProducer(b"payload")))
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 2)
        retry = self.endpoint.attempts[1]
        self.assertTrue(retry.transport.value().endswith(b"\r\n\r\npayload"))
        retry.respond()
        self.assertEqual(self.successResultOf(rd).code, 200)

    def test_lostBeforeSendRetried(self) -> None:
        """
        A GET on a reused connection that was lost before it could be sent
        (C{RequestNotSent}) is retried.
        """
        conn = self.reusedConnection()
        self.endpoint.attempts[0].serverClose()
        rd = conn.request(makeRequest())
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 2)
        self.endpoint.attempts[1].respond()
        self.assertEqual(self.successResultOf(rd).code, 200)

    def test_freshConnectionNotRetried(self) -> None:
        """
        A GET failing on a fresh connection is not retried (Twisted's rule:
        only a reused connection may have been timed out by the server).
        """
        self.makePool()
        conn = self.getNow()
        self.assertFalse(conn.reused)
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.failureResultOf(rd, ResponseNeverReceived)
        self.assertEqual(self.endpoint.connects, 1)

    def test_afterResponseBytesNotRetried(self) -> None:
        """
        Once any part of the response arrived, no retry.
        """
        conn = self.reusedConnection()
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].feed(b"HTTP/1.1 200 OK\r\nContent-Le")
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        f = self.failureResultOf(rd)
        self.assertTrue(f.check(ResponseFailed, ResponseNeverReceived))
        self.assertEqual(self.endpoint.connects, 1)

    def test_retryAutomaticallyFalse(self) -> None:
        """
        With C{retryAutomatically=False}, nothing is retried.
        """
        conn = self.reusedConnection(retryAutomatically=False)
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.failureResultOf(rd, ResponseNeverReceived)
        self.assertEqual(self.endpoint.connects, 1)
        self.assertEqual(self.stats().retried, 0)

    def test_retryAutomaticallyAssignedFalse(self) -> None:
        """
        Assigning C{retryAutomatically = False} later works too.
        """
        self.makePool()
        self.roundTrip(self.getNow())
        self.pool.retryAutomatically = False
        conn = self.getNow()
        self.assertTrue(conn.reused)
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.failureResultOf(rd, ResponseNeverReceived)
        self.assertEqual(self.endpoint.connects, 1)

    def test_zeroRetriesPolicy(self) -> None:
        """
        A policy with C{retries=0} retries nothing.
        """
        conn = self.reusedConnection(retryPolicy=RetryPolicy(retries=0))
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.failureResultOf(rd, ResponseNeverReceived)
        self.assertEqual(self.endpoint.connects, 1)

    def test_cancelledNotRetried(self) -> None:
        """
        A request cancelled by its caller is never retried.
        """
        conn = self.reusedConnection()
        rd = conn.request(makeRequest())
        rd.cancel()
        f = self.failureResultOf(rd)
        self.assertTrue(_cancelledIn(f), f)
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 1)
        self.assertEqual(self.stats().retried, 0)
        self.assertEqual(self.counts(), (0, 0, 0, 0))

    def test_cancelDuringRetry(self) -> None:
        """
        Cancelling while the retry's connection is being opened cancels that
        connect; the caller sees a cancellation and nothing is left over.
        """
        conn = self.reusedConnection()
        self.endpoint.autoConnect = False
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 2)
        rd.cancel()
        self.assertTrue(self.endpoint.attempts[1].cancelled)
        f = self.failureResultOf(rd)
        self.assertTrue(_cancelledIn(f), f)
        settle(self.clock)
        self.assertEqual(self.counts(), (0, 0, 0, 0))
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelRetryWhileWaitingForSlot(self) -> None:
        """
        Cancelling a retry that is queued for a slot removes it from the
        queue.
        """
        conn = self.reusedConnection(maxConnectionsPerHost=1, maxPersistentPerHost=1)
        rd = conn.request(makeRequest())
        other = self.get()
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        # One slot: the earlier waiter or the retry got it, the other waits.
        self.assertEqual(self.endpoint.connects, 2)
        self.assertEqual(self.stats().waiting, 1)
        rd.cancel()
        self.assertTrue(_cancelledIn(self.failureResultOf(rd)))
        settle(self.clock)
        self.successResultOf(other)
        self.assertEqual(self.stats().waiting, 0)

    def test_retryObeysLimits(self) -> None:
        """
        A retry waits for a slot like any request: with one slot per key and
        another request queued, there is never more than one connection.
        """
        conn = self.reusedConnection(maxConnectionsPerHost=1, maxPersistentPerHost=1)
        self.endpoint.autoConnect = False
        rd = conn.request(makeRequest())
        other = self.get()
        self.assertNoResult(other)
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 2)
        s = self.stats()
        self.assertEqual(s.connecting + s.inUse + s.idle, 1)
        self.assertEqual(s.waiting, 1)
        # Serve both, one after the other, on the single slot.
        otherDone: list[Any] = []
        other.addCallback(lambda c: otherDone.append(c.request(makeRequest())))
        for _ in range(10):
            if self.fired(rd) and otherDone and self.fired(otherDone[0]):
                break
            for attempt in self.endpoint.pending:
                attempt.succeed()
            for attempt in self.endpoint.awaiting():
                attempt.respond()
            settle(self.clock)
            s = self.stats()
            self.assertLessEqual(s.connecting + s.inUse + s.idle, 1)
        self.assertEqual(self.successResultOf(rd).code, 200)
        self.assertEqual(self.successResultOf(otherDone[0]).code, 200)

    def fired(self, d: Any) -> bool:
        """
        Whether C{d} has a result (not merely paused on another Deferred).
        """
        got: list[object] = []
        d.addBoth(lambda r: got.append(r) or r)
        return bool(got)

    def test_retryObeysGlobalLimit(self) -> None:
        """
        With the global cap reached by another key, the retry waits for it
        (or evicts an idle connection of that key) instead of exceeding it.
        """
        from tests.support.fakes import OTHER_KEY

        conn = self.reusedConnection(maxConnections=2)
        other = self.endpointFor()
        busy = self.getNow(OTHER_KEY, other)
        rd = conn.request(makeRequest())
        self.endpoint.attempts[0].serverClose()
        settle(self.clock)
        s = self.stats()
        self.assertLessEqual(s.total, 2)
        self.assertEqual(self.endpoint.connects, 2)
        self.endpoint.attempts[1].respond()
        self.successResultOf(rd)
        del busy

    def test_responseTimeoutNotRetriedByDefault(self) -> None:
        """
        A response timeout on a reused connection is not retried by default.
        """
        conn = self.reusedConnection(responseTimeout=2)
        rd = conn.request(makeRequest())
        self.clock.advance(2)
        settle(self.clock)
        self.failureResultOf(rd, ResponseTimeoutError)
        self.assertEqual(self.endpoint.connects, 1)

    def test_responseTimeoutRetriedIfPolicyAllows(self) -> None:
        """
        With C{RetryPolicy(retryTimeouts=True)}, an idempotent request whose
        response timed out on a reused connection is retried.
        """
        conn = self.reusedConnection(
            responseTimeout=2, retryPolicy=RetryPolicy(retryTimeouts=True)
        )
        rd = conn.request(makeRequest())
        self.clock.advance(2)
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 2)
        self.endpoint.attempts[1].respond()
        self.assertEqual(self.successResultOf(rd).code, 200)

    def test_retryGoesOnNewConnectionNotIdleOne(self) -> None:
        """
        The retry is made on a new connection, not on another idle one that
        may be just as stale.
        """
        self.makePool()
        first, second = self.getNow(), self.getNow()
        self.roundTrip(first)
        self.roundTrip(second)
        conn = self.getNow()
        self.assertTrue(conn.reused)
        rd = conn.request(makeRequest())
        stale = [a for a in self.endpoint.attempts if a.unanswered]
        self.assertEqual(len(stale), 1)
        stale[0].serverClose()
        settle(self.clock)
        self.assertEqual(self.endpoint.connects, 3)
        self.endpoint.attempts[2].respond()
        self.successResultOf(rd)


class RetryPolicyTests(PoolTestCase):
    """
    L{RetryPolicy} is a frozen value whose default is Twisted's rule.
    """

    def test_frozen(self) -> None:
        """
        A policy cannot be changed in place.
        """
        policy = RetryPolicy()
        with self.assertRaises(dataclasses.FrozenInstanceError):
            policy.retries = 5  # type: ignore[misc]

    def test_increment(self) -> None:
        """
        C{increment()} returns a new policy with one retry fewer, never below
        zero, and leaves the original alone.
        """
        policy = RetryPolicy(retries=2)
        once = policy.increment()
        self.assertIsNot(once, policy)
        self.assertEqual(policy.retries, 2)
        self.assertEqual(once.retries, 1)
        self.assertEqual(once.increment().retries, 0)
        self.assertEqual(once.increment().increment().retries, 0)
        self.assertEqual(once.methods, policy.methods)

    def test_equalityAndHash(self) -> None:
        """
        Policies are values.
        """
        self.assertEqual(RetryPolicy(), RetryPolicy())
        self.assertEqual(hash(RetryPolicy()), hash(RetryPolicy()))
        self.assertNotEqual(RetryPolicy(), RetryPolicy(retries=2))

    def test_defaults(self) -> None:
        """
        The default retries once, the idempotent methods, on reused
        connections only.
        """
        policy = RetryPolicy()
        self.assertEqual(policy.retries, 1)
        self.assertEqual(
            policy.methods, frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"})
        )
        self.assertEqual(IDEMPOTENT_METHODS, policy.methods)
        self.assertTrue(policy.onlyReusedConnections)
        self.assertFalse(policy.retryTimeouts)

    def test_badRetries(self) -> None:
        """
        A negative count is refused.
        """
        with self.assertRaises(ValueError):
            RetryPolicy(retries=-1)
        with self.assertRaises(ValueError):
            RetryPolicy(unprocessedRetries=-1)
        with self.assertRaises(TypeError):
            RetryPolicy(unprocessedRetries=True)

    def test_badTypes(self) -> None:
        """
        A switch that is not C{True} or C{False}, and methods that are not
        bytes (a str would never match a request's method), are refused
        naming the field.
        """
        for name in ("onlyReusedConnections", "retryTimeouts"):
            with self.assertRaises(TypeError) as cm:
                RetryPolicy(**{name: "no"})
            self.assertIn(f"RetryPolicy.{name}", str(cm.exception))
        for bad in ({"GET"}, "GET", b"GET", [b"GET", 1]):
            with self.assertRaises(TypeError, msg=repr(bad)) as cm:
                RetryPolicy(methods=bad)  # type: ignore[arg-type]
            self.assertIn("RetryPolicy.methods", str(cm.exception))
        self.assertEqual(RetryPolicy(methods=[b"get"]).methods, frozenset({b"GET"}))
        self.assertEqual(RetryPolicy(methods=()).methods, frozenset())

    def test_unprocessedBudget(self) -> None:
        """
        A request the server never processed is retried against its own
        budget: C{increment} with such a failure takes one of the
        C{unprocessedRetries}, not of the C{retries}, and the budget runs
        out.
        """
        from pooled_http import UnprocessedStreamError

        unprocessed = Failure(UnprocessedStreamError("k", "GOAWAY"))
        policy = RetryPolicy()
        self.assertEqual(policy.unprocessedRetries, 4)
        for _ in range(4):
            self.assertTrue(policy.shouldRetry(b"POST", unprocessed, False, False))
            policy = policy.increment(unprocessed)
            self.assertEqual(policy.retries, 1)
        self.assertFalse(policy.shouldRetry(b"POST", unprocessed, False, False))
        self.assertEqual(policy.unprocessedRetries, 0)
        other = Failure(ResponseNeverReceived([]))
        self.assertEqual(policy.increment(other).retries, 0)
        self.assertTrue(
            RetryPolicy(retries=0).shouldRetry(b"GET", unprocessed, False, False)
        )
        self.assertFalse(
            RetryPolicy(unprocessedRetries=0).shouldRetry(b"GET", unprocessed, False, True)
        )

    def test_defaultMatchesTwisted(self) -> None:
        """
        On a reused connection the default policy decides exactly as
        Twisted's C{_RetryingHTTP11ClientProtocol._shouldRetry}.
        """
        methods = [b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE", b"POST", b"PUT", b"PATCH"]
        lost = Failure(ConnectionLost())
        done = Failure(ConnectionDone())
        cancelled = Failure(CancelledError())
        errors: list[BaseException] = [
            RequestNotSent(),
            RequestTransmissionFailed([lost]),
            ResponseNeverReceived([done]),
            ResponseNeverReceived([lost]),
            ResponseNeverReceived([cancelled]),
            RequestTransmissionFailed([cancelled]),
            ResponseFailed([lost]),
            ConnectionRefusedError(),
            CancelledError(),
            ReadTimeoutError(KEY, 1),
        ]
        twisted = _RetryingHTTP11ClientProtocol(None, None)
        policy = RetryPolicy()
        for method in methods:
            for error in errors:
                for body in (None, BytesProducer(b"x")):
                    if body is not None and isinstance(error, RequestNotSent):
                        # pooled_http also retries a body of which nothing
                        # was written (issue rule); Twisted never retries a
                        # body.
                        continue
                    expected = twisted._shouldRetry(method, error, body)
                    got = policy.shouldRetry(method, Failure(error), body is not None, True)
                    self.assertEqual(got, expected, (method, error, body))
                    self.assertFalse(
                        policy.shouldRetry(method, Failure(error), body is not None, False),
                        (method, error, "fresh connection"),
                    )

    def test_unsentBodyRetried(self) -> None:
        """
        A request with a body of which nothing was written may be retried.
        """
        policy = RetryPolicy()
        self.assertTrue(policy.shouldRetry(b"GET", Failure(RequestNotSent()), True, True))

    def test_exhaustedPolicy(self) -> None:
        """
        A policy with no retries left retries nothing.
        """
        policy = RetryPolicy().increment()
        self.assertFalse(
            policy.shouldRetry(b"GET", Failure(ResponseNeverReceived([Failure(ConnectionDone())])), False, True)
        )
