"""
The connection on Twisted's protocol, alone: no pool, only a fake owner
that records the four reports the contract allows.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import readBody

from pooled_http._lifecycle import Lifecycle
from pooled_http._twistedproto import TwistedHTTP11Connection
from pooled_http.errors import (
    LifecycleError,
    ReadTimeoutError,
    ResponseHeadersTooLargeError,
    ResponseTimeoutError,
)
from tests.support.fakes import makeRequest


class FakeOwner:
    """
    A L{pooled_http._contract.ConnectionOwner} that records what it is told.
    """

    def __init__(self, **settings: Any) -> None:
        self.reactor = Clock()
        self.responseTimeout: float | None = settings.get("responseTimeout")
        self.readTimeout: float | None = settings.get("readTimeout")
        self.maxHeaderBytes: int = settings.get("maxHeaderBytes", 65536)
        self.reports: list[tuple[str, Any]] = []

    def connectionQuiescent(self, connection: Any) -> None:
        self.reports.append(("quiescent", None))

    def connectionGivenUp(self, connection: Any, reason: Failure) -> None:
        self.reports.append(("givenUp", reason.type))

    def connectionTimedOut(self, connection: Any, error: Exception) -> None:
        self.reports.append(("timedOut", type(error)))

    def connectionLost(
        self, connection: Any, previous: Lifecycle, reason: Failure
    ) -> None:
        self.reports.append(("lost", previous))


class _Transport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()


class TwistedConnectionTests(SynchronousTestCase):
    def connect(
        self, **settings: Any
    ) -> tuple[TwistedHTTP11Connection, FakeOwner, _Transport]:
        owner = FakeOwner(**settings)
        connection = TwistedHTTP11Connection(owner, ("http", b"example", 80))
        transport = _Transport()
        connection.makeConnection(transport)
        return connection, owner, transport

    def lose(self, connection: TwistedHTTP11Connection) -> None:
        connection.connectionLost(Failure(Exception("gone")))

    def test_quiescentThenReused(self) -> None:
        """
        A complete response is reported quiescent; the connection takes the
        next request on the same transport.
        """
        connection, owner, transport = self.connect()
        self.assertIs(connection.lifecycle, Lifecycle.ACTIVE)
        d = connection.request(makeRequest())
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(self.successResultOf(readBody(self.successResultOf(d))), b"ok")
        self.assertEqual(owner.reports, [("quiescent", None)])
        self.assertEqual(connection.requestsServed, 1)
        connection.request(makeRequest())
        self.assertEqual(transport.value().count(b"GET / HTTP/1.1\r\n"), 2)

    def test_keepAliveHints(self) -> None:
        """
        C{Keep-Alive: timeout=N, max=M} is read; an HTTP/1.0 response
        without keep-alive makes the connection not reusable.
        """
        connection, owner, _ = self.connect()
        connection.request(makeRequest())
        connection.dataReceived(
            b"HTTP/1.0 200 OK\r\nKeep-Alive: timeout=5, max=7\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        self.assertEqual(
            (connection.keepAliveTimeout, connection.keepAliveMax), (5.0, 7)
        )
        self.assertFalse(connection.reusable)

    def test_connectionCloseGivesUp(self) -> None:
        """
        C{Connection: close} is reported as given up, then lost; the
        connection moves itself to C{CLOSED} and says what it was before.
        """
        connection, owner, transport = self.connect()
        connection.request(makeRequest())
        connection.dataReceived(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertEqual(owner.reports[0][0], "givenUp")
        self.assertTrue(transport.disconnecting)
        self.lose(connection)
        self.assertEqual(owner.reports[-1], ("lost", Lifecycle.ACTIVE))
        self.assertIs(connection.lifecycle, Lifecycle.CLOSED)
        self.assertRaises(LifecycleError, connection.moveTo, Lifecycle.IDLE)

    def test_responseTimeout(self) -> None:
        """
        No head within the owner's C{responseTimeout}: the owner is told,
        the transport aborted, the request fails with the typed error.
        """
        connection, owner, transport = self.connect(responseTimeout=3)
        d = connection.request(makeRequest())
        owner.reactor.advance(2.9)
        self.assertNoResult(d)
        owner.reactor.advance(0.1)
        self.assertEqual(owner.reports, [("timedOut", ResponseTimeoutError)])
        self.assertTrue(transport.aborted)
        self.lose(connection)
        self.failureResultOf(d)
        self.assertIsInstance(connection.timeoutError, ResponseTimeoutError)
        self.assertEqual(owner.reactor.getDelayedCalls(), [])

    def test_readTimeout(self) -> None:
        """
        Body bytes stop for C{readTimeout}: the body's protocol gets
        L{ReadTimeoutError}.
        """
        connection, owner, _ = self.connect(readTimeout=2)
        d = connection.request(makeRequest())
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
        body = readBody(self.successResultOf(d))
        owner.reactor.advance(1.5)
        connection.dataReceived(b"c")
        owner.reactor.advance(1.5)
        self.assertNoResult(body)
        owner.reactor.advance(0.5)
        self.lose(connection)
        self.failureResultOf(body, ReadTimeoutError)
        self.assertEqual(owner.reports[0], ("timedOut", ReadTimeoutError))

    def test_headTooLarge(self) -> None:
        """
        A head past the owner's C{maxHeaderBytes} fails the request.
        """
        connection, owner, _ = self.connect(maxHeaderBytes=100)
        d = connection.request(makeRequest())
        connection.dataReceived(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 30)
        self.lose(connection)
        failure = self.failureResultOf(d)
        self.assertTrue(
            any(r.check(ResponseHeadersTooLargeError) for r in failure.value.reasons)
        )

    def test_cancelReadBodyAborts(self) -> None:
        """
        Cancelling C{readBody} while the body is coming aborts the
        connection (the body's transport has C{abortConnection}), so its
        slot can be freed; no deprecation warning is raised.
        """
        connection, owner, transport = self.connect()
        d = connection.request(makeRequest())
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        body: Deferred[bytes] = readBody(self.successResultOf(d))
        body.cancel()
        self.assertTrue(transport.aborted)
        self.lose(connection)
        self.failureResultOf(body)
        self.assertEqual(owner.reports[-1], ("lost", Lifecycle.ACTIVE))
        self.assertEqual(self.flushWarnings(), [])

    def test_staleAbortAfterResponseIsHarmless(self) -> None:
        """
        The finished body's transport, aborted after the response is over,
        does not touch the connection now serving another request.
        """
        connection, owner, transport = self.connect()
        d = connection.request(makeRequest())
        connection.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        response = self.successResultOf(d)
        bodyTransport: list[Any] = []

        class Keep:
            def makeConnection(self, t: Any) -> None:
                bodyTransport.append(t)

            def dataReceived(self, data: bytes) -> None:
                pass

            def connectionLost(self, reason: Failure) -> None:
                pass

        response.deliverBody(Keep())
        connection.request(makeRequest())
        bodyTransport[0].abortConnection()
        self.assertFalse(transport.aborted)

    def test_closeAbortsAfterGrace(self) -> None:
        """
        C{close(grace)} asks the transport to go and aborts it if it has
        not gone after the grace period.
        """
        connection, owner, transport = self.connect()
        connection.close(2)
        self.assertIs(connection.lifecycle, Lifecycle.CLOSING)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(connection.pendingCalls()), 1)
        owner.reactor.advance(2)
        self.assertTrue(transport.aborted)
        lost = connection.whenLost()
        self.lose(connection)
        self.successResultOf(lost)
        self.assertEqual(owner.reports, [("lost", Lifecycle.CLOSING)])
        self.assertEqual(owner.reactor.getDelayedCalls(), [])
