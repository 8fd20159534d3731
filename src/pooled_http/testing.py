"""
A test kit for code that makes HTTP requests through a pooled_http pool.

Three tools, usable from trial, pytest or any other framework:

  - L{MemoryNetwork}: an in-memory network that the pool's real connections
    talk to.  Each host is served by a L{MemoryServer} (a C{twisted.web}
    resource, or a plain callable) that keeps connections alive, numbers
    them and counts the requests on each, so a test can say "this request
    reused connection 3".  Everything runs on a
    L{twisted.internet.task.Clock}: no sockets, no real time, no global
    reactor.  Faults are scripted on the server: close idle connections,
    reset or stall a response, drip it a few bytes per tick, close after N
    requests, refuse or never answer connection attempts.
  - L{assertPoolAtRest}: fails with a readable message if a pool still has
    connections in use, connection attempts, waiting requests or timers.
  - L{startLocalServer}: a real C{twisted.web} server on 127.0.0.1 (HTTP, or
    HTTPS with a certificate made for the test by C{trustme}), for
    integration tests, whose C{stop()} fires once the port and every server
    connection are closed.

L{PoolTestMixin} puts these together for trial test cases; the pytest
fixtures live in L{pooled_http.pytest_plugin}.

A test on the in-memory network::

    network = MemoryNetwork()
    server = network.addServer("api.example", handler=lambda request: b"ok")
    pool = HTTPConnectionPool(network.clock)
    agent = network.pooledAgent(pool)

    d = agent.request(b"GET", b"http://api.example/")
    network.flush()
    ...
    assert network.requests[-1].connectionId == 1
    pool.close(); network.flush()
    assertPoolAtRest(pool)

Time moves only when the test moves it: L{MemoryNetwork.flush} delivers
everything that is due now, L{MemoryNetwork.advance} moves the clock on.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from twisted.internet.address import IPv4Address
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import (
    IConsumer,
    IProtocolFactory,
    IPushProducer,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.task import Clock
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

if TYPE_CHECKING:  # pragma: no cover
    from treq.client import HTTPClient

    from ._agent import PooledAgent
    from ._pool import HTTPConnectionPool

__all__ = [
    "MemoryNetwork",
    "MemoryServer",
    "ServerConnection",
    "RequestRecord",
    "Stall",
    "assertPoolAtRest",
    "LocalServer",
    "startLocalServer",
    "PoolTestMixin",
]

#: Most zero-delay turns L{MemoryNetwork.flush} runs before giving up.
MAX_FLUSH_TURNS = 10000


class _NetworkCall:
    """
    A callable scheduled by the in-memory network, marked so that
    L{assertPoolAtRest} can tell the network's own timers from the pool's.
    """

    def __init__(self, function: Callable[[], object]) -> None:
        self.function = function
        self.__qualname__ = getattr(function, "__qualname__", repr(function))

    def __call__(self) -> None:
        self.function()


class _EndOfStream:
    """
    A marker queued after the last bytes of a stream: C{CLOSE} is an orderly
    close (the reader sees L{ConnectionDone}), C{RESET} a reset (it sees
    L{ConnectionLost}).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_CLOSE = _EndOfStream("close")
_RESET = _EndOfStream("reset")

# A queued piece of a stream: bytes (with an optional drip rate as
# (bytesPerTick, tickSeconds)) or an end-of-stream marker.
_Item = tuple["bytes | _EndOfStream", "tuple[int, float] | None"]


@implementer(ITransport, IConsumer, IPushProducer)
class _MemoryTransport:
    """
    One end of an in-memory connection.  Bytes written here reach the peer
    on a later turn of the network's clock; C{loseConnection} and
    C{abortConnection} end the connection on both sides as TCP does.

    @ivar disconnecting: Whether this end has started to close.
    @ivar disconnected: Whether this end's protocol has seen
        C{connectionLost}.
    """

    disconnecting = False
    disconnected = False

    def __init__(
        self, network: MemoryNetwork, protocol: Any, host: Any, peer: Any
    ) -> None:
        self._network = network
        self.protocol = protocol
        self._host = host
        self._peerAddress = peer
        self.peer: _MemoryTransport | None = None
        self._inbox: deque[_Item] = deque()
        self._readPaused = False
        self._delivery: DelayedCall | None = None
        self._producer: Any = None
        self._streaming = True
        # Called with each chunk this end writes, before it is queued for
        # the peer; the server side puts its fault script here.
        self.outgoing: Callable[[_Item], list[_Item]] = lambda item: [item]
        self.onLost: Callable[[Failure], None] = lambda reason: None

    # ITransport

    def write(self, data: bytes) -> None:
        """
        Send C{data} to the peer (dropped once this end is closing).
        """
        if self.disconnecting or self.disconnected or not data:
            return
        self._send((bytes(data), None))

    def writeSequence(self, data: Any) -> None:
        """
        Send every chunk of C{data}.
        """
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """
        Close after the bytes already written: the peer reads them, then
        sees L{ConnectionDone}; this end sees it too.
        """
        if self.disconnecting or self.disconnected:
            return
        self.disconnecting = True
        self._send((_CLOSE, None))
        self._network.callLater(0, self._lose, Failure(ConnectionDone()))

    def abortConnection(self) -> None:
        """
        Reset the connection: bytes not yet read are dropped, this end sees
        L{ConnectionAborted}, the peer L{ConnectionLost}.
        """
        if self.disconnected:
            return
        self.disconnecting = True
        peer = self.peer
        if peer is not None and not peer.disconnected:
            peer._inbox.clear()
            peer._inbox.append((_RESET, None))
            peer._kick()
        self._network.callLater(0, self._lose, Failure(ConnectionAborted()))

    def getPeer(self) -> Any:
        """
        The address of the other end.
        """
        return self._peerAddress

    def getHost(self) -> Any:
        """
        The address of this end.
        """
        return self._host

    # IConsumer

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        Take a producer that writes to this transport; a pull producer is
        asked for more on each turn of the clock.
        """
        self._producer = producer
        self._streaming = streaming
        if not streaming:
            self._network.callLater(0, self._pull, producer)

    def unregisterProducer(self) -> None:
        """
        Forget the producer.
        """
        self._producer = None

    def _pull(self, producer: Any) -> None:
        if self._producer is producer and not self.disconnected:
            producer.resumeProducing()
            if self._producer is producer:
                self._network.callLater(0, self._pull, producer)

    # IPushProducer: the protocol pausing what it reads.

    def pauseProducing(self) -> None:
        """
        Stop delivering received bytes until L{resumeProducing}.
        """
        self._readPaused = True
        if self._delivery is not None and self._delivery.active():
            self._delivery.cancel()
        self._delivery = None

    def resumeProducing(self) -> None:
        """
        Deliver received bytes again.
        """
        self._readPaused = False
        self._kick()

    def stopProducing(self) -> None:
        """
        Close the connection, as a TCP transport does.
        """
        self.loseConnection()

    # Moving bytes

    def _send(self, item: _Item) -> None:
        peer = self.peer
        if peer is None or peer.disconnected:
            return
        for piece in self.outgoing(item):
            peer._receive(piece)

    def _receive(self, item: _Item) -> None:
        if self.disconnected:
            return
        self._inbox.append(item)
        self._kick()

    def _kick(self, delay: float = 0.0) -> None:
        if (
            self._readPaused
            or self.disconnected
            or not self._inbox
            or (self._delivery is not None and self._delivery.active())
        ):
            return
        self._delivery = self._network.callLater(delay, self._deliver)

    def _deliver(self) -> None:
        self._delivery = None
        if self._readPaused or self.disconnected or not self._inbox:
            return
        data, drip = self._inbox.popleft()
        if isinstance(data, _EndOfStream):
            if data is _RESET:
                self._lose(Failure(ConnectionLost("Connection reset by peer")))
            else:
                self._lose(Failure(ConnectionDone()))
            return
        if drip is not None:
            size, tick = drip
            data, rest = data[:size], data[size:]
            if rest:
                self._inbox.appendleft((rest, drip))
            self.protocol.dataReceived(data)
            self._kick(tick)
            return
        # Everything queued without a drip rate, up to the next marker.
        chunks = [data]
        while self._inbox:
            nextData, nextDrip = self._inbox[0]
            if isinstance(nextData, _EndOfStream) or nextDrip is not None:
                break
            self._inbox.popleft()
            chunks.append(nextData)
        self.protocol.dataReceived(b"".join(chunks))
        self._kick()

    def _lose(self, reason: Failure) -> None:
        if self.disconnected:
            return
        self.disconnecting = True
        self.disconnected = True
        self._inbox.clear()
        self._producer = None
        if self._delivery is not None and self._delivery.active():
            self._delivery.cancel()
        self._delivery = None
        self.onLost(reason)
        self.protocol.connectionLost(reason)


@dataclass(frozen=True)
class RequestRecord:
    """
    One request a L{MemoryServer} received.

    @ivar host: The host name of the server.
    @ivar method: The request method.
    @ivar path: The request target, as sent.
    @ivar connectionId: The L{ServerConnection.id} it came on.
    @ivar number: Its position on that connection: 1 for the first request.
    """

    host: str
    method: bytes
    path: bytes
    connectionId: int
    number: int

    @property
    def reused(self) -> bool:
        """
        Whether the request came on a connection that had carried one
        before.
        """
        return self.number > 1


class ServerConnection:
    """
    The server's side of one in-memory connection.

    @ivar id: The connection's number, unique on its network, from 1.
    @ivar server: The L{MemoryServer} that accepted it.
    @ivar requests: How many requests arrived on it.
    @ivar busy: Whether a request is being answered on it.
    @ivar lostReason: Why it closed (L{None} while open).
    @ivar transport: The server's end of the in-memory connection.
    """

    def __init__(self, server: MemoryServer, connectionId: int) -> None:
        self.id = connectionId
        self.server = server
        self.requests = 0
        self.busy = False
        self.lostReason: Failure | None = None
        self.transport: _MemoryTransport | None = None
        self._shaper: _Shaper | None = None
        self._idleTimer: DelayedCall | None = None

    def __repr__(self) -> str:
        state = (
            "closed"
            if self.lostReason is not None
            else ("busy" if self.busy else "idle")
        )
        return (
            f"<ServerConnection {self.id} to {self.server.host} {state} "
            f"requests={self.requests}>"
        )

    @property
    def open(self) -> bool:
        """
        Whether the connection is still open.
        """
        return self.lostReason is None

    @property
    def idle(self) -> bool:
        """
        Whether it is open with no request being answered.
        """
        return self.open and not self.busy

    def close(self) -> None:
        """
        Close it from the server's side, as a server ending a keep-alive
        connection does: the client reads what was sent, then the end.
        """
        if self.transport is not None:
            self.transport.loseConnection()

    def reset(self) -> None:
        """
        Reset it from the server's side.
        """
        if self.transport is not None:
            self.transport.abortConnection()

    # Driven by the server

    def _outgoing(self, item: _Item) -> list[_Item]:
        if self._shaper is None:
            return [item]
        return self._shaper.feed(item)

    def _requestStarted(self, fault: _ResponseFault | None) -> None:
        self.requests += 1
        self.busy = True
        self._cancelIdleTimer()
        self._shaper = _Shaper(self, fault) if fault is not None else None

    def _requestFinished(self) -> None:
        self.busy = False
        self._startIdleTimer()

    def _startIdleTimer(self) -> None:
        self._cancelIdleTimer()
        timeout = self.server.idleTimeout
        if timeout is not None and self.open:
            self._idleTimer = self.server.network.callLater(timeout, self.close)

    def _cancelIdleTimer(self) -> None:
        if self._idleTimer is not None and self._idleTimer.active():
            self._idleTimer.cancel()
        self._idleTimer = None

    def _lost(self, reason: Failure) -> None:
        self.lostReason = reason
        self.busy = False
        self._cancelIdleTimer()


@dataclass
class _ResponseFault:
    """
    What to do to one response: C{kind} is C{"stallHead"}, C{"stallBody"},
    C{"resetBody"} or C{"drip"}.
    """

    kind: str
    afterBytes: int = 0
    drip: tuple[int, float] | None = None
    stall: Stall | None = None


class Stall:
    """
    A response held back by L{MemoryServer.stallBeforeHeaders} or
    L{MemoryServer.stallMidBody}.

    @ivar connection: The L{ServerConnection} whose response is held, once a
        request has taken this fault.
    """

    def __init__(self) -> None:
        self.connection: ServerConnection | None = None
        self._shaper: _Shaper | None = None
        self._released = False

    @property
    def holding(self) -> bool:
        """
        Whether some of the response has been held back and not released.
        """
        return self._shaper is not None and bool(self._shaper.held)

    def release(self) -> None:
        """
        Send what was held and let the rest of the response through.
        """
        self._released = True
        if self._shaper is not None:
            self._shaper.release()


class _Shaper:
    """
    Applies one L{_ResponseFault} to the bytes of one response as the
    server writes them.
    """

    def __init__(self, connection: ServerConnection, fault: _ResponseFault) -> None:
        self.connection = connection
        self.fault = fault
        self.inHead = True
        self.headTail = b""
        self.bodyBytes = 0
        self.held: list[_Item] = []
        self.stalling = False
        self.done = False
        if fault.stall is not None:
            fault.stall.connection = connection
            fault.stall._shaper = self
            if fault.stall._released:
                self.done = True

    def feed(self, item: _Item) -> list[_Item]:
        data, _ = item
        fault = self.fault
        if self.done:
            return [item]
        if fault.kind == "drip":
            return [(data, fault.drip)] if isinstance(data, bytes) else [item]
        if self.held or self.stalling or fault.kind == "stallHead":
            self.held.append(item)
            return []
        if isinstance(data, _EndOfStream):
            return [item]
        head = b""
        if self.inHead:
            joined = self.headTail + data
            end = joined.find(b"\r\n\r\n")
            if end < 0:
                self.headTail = joined[-3:]
                return [item]
            split = end + 4 - len(self.headTail)
            head, data = data[:split], data[split:]
            self.inHead = False
        allowed = fault.afterBytes - self.bodyBytes
        sent, rest = data[:allowed], data[allowed:]
        self.bodyBytes += len(sent)
        out: list[_Item] = [(head + sent, None)] if head or sent else []
        if self.bodyBytes < fault.afterBytes:
            return out
        if fault.kind == "resetBody":
            # The client reads what was sent so far, then the reset; the
            # server's side is aborted.
            self.done = True
            out.append((_RESET, None))
            transport = self.connection.transport
            if transport is not None:
                transport.disconnecting = True
                self.connection.server.network.callLater(
                    0, transport._lose, Failure(ConnectionAborted())
                )
            return out
        self.stalling = True
        if rest:
            self.held.append((rest, None))
        return out

    def release(self) -> None:
        self.done = True
        self.stalling = False
        held, self.held = self.held, []
        transport = self.connection.transport
        if transport is None or transport.peer is None:
            return
        for item in held:
            transport.peer._receive(item)


class _HandlerResource(Resource):
    """
    Serves every request with a callable: it returns the body as bytes, or
    L{None} when it finishes the request itself (as C{NOT_DONE_YET}).
    """

    isLeaf = True

    def __init__(self, handler: Callable[[Request], bytes | None]) -> None:
        super().__init__()
        self.handler = handler

    def render(self, request: Any) -> Any:
        body = self.handler(request)
        return NOT_DONE_YET if body is None else body


class _EchoResource(Resource):
    """
    Answers every request with its method and path, e.g. C{b"GET /a"}.
    """

    isLeaf = True

    def render(self, request: Any) -> bytes:
        body: bytes = request.method + b" " + request.uri
        return body


class _ServerSite(Site):
    """
    A L{Site} that tells its L{MemoryServer} about every request before it
    is answered.
    """

    def __init__(self, server: MemoryServer, resource: Any) -> None:
        super().__init__(resource, timeout=None, reactor=server.network.clock)
        self.server = server

    def getResourceFor(self, request: Any) -> Any:
        self.server._requestReceived(request)
        return super().getResourceFor(request)


class MemoryServer:
    """
    An HTTP/1.1 server for one host (and port, if given) of a
    L{MemoryNetwork}, answering with a C{twisted.web} resource.

    Response faults (L{stallBeforeHeaders}, L{stallMidBody},
    L{resetMidBody}, L{drip}) apply to the next response the server sends,
    in the order they were asked for; connection faults are attributes.

    @ivar network: The network it is on.
    @ivar host: The host name it serves.
    @ivar port: The port it serves, or L{None} for every port of C{host}.
    @ivar site: The L{Site} answering requests.
    @ivar connections: Every connection it accepted, oldest first.
    @ivar requests: Every request it received, oldest first.
    @ivar refuseConnections: If true, connection attempts fail with
        L{ConnectionRefusedError}.
    @ivar hangConnections: If true, connection attempts never complete (a
        black-holed address); only cancelling them ends them.
    @ivar closeAfterRequests: If set, the response to the N-th request on a
        connection carries C{Connection: close} and the server closes the
        connection after it (as nginx's C{keepalive_requests} does).
    @ivar idleTimeout: If set, seconds after which the server closes a
        connection that has no request, without warning the client.
    """

    def __init__(
        self,
        network: MemoryNetwork,
        host: str,
        port: int | None,
        resource: Any,
    ) -> None:
        self.network = network
        self.host = host
        self.port = port
        self.site = _ServerSite(self, resource)
        self.connections: list[ServerConnection] = []
        self.requests: list[RequestRecord] = []
        self.refuseConnections = False
        self.hangConnections = False
        self.closeAfterRequests: int | None = None
        self.idleTimeout: float | None = None
        self._faults: deque[_ResponseFault] = deque()
        self._byChannel: WeakKeyDictionary[Any, ServerConnection] = WeakKeyDictionary()

    def __repr__(self) -> str:
        where = self.host if self.port is None else f"{self.host}:{self.port}"
        return (
            f"<MemoryServer {where} connections={len(self.connections)} "
            f"open={len(self.openConnections())} requests={len(self.requests)}>"
        )

    def openConnections(self) -> list[ServerConnection]:
        """
        The connections that are still open.
        """
        return [c for c in self.connections if c.open]

    def closeIdleConnections(self) -> int:
        """
        Close, from the server's side, every open connection with no request
        being answered (as a server's keep-alive timeout does).

        @return: How many connections were closed.
        """
        idle = [c for c in self.connections if c.idle]
        for connection in idle:
            connection.close()
        return len(idle)

    def stallBeforeHeaders(self) -> Stall:
        """
        Hold back the whole of the next response, until released.

        @return: The L{Stall}; call its C{release()} to send the response.
        """
        stall = Stall()
        self._faults.append(_ResponseFault("stallHead", stall=stall))
        return stall

    def stallMidBody(self, afterBytes: int) -> Stall:
        """
        Send the next response's head and C{afterBytes} bytes of its body
        (as framed on the wire), then hold the rest until released.

        @param afterBytes: Body bytes sent before the stall.
        @return: The L{Stall}.
        """
        stall = Stall()
        self._faults.append(
            _ResponseFault(
                "stallBody", afterBytes=_count("afterBytes", afterBytes), stall=stall
            )
        )
        return stall

    def resetMidBody(self, afterBytes: int) -> None:
        """
        Send the next response's head and C{afterBytes} bytes of its body,
        then reset the connection: the client sees L{ConnectionLost}.

        @param afterBytes: Body bytes sent before the reset.
        """
        self._faults.append(
            _ResponseFault("resetBody", afterBytes=_count("afterBytes", afterBytes))
        )

    def drip(self, bytesPerTick: int, tickSeconds: float = 1.0) -> None:
        """
        Deliver the next response C{bytesPerTick} bytes at a time, one piece
        every C{tickSeconds} of the clock.

        @param bytesPerTick: Bytes per piece (at least 1).
        @param tickSeconds: Clock seconds between pieces.
        """
        if _count("bytesPerTick", bytesPerTick) < 1:
            raise ValueError(f"bytesPerTick must be at least 1, not {bytesPerTick!r}")
        if not isinstance(tickSeconds, (int, float)) or tickSeconds < 0:
            raise ValueError(
                f"tickSeconds must be a non-negative number, not {tickSeconds!r}"
            )
        self._faults.append(
            _ResponseFault("drip", drip=(bytesPerTick, float(tickSeconds)))
        )

    # Driven by the network and the site

    def _accept(self, serverAddress: Any) -> tuple[Any, ServerConnection]:
        connection = ServerConnection(self, self.network._nextConnectionId())
        protocol = self.site.buildProtocol(serverAddress)
        # The channel may hand out its own callLater; keep it on the network.
        protocol.callLater = self.network.callLater
        channel = getattr(protocol, "_channel", protocol)
        self._byChannel[channel] = connection
        self.connections.append(connection)
        return protocol, connection

    def _requestReceived(self, request: Any) -> None:
        connection = self._byChannel.get(request.channel)
        if connection is None:  # pragma: no cover - every channel is known
            return
        connection._requestStarted(self._faults.popleft() if self._faults else None)
        number = connection.requests
        self.requests.append(
            RequestRecord(
                host=self.host,
                method=request.method,
                path=request.uri,
                connectionId=connection.id,
                number=number,
            )
        )
        self.network.requests.append(self.requests[-1])
        if self.closeAfterRequests is not None and number >= self.closeAfterRequests:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            request.channel.persistent = False

        def finished(result: object) -> None:
            connection._requestFinished()

        request.notifyFinish().addBoth(finished)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative whole number, not {value!r}")
    return value


@implementer(IStreamClientEndpoint)
class _MemoryEndpoint:
    """
    Connects to a host of a L{MemoryNetwork}.
    """

    def __init__(self, network: MemoryNetwork, host: str, port: int) -> None:
        self._network = network
        self._host = host
        self._port = port

    def __repr__(self) -> str:
        return f"<MemoryEndpoint {self._host}:{self._port}>"

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        """
        Open an in-memory connection on the next turn of the clock.
        """
        return self._network._connect(self._host, self._port, protocolFactory)


@implementer(IAgentEndpointFactory)
class MemoryNetwork:
    """
    Hosts served in memory, for a pool's real connections to talk to.

    It is an L{IAgentEndpointFactory}: give it to
    C{Agent.usingEndpointFactory} or C{PooledAgent.usingEndpointFactory}
    (or use L{agent}, L{pooledAgent}, L{treqClient}).  The URI's scheme only
    picks the default port: C{https} is served in the clear.

    @ivar clock: The clock every delivery and timer runs on; give the same
        clock to the pool.
    @ivar servers: The servers, in the order they were added.
    @ivar requests: Every request any server received, oldest first.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock if clock is not None else Clock()
        self.servers: list[MemoryServer] = []
        self.requests: list[RequestRecord] = []
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<MemoryNetwork servers={self.servers!r}>"

    def addServer(
        self,
        host: str,
        resource: Any = None,
        *,
        handler: Callable[[Request], bytes | None] | None = None,
        port: int | None = None,
    ) -> MemoryServer:
        """
        Serve C{host} (every port, or only C{port}) with C{resource}, with
        C{handler}, or, given neither, with a resource that answers each
        request with its method and path (C{b"GET /a"}).

        @param host: The host name, as it appears in URLs.
        @param resource: A C{twisted.web} resource.
        @param handler: A callable taking the L{Request} and returning the
            body, or L{None} if it finishes the request itself.
        @param port: Serve only this port.
        @return: The server, for scripting faults and reading counts.
        @raise ValueError: If both C{resource} and C{handler} are given, or
            the host and port are already served.
        """
        if resource is not None and handler is not None:
            raise ValueError("addServer takes a resource or a handler, not both")
        if any(s.host == host.lower() and s.port == port for s in self.servers):
            raise ValueError(f"{host!r} port {port!r} is already served")
        if handler is not None:
            resource = _HandlerResource(handler)
        elif resource is None:
            resource = _EchoResource()
        server = MemoryServer(self, host.lower(), port, resource)
        self.servers.append(server)
        return server

    def connections(self) -> list[ServerConnection]:
        """
        Every connection any server accepted, oldest first.
        """
        return sorted(
            (c for s in self.servers for c in s.connections), key=lambda c: c.id
        )

    # Time

    def callLater(
        self, delay: float, function: Callable[..., object], *args: Any
    ) -> DelayedCall:
        """
        Schedule C{function} on the network's clock, marked as the network's
        own (L{assertPoolAtRest} does not count it as the pool's).

        @return: The L{DelayedCall}.
        """
        return self.clock.callLater(delay, _NetworkCall(lambda: function(*args)))

    def flush(self) -> None:
        """
        Run everything that is due now (bytes in flight, closes, zero-delay
        calls of the pool), without moving the clock.

        @raise RuntimeError: If calls keep scheduling new ones for
            L{MAX_FLUSH_TURNS} turns.
        """
        for _ in range(MAX_FLUSH_TURNS):
            now = self.clock.seconds()
            if not any(c.getTime() <= now for c in self._calls()):
                return
            self.clock.advance(0)
        raise RuntimeError(f"still busy after {MAX_FLUSH_TURNS} turns of the clock")

    def advance(self, seconds: float) -> None:
        """
        Move the clock on by C{seconds}, one due call at a time, running
        what is due at each step.

        @param seconds: How far to move the clock.
        """
        end = self.clock.seconds() + seconds
        self.flush()
        for _ in range(MAX_FLUSH_TURNS):
            upcoming = [c.getTime() for c in self._calls() if c.getTime() <= end]
            if not upcoming:
                break
            self.clock.advance(max(min(upcoming) - self.clock.seconds(), 0))
            self.flush()
        self.clock.advance(max(end - self.clock.seconds(), 0))
        self.flush()

    def _calls(self) -> list[Any]:
        return list(self.clock.getDelayedCalls())

    # Clients

    def endpoint(self, host: str, port: int = 80) -> Any:
        """
        An endpoint connecting to C{host}'s server, for calling a pool's
        C{getConnection} directly.
        """
        return _MemoryEndpoint(self, host.lower(), port)

    def endpointForURI(self, uri: Any) -> Any:
        """
        The endpoint for a parsed URI (L{IAgentEndpointFactory}).
        """
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        return _MemoryEndpoint(self, host.lower(), uri.port)

    def agent(self, pool: HTTPConnectionPool) -> Agent:
        """
        A stock L{Agent} on this network, taking connections from C{pool}.
        """
        return Agent.usingEndpointFactory(self.clock, self, pool=pool)

    def pooledAgent(self, pool: HTTPConnectionPool) -> PooledAgent:
        """
        A L{pooled_http.PooledAgent} on this network over C{pool}.
        """
        from ._agent import PooledAgent

        return PooledAgent.usingEndpointFactory(self.clock, self, pool=pool)

    def treqClient(
        self, pool: HTTPConnectionPool, *, pooledAgent: bool = True
    ) -> HTTPClient:
        """
        A C{treq.HTTPClient} on this network over C{pool}, through a
        L{pooled_http.PooledAgent} (or a stock L{Agent}).
        """
        from treq.client import HTTPClient

        agent: Any = self.pooledAgent(pool) if pooledAgent else self.agent(pool)
        return HTTPClient(agent)

    # Connecting

    def _nextConnectionId(self) -> int:
        return next(self._ids)

    def _serverFor(self, host: str, port: int) -> MemoryServer | None:
        anyPort = None
        for server in self.servers:
            if server.host == host:
                if server.port == port:
                    return server
                if server.port is None:
                    anyPort = server
        return anyPort

    def _connect(self, host: str, port: int, factory: Any) -> Deferred[Any]:
        serverAddress = IPv4Address("TCP", "127.0.0.1", port)
        attempt: list[DelayedCall] = []

        def cancel(d: Deferred[Any]) -> None:
            if attempt and attempt[0].active():
                attempt[0].cancel()
            d.errback(ConnectingCancelledError(serverAddress))

        d: Deferred[Any] = Deferred(cancel)

        def complete() -> None:
            server = self._serverFor(host, port)
            if server is None:
                d.errback(DNSLookupError(host))
                return
            if server.refuseConnections:
                d.errback(ConnectionRefusedError(f"{host}:{port}"))
                return
            if server.hangConnections:
                return
            protocol = factory.buildProtocol(serverAddress)
            if protocol is None:
                d.errback(ConnectionRefusedError("the factory made no protocol"))
                return
            self._link(server, protocol, serverAddress)
            d.callback(protocol)

        attempt.append(self.callLater(0, complete))
        return d

    def _link(
        self, server: MemoryServer, clientProtocol: Any, serverAddress: Any
    ) -> None:
        serverProtocol, connection = server._accept(serverAddress)
        clientAddress = IPv4Address("TCP", "127.0.0.1", 40000 + connection.id % 20000)
        clientEnd = _MemoryTransport(self, clientProtocol, clientAddress, serverAddress)
        serverEnd = _MemoryTransport(self, serverProtocol, serverAddress, clientAddress)
        clientEnd.peer, serverEnd.peer = serverEnd, clientEnd
        serverEnd.outgoing = connection._outgoing
        serverEnd.onLost = connection._lost
        connection.transport = serverEnd
        serverProtocol.makeConnection(serverEnd)
        clientProtocol.makeConnection(clientEnd)
        connection._startIdleTimer()


# Leaks


def _poolTimers(pool: Any) -> list[DelayedCall] | None:
    """
    The pool's active timers, or L{None} if they cannot be told apart from
    the reactor's other timers.
    """
    pending = getattr(pool, "_pendingCalls", None)
    if callable(pending):
        return [c for c in pending() if c.active()]
    reactor = getattr(pool, "_reactor", None)
    if isinstance(reactor, Clock):
        calls: list[Any] = list(reactor.getDelayedCalls())
        return [c for c in calls if c.active() and not isinstance(c.func, _NetworkCall)]
    return None


def _describeCall(call: DelayedCall, now: float) -> str:
    function = call.func
    name = getattr(function, "__qualname__", None) or repr(function)
    owner = getattr(function, "__self__", None)
    if owner is not None:
        name = f"{type(owner).__name__}.{getattr(function, '__name__', name)}"
    return f"{name} due in {call.getTime() - now:g} s"


def assertPoolAtRest(pool: HTTPConnectionPool, *, allowIdle: bool = False) -> None:
    """
    Fail unless C{pool} has nothing going on: no connection in use, no
    connection attempt, no request waiting, no connection still closing, no
    idle connection (unless C{allowIdle}) and no timer of its own left on
    the reactor.

    Timers are those of C{pool._pendingCalls()} when the pool offers it;
    otherwise, when the pool runs on a L{Clock}, every active call on that
    clock except the L{MemoryNetwork}'s own; otherwise they are not checked.
    With C{allowIdle}, idle connections and their idle timers are allowed.

    Usable from any test framework: call it after C{yield pool.close()}
    (or after the test's requests are done, with C{allowIdle=True}).

    @param pool: The pool to check.
    @param allowIdle: Whether idle connections are allowed.
    @raise AssertionError: Listing, per key, what is left, and the pending
        timers.
    """
    __tracebackhide__ = True
    stats = pool.stats()
    problems: list[str] = []
    for key, counts in stats.perKey.items():
        parts = [
            f"{number} {label}"
            for number, label in (
                (counts.inUse, "in use"),
                (counts.connecting, "connecting"),
                (counts.waiting, "waiting"),
                (counts.closing, "closing"),
                (0 if allowIdle else counts.idle, "idle"),
            )
            if number
        ]
        if parts:
            problems.append(f"  {key!r}: {', '.join(parts)}")
    timers = None if allowIdle and stats.idle else _poolTimers(pool)
    if timers:
        now = pool._reactor.seconds()
        problems.append(f"  {len(timers)} pending timer(s):")
        problems.extend(
            "    " + _describeCall(call, now)
            for call in sorted(timers, key=lambda c: c.getTime())
        )
    if problems:
        raise AssertionError("pool is not at rest:\n" + "\n".join(problems))


# A real server on the loopback interface


class _TrackingFactory(WrappingFactory):
    """
    Wraps a server factory and tells its L{LocalServer} when a connection
    closes.
    """

    def __init__(self, wrappedFactory: Any, server: LocalServer) -> None:
        super().__init__(wrappedFactory)
        self.server = server

    def registerProtocol(self, p: Any) -> None:
        super().registerProtocol(p)
        self.server.accepted += 1

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        self.server._maybeStopped()


class LocalServer:
    """
    A C{twisted.web} server listening on a loopback address and a free
    port, over HTTP or HTTPS; made by L{startLocalServer}.

    @ivar reactor: The reactor it listens with.
    @ivar tls: Whether it speaks HTTPS.
    @ivar port: The listening port's number.
    @ivar accepted: How many connections it accepted.
    @ivar policy: For HTTPS, an L{twisted.web.iweb.IPolicyForHTTPS} trusting this server's
        certificate authority (pass it as C{contextFactory} to C{Agent} or
        C{PooledAgent}); L{None} for HTTP.
    @ivar caCertificatePEM: For HTTPS, the authority's certificate in PEM.
    """

    def __init__(
        self,
        resource: Any,
        reactor: Any,
        *,
        tls: bool = False,
        interface: str = "127.0.0.1",
    ) -> None:
        self.reactor = reactor
        self.tls = tls
        self.accepted = 0
        self.policy: Any = None
        self.caCertificatePEM: bytes | None = None
        self._interface = interface
        self._stopping: list[Deferred[None]] = []
        self._stopped = False
        self._portClosed = False
        self._abortCall: DelayedCall | None = None
        self.site = Site(resource)
        self._factory = _TrackingFactory(self.site, self)
        if tls:
            self._listening = reactor.listenSSL(
                0, self._factory, self._serverOptions(interface), interface=interface
            )
        else:
            self._listening = reactor.listenTCP(0, self._factory, interface=interface)
        self.port: int = self._listening.getHost().port

    def _serverOptions(self, interface: str) -> Any:
        import trustme
        from twisted.internet import ssl
        from twisted.web.client import BrowserLikePolicyForHTTPS

        ca = trustme.CA()
        certificate = ca.issue_cert(interface)
        self.caCertificatePEM = ca.cert_pem.bytes()
        self.policy = BrowserLikePolicyForHTTPS(
            trustRoot=ssl.Certificate.loadPEM(self.caCertificatePEM)
        )
        pem = certificate.private_key_and_cert_chain_pem.bytes()
        return ssl.PrivateCertificate.loadPEM(pem).options()

    def __repr__(self) -> str:
        return (
            f"<LocalServer {self.url()} open={self.openConnections} "
            f"accepted={self.accepted}>"
        )

    @property
    def openConnections(self) -> int:
        """
        Server connections open now.
        """
        return len(self._factory.protocols)

    def url(self, path: str = "/") -> str:
        """
        The URL of C{path} on this server, e.g. C{"http://127.0.0.1:4321/a"}.
        """
        host = f"[{self._interface}]" if ":" in self._interface else self._interface
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def stop(self, abortAfter: float = 5.0) -> Deferred[None]:
        """
        Stop listening and close every server connection; a connection
        still open C{abortAfter} seconds later is aborted.

        @param abortAfter: Seconds connections may take to close politely.
        @return: A Deferred firing once the port and every server connection
            are closed.
        """
        d: Deferred[None] = Deferred()
        self._stopping.append(d)
        if not self._stopped:
            self._stopped = True
            maybeDeferred(self._listening.stopListening).addBoth(self._portDone)
            for protocol in list(self._factory.protocols):
                protocol.transport.loseConnection()
            if self._factory.protocols:
                self._abortCall = self.reactor.callLater(abortAfter, self._abortAll)
        self._maybeStopped()
        return d

    def _portDone(self, result: object) -> None:
        self._portClosed = True
        self._maybeStopped()

    def _abortAll(self) -> None:
        self._abortCall = None
        for protocol in list(self._factory.protocols):
            protocol.transport.abortConnection()

    def _maybeStopped(self) -> None:
        if not (self._stopped and self._portClosed) or self._factory.protocols:
            return
        if self._abortCall is not None and self._abortCall.active():
            self._abortCall.cancel()
        self._abortCall = None
        waiting, self._stopping = self._stopping, []
        for d in waiting:
            d.callback(None)


def startLocalServer(
    resource: Any = None,
    *,
    reactor: Any = None,
    tls: bool = False,
    interface: str = "127.0.0.1",
) -> LocalServer:
    """
    Start a C{twisted.web} server on C{interface} (a loopback address) and a
    free port.

    For HTTPS a certificate authority and a certificate for C{interface}
    are made with C{trustme} (install C{pooled_http[testing]}); the client
    side trusts it through C{server.policy}::

        server = startLocalServer(resource, tls=True)
        agent = PooledAgent(reactor, pool=pool, contextFactory=server.policy)
        ...
        yield server.stop()

    @param resource: What to serve; by default a resource answering each
        request with its method and path.
    @param reactor: The reactor; by default the global one.
    @param tls: Whether to speak HTTPS.
    @param interface: The loopback address to listen on (C{"127.0.0.1"} or
        C{"::1"}).
    @return: The running L{LocalServer}.
    @raise ValueError: If C{interface} is not a loopback address.
    """
    import ipaddress

    if not ipaddress.ip_address(interface).is_loopback:
        raise ValueError(f"interface must be a loopback address, not {interface!r}")
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    return LocalServer(
        resource if resource is not None else _EchoResource(),
        reactor,
        tls=tls,
        interface=interface,
    )


# trial


class PoolTestMixin:
    """
    A mixin for trial test cases: each test gets its own pool on the global
    reactor (C{self.pool}) and a L{pooled_http.PooledAgent} over it
    (C{self.agent}).  After the test the pool is closed and the test fails
    if anything was left (L{assertPoolAtRest}).  Servers started with
    L{startLocalServer} here are stopped after the test, before the pool is
    closed.

    Use it before C{TestCase}::

        class MyTests(PoolTestMixin, TestCase):
            poolOptions = {"maxConnectionsPerHost": 2}

    @cvar poolOptions: Keyword arguments for the pool.
    @ivar pool: The test's L{pooled_http.HTTPConnectionPool}.
    @ivar agent: A L{pooled_http.PooledAgent} over it.
    """

    poolOptions: dict[str, Any] = {}

    def setUp(self) -> Any:
        """
        Make the pool and the agent, and register the pool's shutdown and
        check as a cleanup.
        """
        from twisted.internet import reactor

        from ._agent import PooledAgent
        from ._pool import HTTPConnectionPool

        result = super().setUp()  # type: ignore[misc]
        self.pool = HTTPConnectionPool(reactor, **self.poolOptions)
        self.agent = PooledAgent(reactor, pool=self.pool)
        testCase: Any = self
        testCase.addCleanup(self._closePool)
        return result

    def _closePool(self) -> Deferred[None]:
        def check(_: object) -> None:
            assertPoolAtRest(self.pool)

        return self.pool.close().addCallback(check)

    def startLocalServer(
        self, resource: Any = None, *, tls: bool = False
    ) -> LocalServer:
        """
        Start a L{LocalServer} stopped after the test.

        @param resource: What to serve (see L{startLocalServer}).
        @param tls: Whether to speak HTTPS.
        @return: The server.
        """
        server = startLocalServer(resource, tls=tls)
        testCase: Any = self
        testCase.addCleanup(server.stop)
        return server

    def treqClient(self, server: LocalServer | None = None) -> HTTPClient:
        """
        A C{treq.HTTPClient} over the test's pool, trusting
        C{server}'s certificate if it is an HTTPS L{LocalServer}.
        """
        from treq.client import HTTPClient
        from twisted.internet import reactor

        from ._agent import PooledAgent

        if server is None or server.policy is None:
            return HTTPClient(self.agent)  # type: ignore[arg-type]
        agent: Any = PooledAgent(reactor, pool=self.pool, contextFactory=server.policy)
        return HTTPClient(agent)
