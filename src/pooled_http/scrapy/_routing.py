"""
Which agent and pool a Scrapy request goes through: its proxy (from
C{meta["proxy"]} and the C{Proxy-Authorization} header Scrapy's proxy
middleware sets) and its local bind address, each combination with a
L{PooledAgent} of its own over a shared pool; and the pool view that keeps
connections bound to different addresses apart and notes the transport
every response came on.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any
from weakref import WeakKeyDictionary

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint

from .._agent import PooledAgent
from .._proxyurl import ProxyURL, parseProxy

__all__ = ["PoolView", "RequestRoute", "routeOf"]

#: How many (proxy, bind address) combinations keep an agent.
MAX_AGENTS = 256


class _NotingLease:
    """
    A pool lease that notes, for each response, the transport it came on
    (for the peer's address and certificate).
    """

    __slots__ = ("_lease", "_transports")

    def __init__(self, lease: Any, transports: WeakKeyDictionary[Any, Any]) -> None:
        self._lease = lease
        self._transports = transports

    def request(self, request: Any) -> Deferred[Any]:
        """
        Send C{request} on the lease's connection.
        """
        transport = self._lease.transport
        transports = self._transports

        def note(response: Any) -> Any:
            transports[response] = transport
            return response

        d: Deferred[Any] = self._lease.request(request)
        return d.addCallback(note)

    def abort(self) -> Any:
        """
        Abort the connection.
        """
        return self._lease.abort()


class PoolView:
    """
    A pool as one agent sees it: the pool keys get C{suffix} (the bind
    address), and every response's transport is noted in C{transports}.

    @ivar pool: The pool underneath.
    """

    def __init__(
        self,
        pool: Any,
        suffix: tuple[Hashable, ...],
        transports: WeakKeyDictionary[Any, Any],
    ) -> None:
        self.pool = pool
        self._suffix = suffix
        self._transports = transports

    @property
    def persistent(self) -> bool:
        """
        Whether the pool keeps connections.
        """
        return bool(self.pool.persistent)

    @persistent.setter
    def persistent(self, value: bool) -> None:
        self.pool.persistent = value

    def getConnection(
        self, key: Hashable, endpoint: IStreamClientEndpoint
    ) -> Deferred[Any]:
        """
        A lease from the pool, under C{key} plus this view's suffix.
        """
        if self._suffix:
            key = (*key, *self._suffix) if isinstance(key, tuple) else (key, *self._suffix)
        transports = self._transports
        d: Deferred[Any] = self.pool.getConnection(key, endpoint)
        return d.addCallback(lambda lease: _NotingLease(lease, transports))


class RequestRoute:
    """
    How one request is sent: the proxy (with the credentials of its
    C{Proxy-Authorization}, if Basic) or L{None}, the bind address, and
    whether the request's own C{Proxy-Authorization} header goes as it is
    (to an http proxy forwarding an http URL, when it is not Basic); else
    a proxied request's header is dropped.
    """

    __slots__ = ("proxy", "bindAddress", "forwardsProxyAuthorization")

    def __init__(
        self,
        proxy: ProxyURL | None,
        bindAddress: tuple[str, int] | None,
        forwardsProxyAuthorization: bool,
    ) -> None:
        self.proxy = proxy
        self.bindAddress = bindAddress
        self.forwardsProxyAuthorization = forwardsProxyAuthorization


def _basicCredentials(value: bytes, encoding: str) -> tuple[str, str] | None:
    """
    The user name and password of a C{Basic} C{Proxy-Authorization} value,
    or L{None} for another scheme or a value that does not decode.
    """
    scheme, _, token = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        pair = base64.b64decode(token.strip(), validate=True).decode(encoding)
    except (binascii.Error, UnicodeDecodeError, LookupError):
        return None
    user, sep, password = pair.partition(":")
    if not sep:
        return None
    return user, password


def routeOf(
    request: Any,
    defaultBind: tuple[str, int] | None,
    encoding: str,
    normalizeBind: Any,
) -> RequestRoute:
    """
    The route of a Scrapy request.

    @param request: The Scrapy request.
    @param defaultBind: C{DOWNLOAD_BIND_ADDRESS}.
    @param encoding: C{HTTPPROXY_AUTH_ENCODING}.
    @param normalizeBind: Turns C{meta["bindaddress"]} into C{(host, port)}.
    @raise ProxyURLError: If C{meta["proxy"]} is not a usable proxy URL.
    @raise ValueError: For a request through a tunnel (an https target, or
        a SOCKS5 proxy) whose C{Proxy-Authorization} is not C{Basic} (the
        tunnel can only send credentials from the proxy URL).
    """
    meta = request.meta
    bind = normalizeBind(meta.get("bindaddress")) or defaultBind
    proxyValue = meta.get("proxy")
    if not proxyValue:
        return RequestRoute(None, bind, True)
    proxy = parseProxy(proxyValue, 'meta["proxy"]')
    header = request.headers.get(b"Proxy-Authorization")
    if not header:
        return RequestRoute(proxy, bind, False)
    credentials = _basicCredentials(header, encoding)
    if credentials is None:
        if not (
            request.url.startswith("http:") and proxy.scheme in ("http", "https")
        ):
            raise ValueError(
                "the Proxy-Authorization header of a request through a "
                "CONNECT tunnel or a SOCKS5 proxy must use the Basic scheme "
                "(the tunnel sends the credentials of the proxy URL)"
            )
        # Forwarded as it is, to the proxy only.
        return RequestRoute(proxy, bind, True)
    user, password = credentials
    proxy = ProxyURL(proxy.scheme, proxy.host, proxy.port, user, password)
    return RequestRoute(proxy, bind, False)


class Agents:
    """
    One L{PooledAgent} per (proxy, bind address), least recently used
    forgotten first; direct requests take connections from C{pool},
    proxied ones from C{proxyPool()}.
    """

    def __init__(
        self,
        reactor: Any,
        contextFactory: Any,
        pool: Any,
        proxyPool: Any,
        transports: WeakKeyDictionary[Any, Any],
    ) -> None:
        self._reactor = reactor
        self._contextFactory = contextFactory
        self._pool = pool
        self._proxyPool = proxyPool
        self._transports = transports
        self._agents: OrderedDict[tuple[Any, ...], PooledAgent] = OrderedDict()

    def agentFor(self, route: RequestRoute) -> PooledAgent:
        """
        The agent of C{route}, made if new.
        """
        cacheKey = (route.proxy, route.bindAddress)
        agents = self._agents
        agent = agents.get(cacheKey)
        if agent is not None:
            agents.move_to_end(cacheKey)
            return agent
        pool = self._pool if route.proxy is None else self._proxyPool()
        suffix: tuple[Hashable, ...] = ()
        if route.bindAddress is not None:
            suffix = (("bind", route.bindAddress),)
        agent = PooledAgent(
            self._reactor,
            pool=PoolView(pool, suffix, self._transports),
            contextFactory=self._contextFactory,
            bindAddress=route.bindAddress,
            proxy=route.proxy,
        )
        agents[cacheKey] = agent
        if len(agents) > MAX_AGENTS:
            agents.popitem(last=False)
        return agent
