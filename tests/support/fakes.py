"""
A small kit of fakes for driving a connection pool deterministically: an
endpoint whose connection attempts the test completes, fails or leaves
hanging; an in-memory transport that records how it was closed; helpers to
feed canned HTTP responses into a connection and to build requests.

Time is driven by L{twisted.internet.task.Clock}.  Closing a fake transport
delivers C{connectionLost} on the next turn of that clock (as a real reactor
does), so tests call L{settle} after anything that closes a connection.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionAborted,
    ConnectionDone,
)
from twisted.internet.interfaces import IConsumer, IProtocolFactory, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web._newclient import Request
from twisted.web.http_headers import Headers
from zope.interface import implementer

__all__ = [
    "KEY",
    "OTHER_KEY",
    "ConnectAttempt",
    "FakeEndpoint",
    "FakeTransport",
    "FakeTLSTransport",
    "BodyCollector",
    "BytesProducer",
    "makeRequest",
    "responseBytes",
    "settle",
    "PoolTestCase",
]

#: A pool key shaped like the ones L{twisted.web.client.Agent} uses.
KEY: tuple[bytes, bytes, int] = (b"http", b"a.example", 80)
#: A second key.
OTHER_KEY: tuple[bytes, bytes, int] = (b"http", b"b.example", 80)

_ADDRESS = IPv4Address("TCP", "127.0.0.1", 80)


def settle(clock: Clock, turns: int = 5) -> None:
    """
    Let zero-delay calls (such as a fake transport's C{connectionLost})
    run, without moving time forward.

    @param clock: The clock driving the pool.
    @param turns: How many rounds of zero-delay calls to run.
    """
    for _ in range(turns):
        clock.advance(0)


class FakeTransport(StringTransport):
    """
    An in-memory transport that records how it was closed and delivers
    C{connectionLost} to its protocol on the next turn of a clock.

    @ivar clock: The clock used to deliver C{connectionLost}.
    @ivar hangOnClose: If C{True}, L{loseConnection} never leads to
        C{connectionLost} (a peer that never finishes closing); only
        L{abortConnection} does.
    @ivar loseCount: How many times L{loseConnection} was called.
    @ivar aborted: Whether L{abortConnection} was called.
    @ivar lost: Whether C{connectionLost} was delivered to the protocol.
    """

    def __init__(self, clock: Clock, hangOnClose: bool = False) -> None:
        StringTransport.__init__(self, hostAddress=_ADDRESS, peerAddress=_ADDRESS)
        self.clock = clock
        self.hangOnClose = hangOnClose
        self.loseCount = 0
        self.aborted = False
        self.lost = False
        self._pendingLoss = False
        self.protocol: Any = None

    @property
    def closing(self) -> bool:
        """
        Whether anybody asked this transport to close or abort.
        """
        return self.loseCount > 0 or self.aborted

    def loseConnection(self) -> None:
        """
        Record the call; deliver C{connectionLost(ConnectionDone)} on the
        next clock turn unless C{hangOnClose}.
        """
        self.loseCount += 1
        self.disconnecting = True
        if not self.hangOnClose:
            self._scheduleLoss(ConnectionDone("closed locally"))

    def stopProducing(self) -> None:
        """
        Like a TCP transport: stopping production closes the connection.
        """
        StringTransport.stopProducing(self)
        self.loseConnection()

    def abortConnection(self) -> None:
        """
        Record the call; deliver C{connectionLost(ConnectionAborted)} on the
        next clock turn.
        """
        self.aborted = True
        self.disconnecting = True
        self._scheduleLoss(ConnectionAborted())

    def _scheduleLoss(self, reason: Exception) -> None:
        if self.lost or self._pendingLoss:
            return
        self._pendingLoss = True
        self.clock.callLater(0, self.loseNow, reason)

    def loseNow(self, reason: Exception | None = None) -> None:
        """
        Deliver C{connectionLost} to the protocol at once (at most once).

        @param reason: The reason; L{ConnectionDone} if not given.
        """
        if self.lost:
            return
        self.lost = True
        self.connected = False
        self._pendingLoss = False
        if reason is None:
            reason = ConnectionDone("closed by peer")
        assert self.protocol is not None
        self.protocol.connectionLost(Failure(reason))

    def requestCount(self) -> int:
        """
        How many HTTP requests were written to this transport.
        """
        return self.value().count(b" HTTP/1.1\r\n")


@implementer(ISSLTransport)
class FakeTLSTransport(FakeTransport):
    """
    A L{FakeTransport} that says it is TLS; the test completes the handshake
    by calling the protocol's C{handshakeCompleted()}.
    """

    def getPeerCertificate(self) -> None:
        """No certificate."""
        return None

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Record the setting."""
        self.tcpNoDelay = enabled

    def getTcpNoDelay(self) -> bool:
        """Return the setting."""
        return getattr(self, "tcpNoDelay", False)

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Record the setting."""
        self.tcpKeepAlive = enabled

    def getTcpKeepAlive(self) -> bool:
        """Return the setting."""
        return getattr(self, "tcpKeepAlive", False)


class ConnectAttempt:
    """
    One call to L{FakeEndpoint.connect}: the test decides its outcome.

    @ivar endpoint: The endpoint that was asked to connect.
    @ivar factory: The protocol factory the pool passed.
    @ivar deferred: The L{Deferred} returned to the pool.
    @ivar cancelled: Whether the pool cancelled the attempt.
    @ivar protocol: The protocol built on success, else L{None}.
    @ivar transport: The L{FakeTransport} on success, else L{None}.
    """

    def __init__(self, endpoint: FakeEndpoint, factory: IProtocolFactory) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.cancelled = False
        self.protocol: Any = None
        self.transport: FakeTransport | None = None
        self.answered = 0
        self.deferred: Deferred[Any] = Deferred(self._cancel)

    def _cancel(self, d: Deferred[Any]) -> None:
        self.cancelled = True
        d.errback(Failure(ConnectingCancelledError(_ADDRESS)))

    @property
    def done(self) -> bool:
        """
        Whether the attempt's L{Deferred} already fired.
        """
        return self.deferred.called

    def succeed(self, hangOnClose: bool | None = None, tls: bool = False) -> Any:
        """
        Build the protocol, connect it to a fresh L{FakeTransport} and fire
        the attempt with it.

        @param hangOnClose: Override the endpoint's C{hangOnClose} setting.
        @param tls: Use a L{FakeTLSTransport} (handshake not yet complete).
        @return: The protocol.
        """
        assert not self.deferred.called, "connect attempt already finished"
        protocol = self.factory.buildProtocol(_ADDRESS)
        assert protocol is not None
        if hangOnClose is None:
            hangOnClose = self.endpoint.hangOnClose
        transportType = FakeTLSTransport if tls else FakeTransport
        transport = transportType(self.endpoint.clock, hangOnClose)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.protocol = protocol
        self.transport = transport
        self.deferred.callback(protocol)
        return protocol

    def fail(self, reason: BaseException) -> None:
        """
        Fail the attempt.

        @param reason: The exception to fail with.
        """
        assert not self.deferred.called, "connect attempt already finished"
        self.deferred.errback(Failure(reason))

    def respond(
        self,
        body: bytes = b"ok",
        code: int = 200,
        headers: dict[bytes, bytes] | None = None,
        close: bool = False,
    ) -> None:
        """
        Feed a complete response into the connection.

        @param body: The body (sent with a Content-Length).
        @param code: The status code.
        @param headers: Extra headers.
        @param close: Add C{Connection: close}.
        """
        self.answered += 1
        self.feed(responseBytes(body, code, headers, close))

    @property
    def unanswered(self) -> int:
        """
        How many requests were written to this connection and not yet
        answered with L{respond}.
        """
        if self.transport is None:
            return 0
        return self.transport.requestCount() - self.answered

    def feed(self, data: bytes) -> None:
        """
        Deliver raw bytes from the server.

        @param data: The bytes.
        """
        assert self.protocol is not None, "connect attempt did not succeed"
        self.protocol.dataReceived(data)

    def serverClose(self, reason: Exception | None = None) -> None:
        """
        Simulate the server closing the connection: C{connectionLost} at once.

        @param reason: The reason; L{ConnectionDone} if not given.
        """
        assert self.transport is not None, "connect attempt did not succeed"
        self.transport.loseNow(reason)


class FakeEndpoint:
    """
    A fake L{twisted.internet.interfaces.IStreamClientEndpoint}.

    @ivar clock: The clock the transports use.
    @ivar autoConnect: If C{True}, every attempt succeeds at once.
    @ivar hangOnClose: Default for the transports' C{hangOnClose}.
    @ivar attempts: Every L{ConnectAttempt}, in order.
    """

    def __init__(
        self, clock: Clock, autoConnect: bool = True, hangOnClose: bool = False
    ) -> None:
        self.clock = clock
        self.autoConnect = autoConnect
        self.hangOnClose = hangOnClose
        self.attempts: list[ConnectAttempt] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        """
        Start a connection attempt.

        @param protocolFactory: The factory to build the protocol with.
        @return: The attempt's L{Deferred}.
        """
        attempt = ConnectAttempt(self, protocolFactory)
        self.attempts.append(attempt)
        if self.autoConnect:
            attempt.succeed()
        return attempt.deferred

    @property
    def connects(self) -> int:
        """
        How many connection attempts were made.
        """
        return len(self.attempts)

    @property
    def pending(self) -> list[ConnectAttempt]:
        """
        Attempts that have not finished yet.
        """
        return [a for a in self.attempts if not a.deferred.called]

    def awaiting(self) -> list[ConnectAttempt]:
        """
        Connections that received a request not yet answered.
        """
        return [a for a in self.attempts if a.unanswered > 0]


def responseBytes(
    body: bytes = b"ok",
    code: int = 200,
    headers: dict[bytes, bytes] | None = None,
    close: bool = False,
) -> bytes:
    """
    Render an HTTP/1.1 response with a Content-Length.

    @param body: The body.
    @param code: The status code.
    @param headers: Extra headers.
    @param close: Add C{Connection: close}.
    @return: The bytes.
    """
    lines = [b"HTTP/1.1 %d OK" % (code,), b"Content-Length: %d" % (len(body),)]
    if close:
        lines.append(b"Connection: close")
    for name, value in (headers or {}).items():
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def makeRequest(
    method: bytes = b"GET",
    bodyProducer: Any = None,
    persistent: bool = True,
) -> Request:
    """
    Build a request the way L{twisted.web.client.Agent} does.

    @param method: The method.
    @param bodyProducer: An L{IBodyProducer} or L{None}.
    @param persistent: Whether the request asks for a persistent connection.
    @return: The request.
    """
    return Request._construct(
        method,
        b"/",
        Headers({b"host": [b"a.example"]}),
        bodyProducer,
        persistent=persistent,
        parsedURI=None,
    )


class BytesProducer:
    """
    An L{twisted.web.iweb.IBodyProducer} that writes its bytes at once.

    @ivar body: The bytes.
    @ivar length: Their length.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """
        Write the body.

        @param consumer: Where to write.
        @return: A fired L{Deferred}.
        """
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""


class BodyCollector(Protocol):
    """
    A protocol for L{twisted.web.iweb.IResponse.deliverBody} that keeps what
    it got.

    @ivar data: The body bytes received.
    @ivar reason: The C{connectionLost} reason, once delivered.
    """

    def __init__(self) -> None:
        self.data = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        """Keep C{data}."""
        self.data += data

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """Keep C{reason}."""
        self.reason = reason


class PoolTestCase(SynchronousTestCase):
    """
    Base for Clock-driven pool tests: builds a pool on a L{Clock} with a
    L{FakeEndpoint}, and offers short-hands for common steps.

    @ivar clock: The clock the pool runs on.
    @ivar pool: The pool under test.
    @ivar endpoint: An auto-connecting endpoint for L{KEY}.
    """

    clock: Clock
    pool: Any
    endpoint: FakeEndpoint

    def makePool(self, persistent: bool = True, **options: Any) -> Any:
        """
        Build the pool under test.

        @param persistent: Passed to the pool.
        @param options: Keyword options for the pool.
        @return: The pool (also C{self.pool}).
        """
        from pooled_http import HTTPConnectionPool

        self.clock = Clock()
        self.endpoint = FakeEndpoint(self.clock)
        self.pool = HTTPConnectionPool(self.clock, persistent, **options)
        return self.pool

    def endpointFor(self, autoConnect: bool = True, hangOnClose: bool = False) -> FakeEndpoint:
        """
        Make another endpoint on the test clock.

        @param autoConnect: See L{FakeEndpoint}.
        @param hangOnClose: See L{FakeEndpoint}.
        @return: The endpoint.
        """
        return FakeEndpoint(self.clock, autoConnect, hangOnClose)

    def get(self, key: Hashable = KEY, endpoint: FakeEndpoint | None = None) -> Deferred[Any]:
        """
        Call C{getConnection}.

        @param key: The key.
        @param endpoint: The endpoint; C{self.endpoint} if not given.
        @return: C{getConnection}'s L{Deferred}.
        """
        return self.pool.getConnection(key, endpoint or self.endpoint)

    def getNow(self, key: Hashable = KEY, endpoint: FakeEndpoint | None = None) -> Any:
        """
        Call C{getConnection} and return the connection it gives at once.

        @param key: The key.
        @param endpoint: The endpoint; C{self.endpoint} if not given.
        @return: The handed-out connection.
        """
        return self.successResultOf(self.get(key, endpoint))

    def startResponse(
        self,
        head: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        **options: Any,
    ) -> tuple[Any, Any]:
        """
        Make a pool, send a request on a new connection and feed it C{head}
        (by default the headers and 3 of 10 body bytes).

        @param options: Pool options.
        @return: The response and the connection attempt.
        """
        self.makePool(**options)
        conn = self.getNow()
        rd = conn.request(makeRequest())
        attempt = self.endpoint.attempts[0]
        attempt.feed(head)
        return self.successResultOf(rd), attempt

    def roundTrip(
        self,
        conn: Any,
        endpoint: FakeEndpoint | None = None,
        method: bytes = b"GET",
        **respond: Any,
    ) -> Any:
        """
        Send a request on C{conn}, answer it with a complete response and
        return the response.

        @param conn: A handed-out connection.
        @param endpoint: The endpoint C{conn} came from.
        @param method: The request method.
        @param respond: Keyword arguments for L{ConnectAttempt.respond}.
        @return: The response.
        """
        endpoint = endpoint or self.endpoint
        before = {id(a): a.unanswered for a in endpoint.attempts}
        d = conn.request(makeRequest(method))
        sent = [a for a in endpoint.attempts if a.unanswered > before.get(id(a), 0)]
        self.assertEqual(len(sent), 1, "request not written to exactly one connection")
        sent[0].respond(**respond)
        return self.successResultOf(d)

    def stats(self) -> Any:
        """
        Return C{self.pool.stats()}.
        """
        return self.pool.stats()

    def counts(self) -> tuple[int, int, int, int]:
        """
        Return the pool's C{(idle, inUse, connecting, waiting)} totals.
        """
        s = self.pool.stats()
        return (s.idle, s.inUse, s.connecting, s.waiting)
