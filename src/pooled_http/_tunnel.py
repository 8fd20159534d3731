"""
Tunnels through a proxy as endpoints: L{HTTPTunnelEndpoint} (one
C{CONNECT}) and L{SOCKS5Endpoint}.

The tunnel is set up inside C{connect()}: its L{Deferred} fires only once
the proxy has said yes, so a pool's C{connectTimeout}, which runs until
C{connect()} fires and then until the target's TLS handshake completes,
covers the whole way; cancelling it aborts the connection to the proxy at
whatever step it is.  After that the tunnel protocol only passes bytes
through: to the protocol above it, the transport is the connection to the
proxy, and TLS to the target (L{pooled_http._tls.wrapClientTLS}) runs over it as it would
over TCP.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from ._handshakes import ConnectHandshake, Handshake, SOCKS5Handshake
from ._proxyurl import ProxyURL
from .errors import (
    ProxyError,
    ProxyUnreachableError,
    isCancellation,
    isTemporaryNetworkError,
)
from .trace import tracedFactory

__all__ = ["HTTPTunnelEndpoint", "SOCKS5Endpoint"]


class _TunnelProtocol(Protocol):
    """
    Runs a handshake over the connection to the proxy, then hands the
    connection to the protocol the caller asked for and passes bytes and
    the end of the connection on to it.

    @ivar app: The caller's protocol, once the tunnel is up.
    """

    app: Any = None
    transport: Any

    def __init__(self, handshake: Handshake, attempt: _Attempt) -> None:
        self._handshake = handshake
        self._attempt = attempt
        self._trace = tracedFactory(attempt.factory)

    def _traceTunnel(self, done: bool) -> None:
        handshake = self._handshake
        kind = "SOCKS5" if isinstance(handshake, SOCKS5Handshake) else "CONNECT"
        assert self._trace is not None
        self._trace.tunnel(done, kind, handshake.proxy.url)

    def connectionMade(self) -> None:
        if self._trace is not None:
            self._traceTunnel(False)
        self.transport.write(self._handshake.start())

    def dataReceived(self, data: bytes) -> None:
        app = self.app
        if app is not None:
            app.dataReceived(data)
            return
        result = self._attempt.result
        if result.called:
            return
        try:
            toSend, rest = self._handshake.receive(data)
        except ProxyError as e:
            self._attempt.fail(e)
            self.transport.abortConnection()
            return
        if toSend:
            self.transport.write(toSend)
        if rest is None:
            return
        app = self._attempt.factory.buildProtocol(self.transport.getPeer())
        if app is None:
            self._attempt.fail(
                ProxyError(self._handshake.proxy.url, "the protocol factory built none")
            )
            self.transport.abortConnection()
            return
        self.app = app
        if self._trace is not None:
            self._traceTunnel(True)
        app.makeConnection(self.transport)
        result.callback(app)
        if rest:
            app.dataReceived(rest)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        if self.app is not None:
            self.app.connectionLost(reason)
            return
        if not self._attempt.result.called:
            self._attempt.fail(self._handshake.lost(reason))


class _OneProtocolFactory(ClientFactory):
    """
    A factory that builds one given protocol.
    """

    def __init__(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self._protocol


class _Attempt:
    """
    One call of a tunnel endpoint's C{connect()}: resolve (SOCKS5 with
    local resolution), connect to the proxy, run the handshake.

    @ivar result: What C{connect()} returned.
    @ivar factory: The caller's protocol factory.
    """

    def __init__(self, endpoint: _TunnelEndpointBase, factory: Any) -> None:
        self._endpoint = endpoint
        self.factory = factory
        self.result: Deferred[Any] = Deferred(self._cancel)
        self._pending: Deferred[Any] | None = None
        self._protocol: _TunnelProtocol | None = None

    def _cancel(self, result: Deferred[Any]) -> None:
        pending = self._pending
        if pending is not None:
            # Its errback passes the cancellation on to result.
            pending.cancel()
            return
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abortConnection()

    def wait(self, step: Deferred[Any], then: Callable[[Any], None]) -> None:
        """
        Run one cancellable step.

        @param step: Its L{Deferred}.
        @param then: Called with its result.
        """
        self._pending = step

        def done(value: Any) -> None:
            self._pending = None
            then(value)

        step.addCallbacks(done, self._stepFailed)

    def _stepFailed(self, failure: Failure) -> None:
        self._pending = None
        if self.result.called:
            return
        if self._protocol is None or isCancellation(failure.value or Exception()):
            # Cancelled, or a target name that could not be resolved: not
            # about the proxy.
            self.result.errback(failure)
            return
        self.fail(proxyUnreachable(self._endpoint.proxy, failure))

    def fail(self, error: ProxyError) -> None:
        """
        Fail the attempt with a proxy error, which gets the endpoint's pool
        key.

        @param error: The error.
        """
        if error.key is None:
            error.key = self._endpoint.key
        self.result.errback(Failure(error))

    def connectToProxy(self, host: str) -> None:
        """
        Connect to the proxy, and through it to C{host}.

        @param host: The target host as the proxy is to be told it.
        """
        if self.result.called:
            return
        endpoint = self._endpoint
        protocol = _TunnelProtocol(endpoint.handshake(host), self)
        self._protocol = protocol
        try:
            proxyEndpoint: Any = endpoint.proxyEndpoint
            d = proxyEndpoint.connect(_OneProtocolFactory(protocol))
        except BaseException:
            d = Deferred()
            d.errback(Failure())
        self.wait(d, lambda _: None)


def proxyUnreachable(
    proxy: ProxyURL, failure: Failure, key: Hashable | None = None
) -> ProxyUnreachableError:
    """
    The error for a connection to a proxy that could not be made.

    @param proxy: The proxy.
    @param failure: Why the connection failed.
    @param key: The pool key, or L{None}.
    """
    error = ProxyUnreachableError(
        proxy.url,
        f"the proxy could not be connected to "
        f"({type(failure.value).__name__}: {failure.getErrorMessage()}); "
        "check the proxy URL and that the proxy is running",
        key,
        temporary=isTemporaryNetworkError(failure),
    )
    # Callers that sort failures by kind (refused, name not found) find it.
    error.__cause__ = failure.value
    return error


@implementer(IStreamClientEndpoint)
class _TunnelEndpointBase:
    """
    What the tunnel endpoints share.

    @ivar proxyEndpoint: The endpoint to the proxy itself.
    @ivar proxy: The proxy.
    @ivar host: The target host.
    @ivar port: The target port.
    @ivar key: The pool key of the connections made, put in the errors, or
        L{None}.
    """

    key: Hashable | None = None

    def __init__(
        self,
        proxyEndpoint: IStreamClientEndpoint,
        proxy: ProxyURL,
        host: str,
        port: int,
    ) -> None:
        """
        @param proxyEndpoint: The endpoint to the proxy itself.
        @param proxy: The proxy.
        @param host: The target host.
        @param port: The target port.
        """
        self.proxyEndpoint = proxyEndpoint
        self.proxy = proxy
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} to {self.host}:{self.port} via {self.proxy.url}>"
        )

    def handshake(self, host: str) -> Handshake:
        """
        @param host: The target host as the proxy is to be told it.
        @return: A new handshake for one connection.
        """
        raise NotImplementedError()

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect to the proxy and set up the tunnel.

        @param protocolFactory: Builds the protocol that talks to the target.
        @return: A L{Deferred} that fires with that protocol once the tunnel
            is up, or fails with a L{ProxyError} (or the failure of a
            cancelled or unresolvable attempt).  Cancelling it aborts the
            connection to the proxy at any step.
        """
        attempt = _Attempt(self, protocolFactory)
        attempt.connectToProxy(self.host)
        return attempt.result


@implementer(IStreamClientEndpoint)
class HTTPTunnelEndpoint(_TunnelEndpointBase):
    """
    An endpoint to C{host:port} through an HTTP proxy's C{CONNECT}: one
    C{CONNECT} per connection, with C{Proxy-Authorization: Basic} from the
    proxy URL's credentials.  Wrap it with
    L{pooled_http._tls.wrapClientTLS} for TLS to the
    target.
    """

    def handshake(self, host: str) -> Handshake:
        return ConnectHandshake(self.proxy, host, self.port)


@implementer(IStreamClientEndpoint)
class SOCKS5Endpoint(_TunnelEndpointBase):
    """
    An endpoint to C{host:port} through a SOCKS5 proxy.  For C{socks5://}
    proxies the target's name is resolved here (to IPv4, with the
    reactor's resolver) and the proxy is given the address; for
    C{socks5h://} the proxy is given the name.
    """

    def __init__(
        self,
        reactor: Any,
        proxyEndpoint: IStreamClientEndpoint,
        proxy: ProxyURL,
        host: str,
        port: int,
    ) -> None:
        """
        @param reactor: The reactor whose resolver C{socks5://} uses.
        @param proxyEndpoint: The endpoint to the proxy itself.
        @param proxy: The proxy.
        @param host: The target host.
        @param port: The target port.
        """
        _TunnelEndpointBase.__init__(self, proxyEndpoint, proxy, host, port)
        self._reactor = reactor

    def handshake(self, host: str) -> Handshake:
        return SOCKS5Handshake(self.proxy, host, self.port)

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        host = self.host
        if self.proxy.scheme == "socks5h" or isIPAddress(host) or isIPv6Address(host):
            return _TunnelEndpointBase.connect(self, protocolFactory)
        attempt = _Attempt(self, protocolFactory)
        attempt.wait(self._reactor.resolve(host), attempt.connectToProxy)
        return attempt.result
