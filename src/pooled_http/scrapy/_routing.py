"""
Which agent and pool a Scrapy request goes through: its proxy (from
C{meta["proxy"]} and the C{Proxy-Authorization} header Scrapy's proxy
middleware sets) and its local bind address, each combination with a
L{PooledAgent} of its own over a shared pool (an agent's bind address is
part of its pool keys, which keeps connections bound to different
addresses apart).
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from typing import Any

from .._agent import PooledAgent
from .._proxyurl import ProxyURL, parseProxy

__all__ = ["Agents", "RequestRoute", "routeOf"]

#: How many (proxy, bind address) combinations keep an agent.
MAX_AGENTS = 256


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
    ) -> None:
        self._reactor = reactor
        self._contextFactory = contextFactory
        self._pool = pool
        self._proxyPool = proxyPool
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
        agent = PooledAgent(
            self._reactor,
            pool=pool,
            contextFactory=self._contextFactory,
            bindAddress=route.bindAddress,
            proxy=route.proxy,
        )
        agents[cacheKey] = agent
        if len(agents) > MAX_AGENTS:
            agents.popitem(last=False)
        return agent
