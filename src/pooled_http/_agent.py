"""
L{PooledAgent}: an L{IAgent} that builds pool keys and endpoints once per
destination (L{pooled_http.treq} puts a ready C{treq.HTTPClient} over it).

L{twisted.web.client.Agent} parses the URI, IDNA-encodes the host name,
builds a L{twisted.internet.endpoints.HostnameEndpoint} (and, for https, a new TLS connection creator)
and computes the I{Host} header on every request, even when the pool then
hands it an idle keep-alive connection that needs none of that.
L{PooledAgent} does the same work once per destination and keeps the result
in a bounded least-recently-used cache.

It also puts the identity of the TLS policy into the pool key of every
https destination, so two agents with different trust settings that share
one pool never share a connection verified under the other's policy.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure
from twisted.web._newclient import _ensureValidMethod
from twisted.web.client import (
    URI,
    BrowserLikePolicyForHTTPS,
    _DeprecatedToCurrentPolicyForHTTPS,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import (
    IAgent,
    IBodyProducer,
    IPolicyForHTTPS,
    IResponse,
)
from zope.interface import implementer

from ._endpointcache import (
    CONNECT_TIMEOUT,
    DEFAULT_MAX_CACHED_ENDPOINTS,
    MAX_CACHED_ENDPOINTS,
)
from ._negotiate import ALPNCreator, NegotiatingEndpoint, http2Factory
from ._pool import HTTPConnectionPool
from ._proxy import (
    ForwardingEndpoint,
    ProxyEndpointFactory,
    ProxySelector,
    ProxyURL,
    parseProxy,
)
from ._proxyenv import (
    environmentValue,
    environmentVariable,
    noProxyMatches,
    proxyFromEnvironment,
)
from ._routes import (
    _GOOD_METHODS,
    _PLAIN_SCHEMES,
    _TLS_SCHEMES,
    TLSPolicyIdentity,
    _computeHostValue,
    _Route,
    directEndpoint,
    newRequest,
    parseURI,
    uriAuthorization,
)
from ._settings import flag
from .errors import ProxyURLError

__all__ = ["PooledAgent", "TLSPolicyIdentity"]

#: How many parsed request URIs a L{PooledAgent} remembers by default.
DEFAULT_MAX_CACHED_URIS = 1024

# "@" as a byte value (see pooled_http._http11head._CR on why).
_AT = ord("@")


# One default policy shared by every agent that does not pass its own, the
# way Agent's default argument is shared: agents with the default trust
# settings share connections.
_defaultPolicy = BrowserLikePolicyForHTTPS()


class _PoolLike(Protocol):
    """
    What L{PooledAgent} needs from a pool: L{HTTPConnectionPool} or
    L{twisted.web.client.HTTPConnectionPool}.
    """

    persistent: bool

    def getConnection(self, key: Hashable, endpoint: IStreamClientEndpoint) -> Any:
        """
        Supply a connection for one request.
        """


@implementer(IAgent)
class PooledAgent:
    """
    An L{IAgent} that works like L{twisted.web.client.Agent} for its callers
    and for wrapping agents (L{twisted.web.client.RedirectAgent},
    L{twisted.web.client.ContentDecoderAgent},
    L{twisted.web.client.CookieAgent}, C{treq.HTTPClient}), but builds the
    pool key, the endpoint and the I{Host} header once per destination.

    Pool keys are C{(scheme, host, port)} for C{http} (the same keys as
    L{twisted.web.client.Agent}) and C{(scheme, host, port, identity)} for
    C{https}, where C{identity} is a L{TLSPolicyIdentity} of the agent's TLS
    policy. Agents built with L{PooledAgent.usingEndpointFactory} use the
    identity of their endpoint factory for every scheme.

    Caching an endpoint does not cache name resolution: each new connection
    resolves the host name again, as with L{twisted.web.client.Agent}.

    Through a proxy (C{proxy=}, or the environment with C{trustEnv=True}),
    C{http://} requests go to an HTTP proxy in absolute form on connections
    keyed by the proxy alone, C{(b"http-proxy", url, fingerprint)} (plus
    the TLS policy for an C{https://} proxy), so every target shares them;
    C{https://} requests go through a C{CONNECT} tunnel (or SOCKS5) keyed
    C{(scheme, host, port, identity, url, fingerprint)}, where C{url} is the
    proxy URL without credentials and C{fingerprint} a keyed hash of them
    (L{ProxyURL.fingerprint}).

    With C{http2=True}, C{https://} connections offer C{h2} and
    C{http/1.1} by ALPN and speak HTTP/2 when the server picks it (many
    requests at once on one connection, C{response.version} of
    C{(b"HTTP", 2, 0)}), HTTP/1.1 otherwise, directly or inside a CONNECT
    or SOCKS5 tunnel; their keys end with C{b"h2"}, so they are never
    shared with HTTP/1.1-only agents.  Plain C{http://} requests (direct or
    forwarded by a proxy) stay on HTTP/1.1.

    @ivar pool: The pool connections come from.
    @ivar maxCachedEndpoints: How many destinations are remembered; the least
        recently used one is forgotten first.
    """

    _policy: Any
    _tlsIdentity: TLSPolicyIdentity | None
    _endpointFactory: Any
    _factoryIdentity: TLSPolicyIdentity | None
    _endpointArgs: dict[str, Any]
    _proxies: ProxyEndpointFactory | None
    # (uri, parsedURI) -> the proxy of one request, or None for direct
    _proxySelector: Callable[[bytes, URI], ProxyURL | None] | None
    _envProxies: dict[str, ProxyURL]
    # The HTTP/2 connection factory, with http2=True.
    _http2: Any

    def __init__(
        self,
        reactor: Any,
        pool: _PoolLike | None = None,
        contextFactory: Any = _defaultPolicy,
        connectTimeout: float | None = None,
        bindAddress: Any = None,
        *,
        maxCachedEndpoints: int = DEFAULT_MAX_CACHED_ENDPOINTS,
        proxy: str | bytes | ProxyURL | ProxySelector | None = None,
        trustEnv: bool = False,
        http2: bool = False,
    ) -> None:
        """
        @param reactor: The reactor connections are made with.
        @param pool: The pool to take connections from; if L{None}, a new
            persistent L{HTTPConnectionPool} is made (close it with
            C{agent.pool.close()}).
        @param contextFactory: The L{twisted.web.iweb.IPolicyForHTTPS} deciding how https
            servers are verified. Agents that pass the same object share
            https connections; agents that pass different objects never do.
        @param connectTimeout: Passed to L{twisted.internet.endpoints.HostnameEndpoint} as its
            C{timeout}, as L{twisted.web.client.Agent} does.
        @param bindAddress: The local address client sockets bind to; it
            is part of this agent's pool keys, so that agents sharing a
            pool with other bind addresses (or none) never share
            connections.
        @param maxCachedEndpoints: How many destinations to remember.
        @param proxy: The proxy every request goes through: a URL (str or
            bytes; C{http://}, C{https://}, C{socks5://} or C{socks5h://},
            with optional C{user:password@}), a callable C{proxyFor(uri)}
            returning such a URL or L{None} per request, or L{None} for
            direct connections.
        @param trustEnv: Whether to honour C{http_proxy}, C{https_proxy},
            C{all_proxy} and C{no_proxy} (read once, here).  C{no_proxy}
            also applies to a URL given as C{proxy}; a callable C{proxy}
            decides alone.
        @param http2: Whether C{https://} connections offer HTTP/2 by ALPN
            (needs the C{pooled_http[http2]} extra and a pooled_http pool).
        @raise ValueError: If C{maxCachedEndpoints} is not a positive integer.
        @raise HTTP2UnavailableError: For C{http2=True} without C{h2}.
        @raise TypeError: For C{http2=True} with another kind of pool, or
            an C{http2} that is not a bool.
        @raise ProxyURLError: If C{proxy}, or with C{trustEnv} a proxy
            variable of the environment, is not a usable proxy URL.
        """
        if not IPolicyForHTTPS.providedBy(contextFactory):
            warnings.warn(
                repr(contextFactory)
                + " was passed as the HTTPS policy for a PooledAgent, but it "
                "does not provide IPolicyForHTTPS.",
                stacklevel=2,
                category=DeprecationWarning,
            )
            contextFactory = _DeprecatedToCurrentPolicyForHTTPS(contextFactory)
        flag("http2", http2)
        self._init(reactor, pool, maxCachedEndpoints)
        if http2:
            # A pool may stand behind a forwarder that keeps it as .pool.
            if not isinstance(getattr(self.pool, "pool", self.pool), HTTPConnectionPool):
                raise TypeError(
                    "http2=True needs a pooled_http.HTTPConnectionPool, "
                    f"not {self.pool!r}"
                )
            self._http2 = http2Factory()
        self._policy = contextFactory
        self._tlsIdentity = TLSPolicyIdentity(contextFactory)
        self._endpointArgs["bindAddress"] = bindAddress
        connectTimeout = CONNECT_TIMEOUT.validate(connectTimeout)
        if connectTimeout is not None:
            self._endpointArgs["timeout"] = connectTimeout
        self._setUpProxies(proxy, flag("trustEnv", trustEnv))

    def _setUpProxies(
        self, proxy: str | bytes | ProxyURL | ProxySelector | None, trustEnv: bool
    ) -> None:
        """
        Decide how each request picks its proxy.

        @param proxy: The C{proxy} argument.
        @param trustEnv: The C{trustEnv} argument.
        """
        if proxy is None and not trustEnv:
            return
        self._proxies = ProxyEndpointFactory(
            self._reactor,
            proxy,
            self._policy,
            self._endpointArgs.get("timeout"),
            self._endpointArgs["bindAddress"],
        )
        if callable(proxy):
            proxyFor = self._proxies.proxyFor
            self._proxySelector = lambda uri, parsedURI: proxyFor(uri)
            return
        environ: dict[str, str] = {}
        if trustEnv:
            environ = dict(os.environ)
            for name in ("http_proxy", "https_proxy", "all_proxy"):
                found = environmentVariable(environ, name)
                if found is not None:
                    variable, value = found
                    self._envProxies[value] = parseProxy(value, variable)
        static = None if proxy is None else parseProxy(proxy)
        noProxy = environmentValue(environ, "no_proxy")
        envProxies = self._envProxies

        def select(uri: bytes, parsedURI: URI) -> ProxyURL | None:
            host = parsedURI.host.decode("ascii", "replace")
            if static is not None:
                if noProxy is not None and noProxyMatches(
                    noProxy, host, parsedURI.port
                ):
                    return None
                return static
            scheme = parsedURI.scheme.decode("ascii", "replace")
            found = proxyFromEnvironment(environ, scheme, host, parsedURI.port)
            return None if found is None else envProxies[found[1]]

        self._proxySelector = select

    @classmethod
    def usingEndpointFactory(
        cls,
        reactor: Any,
        endpointFactory: Any,
        pool: _PoolLike | None = None,
        *,
        maxCachedEndpoints: int = DEFAULT_MAX_CACHED_ENDPOINTS,
    ) -> PooledAgent:
        """
        Make a L{PooledAgent} that asks C{endpointFactory} for the endpoint
        of each destination (once per destination), like
        L{twisted.web.client.Agent.usingEndpointFactory}.

        The pool keys are C{(scheme, host, port, identity)} where
        C{identity} is a L{TLSPolicyIdentity} of C{endpointFactory}: agents
        with different endpoint factories never share a connection.

        @param reactor: The reactor.
        @param endpointFactory: The L{twisted.web.iweb.IAgentEndpointFactory}.
        @param pool: The pool, or L{None} for a new persistent one.
        @param maxCachedEndpoints: How many destinations to remember.
        @return: The agent.
        """
        agent = cls.__new__(cls)
        agent._init(reactor, pool, maxCachedEndpoints)
        agent._endpointFactory = endpointFactory
        agent._factoryIdentity = TLSPolicyIdentity(endpointFactory)
        return agent

    def _init(
        self, reactor: Any, pool: _PoolLike | None, maxCachedEndpoints: int
    ) -> None:
        """
        Set the state shared by both constructors.

        @param reactor: The reactor.
        @param pool: The pool or L{None}.
        @param maxCachedEndpoints: How many destinations to remember.
        """
        maxCachedEndpoints = MAX_CACHED_ENDPOINTS.validate(maxCachedEndpoints)
        if pool is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
        elif not callable(getattr(pool, "getConnection", None)):
            raise TypeError(
                f"pool must be a connection pool (with getConnection), not {pool!r}"
            )
        self._reactor = reactor
        self.pool: _PoolLike = pool
        self.maxCachedEndpoints = maxCachedEndpoints
        # (scheme, host, port) -> route; (scheme, host, port, proxy) through one
        self._routes: OrderedDict[tuple[Any, ...], _Route] = OrderedDict()
        # raw request URI -> ((URI fields..., origin form), route lookup key)
        self._uris: OrderedDict[
            bytes, tuple[tuple[Any, ...], tuple[bytes, bytes, int]]
        ] = OrderedDict()
        # Set by the constructors.
        self._policy = None
        self._tlsIdentity = None
        self._endpointFactory = None
        self._factoryIdentity = None
        self._endpointArgs = {}
        self._proxies = None
        self._proxySelector = None
        self._envProxies = {}
        self._http2 = None

    def __repr__(self) -> str:
        proxies = "" if self._proxies is None else f" via {self._proxies!r}"
        return (
            f"<PooledAgent {len(self._routes)}/{self.maxCachedEndpoints} "
            f"endpoints cached{proxies}, pool={self.pool!r}>"
        )

    def _newRoute(self, parsedURI: URI) -> _Route:
        """
        Work out the key, endpoint and I{Host} value of a new destination.

        @param parsedURI: The URI of a request to it.
        @return: The route.
        @raise SchemeNotSupported: For a scheme other than http(s)/ws(s)
            (with the standard endpoint factory).
        @raise ValueError: If the host is not ASCII.
        """
        scheme = parsedURI.scheme
        host = parsedURI.host
        port = parsedURI.port
        key: tuple[Any, ...]
        endpoint: Any
        if self._endpointFactory is not None:
            endpoint = self._endpointFactory.endpointForURI(parsedURI)
            key = (scheme, host, port, self._factoryIdentity)
        else:
            h2 = self._http2 is not None and scheme in _TLS_SCHEMES
            endpoint = directEndpoint(
                self._reactor,
                scheme,
                host,
                port,
                self._policy,
                self._endpointArgs,
                ALPNCreator if h2 else None,
            )
            if h2:
                endpoint = NegotiatingEndpoint(endpoint, self._http2)
                key = (scheme, host, port, self._tlsIdentity, b"h2")
            elif scheme in _TLS_SCHEMES:
                key = (scheme, host, port, self._tlsIdentity)
            else:
                key = (scheme, host, port)
        return _Route(key, endpoint, _computeHostValue(scheme, host, port))

    def _newProxyRoute(self, parsedURI: URI, proxy: ProxyURL) -> _Route:
        """
        Work out the key, endpoint and I{Host} value of a destination
        reached through a proxy.

        @param parsedURI: The URI of a request to it.
        @param proxy: The proxy.
        @return: The route.
        @raise SchemeNotSupported: For a scheme other than http(s)/ws(s).
        """
        scheme, host, port = parsedURI.scheme, parsedURI.host, parsedURI.port
        if scheme not in _PLAIN_SCHEMES and scheme not in _TLS_SCHEMES:
            raise SchemeNotSupported(f"Unsupported scheme: {scheme!r}")
        factory = self._proxies
        assert factory is not None
        hostValue = _computeHostValue(scheme, host, port)
        if scheme == b"http" and proxy.scheme in ("http", "https"):
            key: tuple[Any, ...] = (b"http-proxy", *proxy.keyPart)
            if proxy.scheme == "https":
                key += (self._tlsIdentity,)
            toProxy = factory.proxyEndpoint(proxy)
            forwarding: Any = ForwardingEndpoint(toProxy, proxy, key)
            return _Route(
                key,
                forwarding,
                hostValue,
                forward=True,
                proxyAuthorization=proxy.basicCredentials(),
            )
        key = (scheme, host, port, self._tlsIdentity, *proxy.keyPart)
        http2 = self._http2 if scheme in _TLS_SCHEMES else None
        if http2 is not None:
            key += (b"h2",)
        endpoint = factory.endpoint(scheme, host, port, proxy, key, http2)
        return _Route(key, endpoint, hostValue)

    def _routeFor(
        self,
        parsedURI: URI,
        lookup: tuple[bytes, bytes, int],
        proxy: ProxyURL | None = None,
    ) -> _Route:
        """
        The cached route of a destination, made and cached if new.

        @param parsedURI: The URI of a request to it.
        @param lookup: C{(scheme, host, port)}.
        @param proxy: The proxy the request goes through, or L{None}.
        @return: The route.
        """
        routes = self._routes
        routeKey: tuple[Any, ...] = lookup if proxy is None else (*lookup, proxy)
        route = routes.get(routeKey)
        if route is None:
            if proxy is None:
                route = self._newRoute(parsedURI)
            else:
                route = self._newProxyRoute(parsedURI, proxy)
            bindAddress = self._endpointArgs.get("bindAddress")
            if bindAddress is not None:
                # Sockets bound to another local address are other
                # connections: agents sharing a pool keep theirs apart.
                key: Any = route.key
                bound = ("bind", bindAddress)
                route.key = (
                    (*key[:-1], bound, b"h2")
                    if key[-1] == b"h2"
                    else (*key, bound)
                )
            routes[routeKey] = route
            if len(routes) > self.maxCachedEndpoints:
                routes.popitem(last=False)
        else:
            routes.move_to_end(routeKey)
        return route

    def _requestRoute(
        self, uri: bytes, parsedURI: URI, lookup: tuple[bytes, bytes, int]
    ) -> _Route:
        """
        The route of one request: through the proxy chosen for it, if any.

        @param uri: The request URI as given.
        @param parsedURI: It, parsed.
        @param lookup: C{(scheme, host, port)}.
        @return: The route.
        @raise ProxyURLError: If a C{proxyFor} callable chose an unusable URL.
        """
        proxy = None
        if self._proxySelector is not None:
            proxy = self._proxySelector(uri, parsedURI)
        return self._routeFor(parsedURI, lookup, proxy)

    def endpointFor(self, uri: bytes) -> tuple[Hashable, IStreamClientEndpoint]:
        """
        The pool key and endpoint this agent uses for a URI.

        @param uri: An absolute URI.
        @return: C{(key, endpoint)}.
        @raise SchemeNotSupported: For an unsupported scheme.
        """
        parsedURI = parseURI(uri)
        route = self._requestRoute(
            uri, parsedURI, (parsedURI.scheme, parsedURI.host, parsedURI.port)
        )
        return route.key, route.endpoint

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        """
        Issue a request, on an idle connection of the pool if there is one.

        Errors are those of L{twisted.web.client.Agent.request}: a
        L{ValueError} (raised) for an invalid URI or method, a L{TypeError}
        (raised) for a method that is not L{bytes}, a failed L{Deferred}
        with L{SchemeNotSupported} for an unknown scheme.

        @see: L{IAgent.request}
        """
        route: _Route | None
        cached = self._uris.get(uri) if type(uri) is bytes else None
        if cached is None:
            parsedURI = parseURI(uri)
            lookup = (parsedURI.scheme, parsedURI.host, parsedURI.port)
            try:
                route = self._requestRoute(uri, parsedURI, lookup)
            except (SchemeNotSupported, ProxyURLError):
                return defer.fail(Failure())
            requestPath = parsedURI.originForm
            authorization = uriAuthorization(uri) if _AT in uri else None
            if type(uri) is bytes:
                uris = self._uris
                if len(uris) >= DEFAULT_MAX_CACHED_URIS:
                    uris.popitem(last=False)
                uris[uri] = (
                    (
                        parsedURI.scheme,
                        parsedURI.netloc,
                        parsedURI.host,
                        parsedURI.port,
                        parsedURI.path,
                        parsedURI.params,
                        parsedURI.query,
                        parsedURI.fragment,
                        requestPath,
                        authorization,
                    ),
                    lookup,
                )
        else:
            fields, lookup = cached
            parsedURI = URI(*fields[:8])
            requestPath = fields[8]
            authorization = fields[9]
            route = None
            if self._proxySelector is None:
                route = self._routes.get(lookup)
            if route is None:
                try:
                    route = self._requestRoute(uri, parsedURI, lookup)
                except (SchemeNotSupported, ProxyURLError):
                    return defer.fail(Failure())
            else:
                self._routes.move_to_end(lookup)

        if not isinstance(method, bytes):
            raise TypeError(f"method={method!r} is {type(method)}, but must be bytes")
        if method not in _GOOD_METHODS:
            method = _ensureValidMethod(method)

        if headers is None:
            headers = route.hostHeaders()
        elif not headers.hasHeader(b"Host"):
            headers = headers.copy()
            headers.addRawHeader(b"Host", route.hostValue)
        if authorization is not None and not headers.hasHeader(b"Authorization"):
            headers = headers.copy()
            headers.addRawHeader(b"Authorization", authorization)
        if route.forward:
            authority = parsedURI.netloc
            # The absolute form keeps an empty path empty, as the URI was
            # given (and as twisted.web.client.ProxyAgent sends it).
            if not parsedURI.path and requestPath == b"/":
                requestPath = b""
            requestPath = parsedURI.scheme + b"://" + authority + requestPath
            if route.proxyAuthorization is not None:
                headers = headers.copy()
                headers.setRawHeaders(
                    b"Proxy-Authorization", [route.proxyAuthorization]
                )

        pool = self.pool
        persistent = pool.persistent
        d: Deferred[Any]
        if type(pool) is HTTPConnectionPool:
            d = pool._send(
                route.key,
                route.endpoint,
                newRequest(
                    method, requestPath, headers, bodyProducer, persistent, parsedURI
                ),
            )
            if route.forward:
                d.addCallback(route.endpoint.checkResponse)
            return d
        d = pool.getConnection(route.key, route.endpoint)

        def cbConnected(proto: Any) -> Deferred[IResponse]:
            return proto.request(
                newRequest(
                    method, requestPath, headers, bodyProducer, persistent, parsedURI
                )
            )

        d.addCallback(cbConnected)
        if route.forward:
            d.addCallback(route.endpoint.checkResponse)
        return d
