"""
Proxies as endpoint wrappers that compose.

    - L{ProxyURL} and L{parseProxy} (in L{pooled_http._proxyurl}): a
      parsed proxy URL that keeps its credentials out of C{repr},
      messages and pool keys;
    - L{HTTPTunnelEndpoint} and L{SOCKS5Endpoint} (in
      L{pooled_http._tunnel}): a tunnel through an HTTP(S) proxy with one
      C{CONNECT}, or through a SOCKS5 proxy;
    - L{ForwardingEndpoint}: the connection to an HTTP proxy that is sent
      requests in absolute form;
    - L{ProxyEndpointFactory}: builds TCP, then TLS to an C{https://}
      proxy, then the tunnel, then TLS to the target, for any
      L{twisted.web.client.Agent}.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from zope.interface import implementer

from ._contract import ConnectionFactory
from ._negotiate import ALPNCreator, NegotiatingEndpoint
from ._proxyurl import CREDENTIALS_HINT, ProxyURL, parseProxy
from ._tls import wrapClientTLS
from ._tunnel import HTTPTunnelEndpoint, SOCKS5Endpoint, proxyUnreachable
from .errors import ProxyAuthenticationRequired, isCancellation

__all__ = [
    "ProxyURL",
    "parseProxy",
    "HTTPTunnelEndpoint",
    "SOCKS5Endpoint",
    "ProxyEndpointFactory",
    "ForwardingEndpoint",
    "ProxySelector",
]


class ForwardingEndpoint:
    """
    The endpoint of connections that carry requests to an HTTP proxy in
    absolute form: the endpoint to the proxy itself, whose failures to
    connect are L{ProxyUnreachableError}s (a cancellation stays one).

    @ivar proxy: The proxy.
    @ivar key: The pool key, put in the errors, or L{None}.
    """

    def __init__(
        self,
        proxyEndpoint: IStreamClientEndpoint,
        proxy: ProxyURL,
        key: Hashable | None = None,
    ) -> None:
        """
        @param proxyEndpoint: The endpoint to the proxy itself.
        @param proxy: The proxy.
        @param key: The pool key.
        """
        self._proxyEndpoint: Any = proxyEndpoint
        self.proxy = proxy
        self.key = key

    def __repr__(self) -> str:
        return f"<ForwardingEndpoint via {self.proxy.url}>"

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        """
        Connect to the proxy.

        @param protocolFactory: Builds the protocol that talks to it.
        @return: A L{Deferred} that fires with that protocol.
        """

        def failed(failure: Failure) -> Failure:
            if isCancellation(failure.value or Exception()):
                return failure
            return Failure(proxyUnreachable(self.proxy, failure, self.key))

        d: Deferred[Any] = self._proxyEndpoint.connect(protocolFactory)
        return d.addErrback(failed)

    def checkResponse(self, response: Any) -> IResponse:
        """
        Pass on a response that came through the proxy, unless it is the
        proxy's own C{407 Proxy Authentication Required}: then its body is
        read and dropped (so the connection goes back to the pool) and the
        request fails with L{ProxyAuthenticationRequired}, as a refused
        C{CONNECT} does.

        @param response: The response to a forwarded request.
        @return: C{response}.
        @raise ProxyAuthenticationRequired: For a 407.
        """
        if response.code != 407:
            return response
        response.deliverBody(_Discard())
        reason = response.phrase.decode("latin-1")
        raise ProxyAuthenticationRequired(
            self.proxy.url,
            f"the proxy refused to forward the request: 407 {reason}; "
            + CREDENTIALS_HINT,
            self.key,
            status=407,
            reason=reason,
        )


class _Discard(Protocol):
    """
    A body protocol that drops what it is given.
    """

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        pass


ProxySelector = Callable[[bytes], "str | bytes | ProxyURL | None"]


@implementer(IAgentEndpointFactory)
class ProxyEndpointFactory:
    """
    Builds the endpoints of connections through proxies; an
    L{IAgentEndpointFactory} for L{twisted.web.client.Agent.usingEndpointFactory}.

    Under a stock L{twisted.web.client.Agent}, which always sends
    origin-form requests, every target is reached through a tunnel
    (C{CONNECT}, or SOCKS5), C{http://} ones too.

    @ivar proxy: The proxy URL, a callable C{proxyFor(uri) -> url or None},
        or L{None} for direct connections.
    """

    def __init__(
        self,
        reactor: Any,
        proxy: str | bytes | ProxyURL | ProxySelector | None,
        contextFactory: Any = None,
        connectTimeout: float | None = None,
        bindAddress: Any = None,
    ) -> None:
        """
        @param reactor: The reactor.
        @param proxy: The proxy URL (str or bytes), a callable taking the
            request URI and returning one (or L{None}: direct), or L{None}.
        @param contextFactory: The L{twisted.web.iweb.IPolicyForHTTPS} that
            verifies the targets and C{https://} proxies; a new
            L{BrowserLikePolicyForHTTPS} if L{None}.
        @param connectTimeout: The C{timeout} of the TCP connection.
        @param bindAddress: The local address client sockets bind to.
        @raise ProxyURLError: If C{proxy} is a string that is not a usable
            proxy URL.
        """
        self._reactor = reactor
        self.proxy = proxy
        self._static: ProxyURL | None = None
        if proxy is not None and not callable(proxy):
            self._static = parseProxy(proxy)
        if contextFactory is None:
            contextFactory = BrowserLikePolicyForHTTPS()
        self._policy = contextFactory
        self._endpointArgs: dict[str, Any] = {"bindAddress": bindAddress}
        if connectTimeout is not None:
            self._endpointArgs["timeout"] = connectTimeout

    def __repr__(self) -> str:
        shown = self._static if self._static is not None else self.proxy
        return f"<ProxyEndpointFactory proxy={shown!r}>"

    def proxyFor(self, uri: bytes) -> ProxyURL | None:
        """
        The proxy a request goes through.

        @param uri: The request URI.
        @return: The proxy, or L{None} for a direct connection.
        @raise ProxyURLError: If a callable returned an unusable URL.
        """
        if self._static is not None or self.proxy is None:
            return self._static
        chosen = self.proxy(uri)  # type: ignore[operator]
        return None if chosen is None else parseProxy(chosen, "proxyFor(uri)")

    def proxyEndpoint(self, proxy: ProxyURL) -> IStreamClientEndpoint:
        """
        The endpoint to a proxy itself: TCP, then TLS for C{https://}.

        @param proxy: The proxy.
        """
        endpoint: Any = HostnameEndpoint(
            self._reactor, proxy.host, proxy.port, **self._endpointArgs
        )
        if proxy.scheme == "https":
            endpoint = wrapClientTLS(
                self._policy.creatorForNetloc(proxy.host.encode("idna"), proxy.port),
                endpoint,
            )
        return endpoint

    def endpoint(
        self,
        scheme: bytes,
        host: bytes,
        port: int,
        proxy: ProxyURL | None,
        key: Hashable | None = None,
        http2: ConnectionFactory | None = None,
    ) -> IStreamClientEndpoint:
        """
        The endpoint of a tunnelled (or direct) connection to a target.

        @param scheme: The target's scheme; C{https} and C{wss} get TLS to
            the target, verified under this factory's TLS policy.
        @param host: The target host.
        @param port: The target port.
        @param proxy: The proxy, or L{None} for a direct connection.
        @param key: The pool key the connections go under, for the errors.
        @param http2: For C{https} and C{wss}, the connection factory of
            HTTP/2 connections if HTTP/2 is to be offered by ALPN (see
            L{pooled_http._negotiate}), or L{None}.
        """
        textHost = host.decode("ascii")
        endpoint: Any
        if proxy is None:
            endpoint = HostnameEndpoint(
                self._reactor, textHost, port, **self._endpointArgs
            )
        elif proxy.scheme in ("socks5", "socks5h"):
            endpoint = SOCKS5Endpoint(
                self._reactor, self.proxyEndpoint(proxy), proxy, textHost, port
            )
        else:
            endpoint = HTTPTunnelEndpoint(
                self.proxyEndpoint(proxy), proxy, textHost, port
            )
        if proxy is not None:
            endpoint.key = key
        if scheme in (b"https", b"wss"):
            creator = self._policy.creatorForNetloc(host, port)
            if http2 is None:
                return wrapClientTLS(creator, endpoint)
            alpn: Any = ALPNCreator(creator)
            negotiating: Any = NegotiatingEndpoint(wrapClientTLS(alpn, endpoint), http2)
            return negotiating
        return endpoint

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """
        The endpoint for a request, as L{twisted.web.client.Agent} asks.

        @param uri: The parsed request URI.
        """
        return self.endpoint(
            uri.scheme, uri.host, uri.port, self.proxyFor(uri.toBytes())
        )
