"""
Scripted HTTP servers on loopback that misbehave on purpose.

One L{ScriptedServer} listens on C{127.0.0.1} (port 0) and hands every
complete request it parses to a script: a callable that decides, per
connection and per request, what to send back and when to close, reset or
stall.  The server counts connections and requests so tests can check that a
failed connection is never used again and that a request was not processed
twice.

Also here: TLS material made with trustme, a stub host name resolver and a
reactor wrapper that installs it, a body collector that keeps the reason a
body ended, and L{ChaosScript}, the seeded script of the soak that kills a
share of connections at random points.

Nothing here touches anything but loopback addresses.
"""

from __future__ import annotations

import random
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trustme
from twisted.internet import defer, ssl
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import (
    IDelayedCall,
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.web.client import BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.iweb import IResponse
from zope.interface import directlyProvides, implementer, providedBy

__all__ = [
    "LOOPBACK",
    "ReceivedRequest",
    "RequestParser",
    "ScriptedConnection",
    "ScriptedServer",
    "ChaosScript",
    "Script",
    "response",
    "okScript",
    "unusedPort",
    "TLSMaterial",
    "StubResolver",
    "ResolverReactor",
    "BodyResult",
    "collectBody",
]

LOOPBACK = "127.0.0.1"


@dataclass
class ReceivedRequest:
    """
    One request as a L{ScriptedServer} parsed it.

    @ivar method: The request method, e.g. C{b"GET"}.
    @ivar target: The request target, e.g. C{b"/path"}.
    @ivar version: The protocol version, e.g. C{b"HTTP/1.1"}.
    @ivar headers: The header fields in order, names lower-cased.
    @ivar body: The decoded body (empty until L{complete}).
    @ivar complete: Whether the whole body has arrived.
    @ivar connection: The connection the request came on.
    @ivar index: The request's position on its connection, from 0.
    """

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    connection: ScriptedConnection
    index: int
    body: bytes = b""
    complete: bool = False

    def header(self, name: bytes) -> bytes | None:
        """
        Return the last value of a header, or L{None}.

        @param name: The header name (any case).
        """
        name = name.lower()
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found

    @property
    def requestId(self) -> bytes | None:
        """
        The C{X-Request-Id} header the clients in these tests send.
        """
        return self.header(b"x-request-id")


class RequestParser:
    """
    An incremental HTTP/1.1 request parser for the server side: enough of
    the protocol for a test server (Content-Length and chunked bodies).

    @ivar onHeaders: Called with each request when its head has arrived.
    @ivar onRequest: Called with each request when its body has arrived.
    """

    maxHead = 65536

    def __init__(
        self,
        connection: ScriptedConnection,
        onHeaders: Callable[[ReceivedRequest], None],
        onRequest: Callable[[ReceivedRequest], None],
    ) -> None:
        self.connection = connection
        self.onHeaders = onHeaders
        self.onRequest = onRequest
        self._buffer = b""
        self._current: ReceivedRequest | None = None
        self._remaining = 0
        self._chunked = False
        self._count = 0
        self.stopped = False

    def feed(self, data: bytes) -> None:
        """
        Parse more bytes, calling back for every head and request completed.

        @param data: Bytes received from the client.
        """
        self._buffer += data
        while not self.stopped:
            if self._current is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > self.maxHead:
                        self.stopped = True
                    return
                head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
                self._startRequest(head)
                continue
            if self._chunked:
                if not self._feedChunked():
                    return
            else:
                take = self._buffer[: self._remaining]
                self._buffer = self._buffer[len(take) :]
                self._current.body += take
                self._remaining -= len(take)
                if self._remaining:
                    return
                self._finishRequest()

    def _startRequest(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        method, target, version = (lines[0].split(b" ", 2) + [b"", b""])[:3]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        request = ReceivedRequest(
            method, target, version, headers, self.connection, self._count
        )
        self._count += 1
        self._current = request
        self._chunked = (
            request.header(b"transfer-encoding") or b""
        ).lower() == b"chunked"
        self._remaining = (
            0 if self._chunked else int(request.header(b"content-length") or b"0")
        )
        self.onHeaders(request)
        if not self._chunked and not self._remaining and not self.stopped:
            self._finishRequest()

    def _feedChunked(self) -> bool:
        assert self._current is not None
        while True:
            if self._remaining == 0:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return False
                size = int(self._buffer[:end].split(b";")[0], 16)
                if size == 0:
                    trailersEnd = self._buffer.find(b"\r\n\r\n", end)
                    if trailersEnd < 0:
                        return False
                    self._buffer = self._buffer[trailersEnd + 4 :]
                    self._finishRequest()
                    return True
                self._buffer = self._buffer[end + 2 :]
                self._remaining = size + 2
            dataLeft = max(0, self._remaining - 2)
            take = self._buffer[: self._remaining]
            self._buffer = self._buffer[len(take) :]
            self._remaining -= len(take)
            self._current.body += take[:dataLeft]
            if self._remaining:
                return False

    def _finishRequest(self) -> None:
        request = self._current
        assert request is not None
        self._current = None
        self._remaining = 0
        self._chunked = False
        request.complete = True
        self.onRequest(request)


def response(
    status: int = 200,
    body: bytes = b"ok",
    headers: Iterable[tuple[bytes, bytes]] = (),
    version: bytes = b"HTTP/1.1",
    contentLength: int | None = -1,
    reason: bytes = b"OK",
) -> bytes:
    """
    Build the bytes of a response.

    @param status: The status code.
    @param body: The body bytes appended after the head.
    @param headers: Extra header fields.
    @param version: The protocol version in the status line.
    @param contentLength: The Content-Length to announce: C{-1} for the body's
        real length, L{None} for none at all, or any number to lie.
    @param reason: The reason phrase.
    @return: The response bytes.
    """
    lines = [b"%s %d %s" % (version, status, reason)]
    if contentLength is not None:
        length = len(body) if contentLength == -1 else contentLength
        lines.append(b"Content-Length: %d" % (length,))
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


#: A server script: called with the connection and each request.
Script = Callable[["ScriptedConnection", ReceivedRequest], None]


def okScript(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    The well-behaved script: answer every request with C{200 ok}, echoing
    its C{X-Request-Id}.

    @param connection: The connection the request came on.
    @param request: The request.
    """
    headers = []
    if request.requestId is not None:
        headers.append((b"X-Request-Id", request.requestId))
    connection.send(response(body=b"ok", headers=headers))


class ScriptedConnection(Protocol):
    """
    One server-side connection of a L{ScriptedServer}.

    @ivar server: The server.
    @ivar number: The connection's position among the server's connections,
        from 0.
    @ivar requests: The requests received on this connection, in order.
    @ivar lost: A L{Deferred} that fires when the connection is lost.
    @ivar lostReason: Why the connection was lost, once it was.
    @ivar received: Every byte received, for scripts that look at raw data.
    @ivar ignoreInput: Set to stop parsing what the client sends.
    """

    def __init__(self, server: ScriptedServer, number: int) -> None:
        self.server = server
        self.number = number
        self.requests: list[ReceivedRequest] = []
        self.lost: defer.Deferred[None] = defer.Deferred()
        self.lostReason: Failure | None = None
        self.received = b""
        self.ignoreInput = False
        self.state: dict[str, Any] = {}
        self._timers: list[IDelayedCall] = []
        self._parser = RequestParser(self, self._headersReceived, self._requestReceived)

    @property
    def isOpen(self) -> bool:
        """
        Whether the connection is still open.
        """
        return self.lostReason is None

    def connectionMade(self) -> None:
        if self.server.onConnect is not None:
            self.server.onConnect(self)

    def dataReceived(self, data: bytes) -> None:
        if self.server.record:
            self.received += data
        if not self.ignoreInput:
            self._parser.feed(data)

    def _headersReceived(self, request: ReceivedRequest) -> None:
        if self.server.record:
            self.requests.append(request)
            self.server.requests.append(request)
        if self.server.onHeaders is not None:
            self.server.onHeaders(self, request)

    def _requestReceived(self, request: ReceivedRequest) -> None:
        countIf = self.server.countIf
        if request.requestId is not None and (countIf is None or countIf(request)):
            self.server.processed[request.requestId] += 1
        self.server.script(self, request)

    def send(self, data: bytes) -> None:
        """
        Write bytes to the client (ignored once the connection is lost).

        @param data: The bytes.
        """
        if self.isOpen and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        """
        Close the connection after what was written is sent (a FIN).
        """
        self._parser.stopped = True
        self.ignoreInput = True
        if self.transport is not None:
            self.transport.loseConnection()

    def closeAtOnce(self) -> None:
        """
        Close without waiting for the client: over TLS, send close_notify
        and close the TCP connection right away (as nginx does) instead of
        waiting for the client's close_notify; over TCP, the same as
        L{close}.
        """
        self.close()
        lower = getattr(self.transport, "transport", None)
        if self.server._tls is not None and lower is not None:
            lower.loseConnection()

    def reset(self) -> None:
        """
        Reset the connection: C{SO_LINGER} 0 then close, so the client gets
        an RST (plain TCP only).
        """
        self._parser.stopped = True
        self.ignoreInput = True
        if self.transport is None or not self.isOpen:
            return
        handle = self.transport.getHandle()
        if isinstance(handle, socket.socket):
            handle.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.transport.abortConnection()

    def abort(self) -> None:
        """
        Abort the connection without sending what is buffered.
        """
        self._parser.stopped = True
        self.ignoreInput = True
        if self.transport is not None and self.isOpen:
            self.transport.abortConnection()

    def later(self, delay: float, function: Callable[..., Any], *args: Any) -> None:
        """
        Call C{function(*args)} after C{delay} seconds unless the connection
        is lost first (the call is cancelled then).

        @param delay: Seconds.
        @param function: What to call.
        @param args: Its arguments.
        """
        self._timers = [t for t in self._timers if t.active()]
        self._timers.append(self.server.reactor.callLater(delay, function, *args))

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.lostReason = reason
        self._parser.stopped = True
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers = []
        self.server.open.discard(self)
        self.lost.callback(None)


class _ScriptedFactory(Factory):
    def __init__(self, server: ScriptedServer) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> ScriptedConnection:
        server = self.server
        connection = ScriptedConnection(server, server.connectionCount)
        server.connectionCount += 1
        if server.record:
            server.connections.append(connection)
        self.server.open.add(connection)
        return connection


class ScriptedServer:
    """
    A loopback server that runs a script for every request.

    @ivar reactor: The reactor.
    @ivar script: Called with C{(connection, request)} for every complete
        request.
    @ivar onHeaders: Called with C{(connection, request)} when a request's
        head has arrived, before its body, or L{None}.
    @ivar onConnect: Called with each new connection, or L{None}.
    @ivar connections: Every connection accepted, in order.
    @ivar open: The connections not yet lost.
    @ivar requests: Every request whose head arrived, in order.
    @ivar processed: How many times each C{X-Request-Id} was received in
        full (that is, could have been acted on).
    @ivar port: The listening port number, once L{start}ed.
    @ivar record: Whether to keep every connection, request and received
        byte for inspection.  Long runs turn it off: then L{connections}
        and L{requests} stay empty, L{connectionCount} still counts, and
        L{processed} counts only the requests C{countIf} accepts.
    @ivar connectionCount: Connections accepted.
    """

    def __init__(
        self,
        reactor: Any,
        script: Script = okScript,
        onHeaders: Script | None = None,
        onConnect: Callable[[ScriptedConnection], None] | None = None,
        tls: Any = None,
        record: bool = True,
        countIf: Callable[[ReceivedRequest], bool] | None = None,
    ) -> None:
        self.reactor = reactor
        self.record = record
        self.countIf = countIf
        self.connectionCount = 0
        self.script = script
        self.onHeaders = onHeaders
        self.onConnect = onConnect
        self.connections: list[ScriptedConnection] = []
        self.open: set[ScriptedConnection] = set()
        self.requests: list[ReceivedRequest] = []
        self.processed: Counter[bytes] = Counter()
        self.port = 0
        self._tls = tls
        self._listening: Any = None

    def start(self) -> ScriptedServer:
        """
        Listen on C{127.0.0.1}, port 0.

        @return: C{self}.
        """
        factory = _ScriptedFactory(self)
        if self._tls is not None:
            self._listening = self.reactor.listenSSL(
                0, factory, self._tls, interface=LOOPBACK
            )
        else:
            self._listening = self.reactor.listenTCP(0, factory, interface=LOOPBACK)
        self.port = self._listening.getHost().port
        return self

    def url(self, path: bytes = b"/", host: bytes = LOOPBACK.encode("ascii")) -> bytes:
        """
        The URL of C{path} on this server.

        @param path: The path, starting with C{/}.
        @param host: The host to put in the URL.
        """
        scheme = b"https" if self._tls is not None else b"http"
        return b"%s://%s:%d%s" % (scheme, host, self.port, path)

    def stop(self) -> defer.Deferred[None]:
        """
        Stop listening and abort the connections still open.

        @return: A L{Deferred} that fires when the port is closed and every
            connection is lost.
        """
        waits: list[defer.Deferred[Any]] = []
        if self._listening is not None:
            waits.append(defer.maybeDeferred(self._listening.stopListening))
            self._listening = None
        for connection in list(self.open):
            waits.append(connection.lost)
            connection.abort()
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def requestsOn(self, number: int) -> list[ReceivedRequest]:
        """
        The requests received on connection C{number}.
        """
        return self.connections[number].requests


def unusedPort() -> int:
    """
    Return a loopback TCP port nothing listens on (bound, then released).
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])
    finally:
        probe.close()


class ChaosScript:
    """
    The soak's script: answer well, but kill a seeded random share of
    connections at a random point - before the response headers, in the
    middle of the body, or while the connection is idle after a response -
    and end the others after a random number of requests with
    C{Connection: close}, so connections keep being made.

    @ivar killRate: The share of connections killed.
    @ivar kills: How many connections were killed, by point.
    """

    POINTS = ("before headers", "mid-body", "while idle")

    def __init__(
        self,
        seed: int,
        killRate: float = 0.05,
        maxRequestsPerConnection: int = 10,
        bodySize: int = 2048,
    ) -> None:
        self.random = random.Random(seed)
        self.killRate = killRate
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.body = bytes(self.random.getrandbits(8) for _ in range(bodySize))
        self.kills: Counter[str] = Counter()
        self.killedConnections = 0

    def onConnect(self, connection: ScriptedConnection) -> None:
        """
        Decide the fate of a new connection.

        @param connection: The connection.
        """
        lifetime = self.random.randint(1, self.maxRequestsPerConnection)
        connection.state["lifetime"] = lifetime
        if self.random.random() < self.killRate:
            connection.state["killAt"] = self.random.randrange(lifetime)
            connection.state["point"] = self.random.choice(self.POINTS)
            connection.state["cut"] = self.random.randrange(1, len(self.body))

    def __call__(
        self, connection: ScriptedConnection, request: ReceivedRequest
    ) -> None:
        state = connection.state
        headers = [(b"X-Request-Id", request.requestId or b"")]
        last = request.index + 1 >= state["lifetime"]
        if last:
            headers.append((b"Connection", b"close"))
        data = response(body=self.body, headers=headers)
        if state.get("killAt") == request.index:
            point = state["point"]
            self.kills[point] += 1
            self.killedConnections += 1
            if point == "before headers":
                connection.reset()
                return
            if point == "mid-body":
                # Reset a moment later, once the partial response is out.
                connection.send(data[: len(data) - state["cut"]])
                connection.later(0.005, connection.reset)
                return
            connection.send(data)
            connection.later(self.random.uniform(0.0, 0.02), connection.reset)
            return
        connection.send(data)
        if last:
            connection.close()


@dataclass
class TLSMaterial:
    """
    A certificate authority made by trustme and what servers and clients
    need from it.

    @ivar ca: The trustme CA.
    """

    ca: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.ca is None:
            self.ca = trustme.CA()

    def serverOptions(self, identities: Sequence[str] = (LOOPBACK,)) -> Any:
        """
        Server TLS options with a certificate for C{identities}, signed by
        this CA.

        @param identities: Host names or IP addresses.
        """
        cert = self.ca.issue_cert(*identities)
        pem = cert.private_key_and_cert_chain_pem.bytes()
        return ssl.PrivateCertificate.loadPEM(pem).options()

    def clientPolicy(self) -> Any:
        """
        An Agent C{contextFactory} that trusts only this CA.
        """
        root = ssl.Certificate.loadPEM(self.ca.cert_pem.bytes())
        return BrowserLikePolicyForHTTPS(trustRoot=root)


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class StubResolver:
    """
    A host name resolver that never touches the machine's DNS.

    @ivar addresses: Names that resolve, to the loopback address given.
    @ivar silent: Names whose lookup never completes (a resolver that is
        down and does not answer).
    @ivar lookups: The names looked up, in order.
    @ivar pending: Lookups that have not completed.
    """

    def __init__(
        self, addresses: dict[str, str] | None = None, silent: Iterable[str] = ()
    ) -> None:
        self.addresses = dict(addresses or {})
        self.silent = set(silent)
        self.lookups: list[str] = []
        self.pending: list[IResolutionReceiver] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        self.lookups.append(hostName)
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        if hostName in self.silent:
            self.pending.append(resolutionReceiver)
            return resolution
        address = self.addresses.get(hostName)
        if address is not None:
            if address not in (LOOPBACK, "localhost"):
                raise ValueError(f"only loopback addresses, not {address!r}")
            resolutionReceiver.addressResolved(IPv4Address("TCP", address, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolution


@implementer(IReactorPluggableNameResolver)
class ResolverReactor:
    """
    A reactor that is the real one except for its name resolver.

    @ivar nameResolver: The resolver L{HostnameEndpoint} will use.
    """

    def __init__(self, reactor: Any, resolver: IHostnameResolver) -> None:
        self._reactor = reactor
        self.nameResolver = resolver
        directlyProvides(self, providedBy(reactor), IReactorPluggableNameResolver)

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        old, self.nameResolver = self.nameResolver, resolver
        return old

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)


@dataclass
class BodyResult:
    """
    What a response body turned out to be.

    @ivar body: The bytes delivered.
    @ivar reason: Why the body ended: a L{Failure} of
        L{twisted.web.client.ResponseDone} when it ended well.
    """

    body: bytes
    reason: Failure

    @property
    def complete(self) -> bool:
        """
        Whether the body ended with C{ResponseDone}.
        """
        return bool(self.reason.check(ResponseDone))


class _Collector(Protocol):
    def __init__(self, finished: defer.Deferred[BodyResult]) -> None:
        self.finished = finished
        self.parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        self.finished.callback(BodyResult(b"".join(self.parts), reason))


def collectBody(response: IResponse) -> defer.Deferred[BodyResult]:
    """
    Read a response body to its end, keeping the reason it ended instead of
    failing (unlike C{readBody}).

    @param response: The response.
    @return: A L{Deferred} firing with a L{BodyResult}.
    """
    finished: defer.Deferred[BodyResult] = defer.Deferred()
    response.deliverBody(_Collector(finished))
    return finished
