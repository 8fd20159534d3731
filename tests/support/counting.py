"""
Counting connections, on either side of a loopback socket: a server
factory that counts the connections it accepts (L{CountingFactory}) and an
agent endpoint factory that counts the connections a client makes
(L{CountingEndpointFactory}).  Both keep the same three numbers, in
L{ConnectionCounter}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.policies import WrappingFactory
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

__all__ = ["ConnectionCounter", "CountingFactory", "CountingEndpointFactory"]


class ConnectionCounter:
    """
    How many connections are open, were open at most at once, and were made.

    @ivar open: Connections open now.
    @ivar maxOpen: The most connections open at once.
    @ivar total: Connections made.
    """

    def __init__(self) -> None:
        self.open = 0
        self.maxOpen = 0
        self.total = 0

    def countOpened(self) -> None:
        """
        A connection was made.
        """
        self.open += 1
        self.total += 1
        self.maxOpen = max(self.maxOpen, self.open)

    def countClosed(self) -> None:
        """
        A connection was lost.
        """
        self.open -= 1


class CountingFactory(WrappingFactory, ConnectionCounter):
    """
    Wraps a server factory and counts its connections, from
    C{makeConnection} to C{connectionLost}.  The protocols open now are in
    C{protocols}, as in any L{WrappingFactory}.
    """

    def __init__(self, wrappedFactory: Any) -> None:
        super().__init__(wrappedFactory)
        ConnectionCounter.__init__(self)

    def registerProtocol(self, p: Any) -> None:
        """
        Count a new connection.
        """
        super().registerProtocol(p)
        self.countOpened()

    def unregisterProtocol(self, p: Any) -> None:
        """
        Count a closed connection.
        """
        super().unregisterProtocol(p)
        self.countClosed()


@implementer(IAgentEndpointFactory)
class CountingEndpointFactory(ConnectionCounter):
    """
    An C{IAgentEndpointFactory} connecting to 127.0.0.1 whatever the host,
    counting client connections from C{makeConnection} to C{connectionLost}.

    @ivar reactor: The reactor to connect with.
    """

    def __init__(self, reactor: Any) -> None:
        ConnectionCounter.__init__(self)
        self.reactor = reactor

    def endpointForURI(self, uri: Any) -> _CountingEndpoint:
        """
        An endpoint to 127.0.0.1 at the URI's port, counting connections.

        @param uri: The request's URI.
        """
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", uri.port)
        return _CountingEndpoint(endpoint, self)


class _CountingEndpoint:
    """
    Connects through another endpoint and counts the connection on a
    L{ConnectionCounter}.  The protocol is patched rather than wrapped: the
    connect Deferred must fire with the caller's own protocol.
    """

    def __init__(self, endpoint: Any, counter: ConnectionCounter) -> None:
        self.endpoint = endpoint
        self.counter = counter

    def connect(self, factory: Any) -> Any:
        """
        Connect, counting the protocol's connection from start to end.

        @param factory: The client's protocol factory.
        """
        counter = self.counter
        build = factory.buildProtocol

        def buildProtocol(addr: Any) -> Any:
            protocol = build(addr)
            makeConnection = protocol.makeConnection
            connectionLost = protocol.connectionLost

            def counted(transport: Any) -> None:
                counter.countOpened()
                makeConnection(transport)

            def uncounted(reason: Any) -> None:
                counter.countClosed()
                connectionLost(reason)

            protocol.makeConnection = counted
            protocol.connectionLost = uncounted
            return protocol

        wrapper = Factory.forProtocol(Protocol)
        wrapper.buildProtocol = buildProtocol  # type: ignore[method-assign]
        return self.endpoint.connect(wrapper)
