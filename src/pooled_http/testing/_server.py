"""
The scripted server of one host on the in-memory network, its connections and its faults.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from twisted.internet.base import DelayedCall
from twisted.internet.error import (
    ConnectionAborted,
)
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

if TYPE_CHECKING:  # pragma: no cover

    from ._network import MemoryNetwork

from ._transport import _RESET, _EndOfStream, _Item, _MemoryTransport


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
    A L{twisted.web.server.Site} that tells its L{MemoryServer} about every request before it
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
    @ivar site: The L{twisted.web.server.Site} answering requests.
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
        then reset the connection: the client sees L{twisted.internet.error.ConnectionLost}.

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
