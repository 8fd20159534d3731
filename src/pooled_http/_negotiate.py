"""
HTTP/2 or HTTP/1.1, as ALPN decides: the endpoint of an C{http2=True}
route of L{pooled_http.PooledAgent}.

L{ALPNCreator} makes the TLS connection offer C{h2} and C{http/1.1}
(whatever TLS policy built the connection creator).
L{NegotiatingEndpoint} connects through the TLS endpoint with a small
placeholder protocol, waits for the handshake, reads the protocol the
server chose (C{transport.negotiatedProtocol}), then has the pool's
protocol factory build the matching connection: the pool's own (HTTP/1.1)
or an L{pooled_http._http2.HTTP2Connection}, which it waits for until the
server's SETTINGS arrived.  Only then does C{connect()} fire, so the pool's
connect timeout covers TCP, TLS and the SETTINGS exchange, and the pool
learns the connection's capacity as it gets it.

The endpoint says C{mayMultiplex = True}: the pool lets other requests to
the key wait for the connection being negotiated rather than open their
own.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    ISSLTransport,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ._contract import ConnectionFactory
from .errors import HTTP2UnavailableError

__all__ = [
    "ALPNCreator",
    "NegotiatingEndpoint",
    "ALPN_PROTOCOLS",
    "http2Factory",
]

#: What an C{http2=True} route offers, in order of preference.
ALPN_PROTOCOLS = [b"h2", b"http/1.1"]


def http2Factory() -> ConnectionFactory:
    """
    The connection factory of HTTP/2 connections, importing C{h2} now.

    @raise HTTP2UnavailableError: If C{h2} is not installed.
    """
    try:
        from ._http2 import http2ConnectionFactory
    except ImportError as e:
        raise HTTP2UnavailableError() from e
    return http2ConnectionFactory


@implementer(IOpenSSLClientConnectionCreator)
class ALPNCreator:
    """
    A TLS client connection creator that offers L{ALPN_PROTOCOLS} on every
    connection of the one it wraps.
    """

    def __init__(self, creator: Any) -> None:
        """
        @param creator: The wrapped L{IOpenSSLClientConnectionCreator}.
        """
        self._creator = creator

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Any:
        """
        Make the wrapped creator's connection, offering C{h2} first.
        """
        connection = self._creator.clientConnectionForTLS(tlsProtocol)
        connection.set_alpn_protos(ALPN_PROTOCOLS)
        return connection


@implementer(IHandshakeListener)
class _Negotiation(Protocol):
    """
    The placeholder protocol of one connection while TLS negotiates; then
    the forwarder of its bytes to the connection built.
    """

    def __init__(self, factory: Any, build: ConnectionFactory) -> None:
        self._factory = factory
        self._build = build
        self._connection: Any = None
        self._buffer: list[bytes] = []
        self.done: Deferred[Any] = Deferred()

    def connectionMade(self) -> None:
        if not ISSLTransport.providedBy(self.transport):
            self._choose(None)

    def handshakeCompleted(self) -> None:
        """
        TLS is up: build the connection the server's ALPN choice calls for.
        """
        self._choose(getattr(self.transport, "negotiatedProtocol", None))

    def _choose(self, protocol: bytes | None) -> None:
        if self._connection is not None or self.done.called:
            return
        if protocol == b"h2":
            connection = self._factory.buildWith(self._build)
        else:
            connection = self._factory.buildProtocol(None)
        self._connection = connection
        connection.makeConnection(self.transport)
        completed = getattr(connection, "handshakeCompleted", None)
        if completed is not None and ISSLTransport.providedBy(self.transport):
            completed()
        buffered, self._buffer = self._buffer, []
        for data in buffered:
            connection.dataReceived(data)
        ready = getattr(connection, "whenReady", None)
        if protocol == b"h2" and ready is not None:
            ready().addCallbacks(self._ready, self._failed)
        else:
            self._ready(connection)

    def _ready(self, connection: Any) -> None:
        if not self.done.called:
            self.done.callback(connection)

    def _failed(self, failure: Failure) -> None:
        if not self.done.called:
            self.done.errback(failure)

    def dataReceived(self, data: bytes) -> None:
        connection = self._connection
        if connection is None:
            self._buffer.append(data)
        else:
            connection.dataReceived(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        connection = self._connection
        if connection is not None:
            connection.connectionLost(reason)
        if not self.done.called:
            if reason.check(ConnectionDone):
                reason = Failure(ConnectionLost("closed during the TLS handshake"))
            self.done.errback(reason)


class _NegotiationFactory(Factory):
    noisy = False

    def __init__(self, factory: Any, build: ConnectionFactory) -> None:
        self._factory = factory
        self._build = build
        self.negotiation: _Negotiation | None = None

    def buildProtocol(self, addr: Any) -> _Negotiation:
        self.negotiation = _Negotiation(self._factory, self._build)
        return self.negotiation


@implementer(IStreamClientEndpoint)
class NegotiatingEndpoint:
    """
    An endpoint that connects through a TLS endpoint offering C{h2} and
    C{http/1.1} and fires with the connection the server's choice calls
    for (see the module docstring).

    @ivar mayMultiplex: C{True}: the pool coalesces requests of the key on
        the connection being opened.
    """

    mayMultiplex = True

    def __init__(self, wrapped: IStreamClientEndpoint, build: ConnectionFactory):
        """
        @param wrapped: The TLS endpoint (its creator an L{ALPNCreator}).
        @param build: The connection factory of HTTP/2 connections.
        """
        self._wrapped = wrapped
        self._build = build

    def __repr__(self) -> str:
        return f"<NegotiatingEndpoint h2, http/1.1 over {self._wrapped!r}>"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect; fire with the connection once its protocol is known (and,
        for HTTP/2, the server's SETTINGS arrived).

        @param protocolFactory: The pool's protocol factory (it must offer
            C{buildWith}, as L{pooled_http._connecting.ProtocolFactory}
            does).
        """
        factory = _NegotiationFactory(protocolFactory, self._build)
        wrapped: Any = self._wrapped
        attempt: Deferred[Any] = wrapped.connect(factory)

        def cancel(result: Deferred[Any]) -> None:
            negotiation = factory.negotiation
            if not attempt.called:
                attempt.cancel()
            elif negotiation is not None and negotiation.transport is not None:
                negotiation.transport.abortConnection()

        result: Deferred[Any] = Deferred(cancel)

        def connected(negotiation: _Negotiation) -> None:
            negotiation.done.addCallbacks(settle, settleFailed)

        def settle(connection: Any) -> None:
            if not result.called:
                result.callback(connection)
            elif connection.transport is not None:
                connection.transport.abortConnection()

        def settleFailed(failure: Failure) -> None:
            if not result.called:
                result.errback(failure)
            elif not failure.check(CancelledError):
                pass

        attempt.addCallbacks(connected, settleFailed)
        return result
