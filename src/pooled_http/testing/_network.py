"""
The in-memory network: hosts, endpoints, and the clock everything runs on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.address import IPv4Address
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred
from twisted.internet.error import (
    ConnectingCancelledError,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import (
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.task import Clock
from twisted.web.client import Agent
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.server import Request
from zope.interface import implementer

if TYPE_CHECKING:  # pragma: no cover
    from treq.client import HTTPClient

    from .._agent import PooledAgent
    from .._pool import HTTPConnectionPool

from ._server import (
    MemoryServer,
    RequestRecord,
    ServerConnection,
    _EchoResource,
    _HandlerResource,
)
from ._transport import MAX_FLUSH_TURNS, _MemoryTransport, _NetworkCall


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

    It is an L{twisted.web.iweb.IAgentEndpointFactory}: give it to
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
        @param handler: A callable taking the L{twisted.web.server.Request} and returning the
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

        @return: The L{twisted.internet.base.DelayedCall}.
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
        The endpoint for a parsed URI (L{twisted.web.iweb.IAgentEndpointFactory}).
        """
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        return _MemoryEndpoint(self, host.lower(), uri.port)

    def agent(self, pool: HTTPConnectionPool) -> Agent:
        """
        A stock L{twisted.web.client.Agent} on this network, taking connections from C{pool}.
        """
        return Agent.usingEndpointFactory(self.clock, self, pool=pool)

    def pooledAgent(self, pool: HTTPConnectionPool) -> PooledAgent:
        """
        A L{pooled_http.PooledAgent} on this network over C{pool}.
        """
        from .._agent import PooledAgent

        return PooledAgent.usingEndpointFactory(self.clock, self, pool=pool)

    def treqClient(
        self, pool: HTTPConnectionPool, *, pooledAgent: bool = True
    ) -> HTTPClient:
        """
        A C{treq.HTTPClient} on this network over C{pool}, through a
        L{pooled_http.PooledAgent} (or a stock L{twisted.web.client.Agent}).
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
