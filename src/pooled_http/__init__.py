"""
pooled_http: an HTTP connection pool for Twisted.

A drop-in replacement for L{twisted.web.client.HTTPConnectionPool} that caps
connections per host and overall, queues requests fairly when a cap is
reached, times out every phase of a request, retries only what is safe,
shuts down cleanly and reports what it is doing::

    from twisted.web.client import Agent
    from pooled_http import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, maxConnectionsPerHost=8)
    agent = Agent(reactor, pool=pool)

L{treqClient} and L{PooledHTTPClient} import treq when they are first used,
so that C{import pooled_http} needs only Twisted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._agent import PooledAgent, TLSPolicyIdentity
from ._endpointcache import CachingEndpointFactory
from ._pool import HTTPConnectionPool
from ._proxy import ProxyEndpointFactory
from ._proxyurl import ProxyURL, parseProxy
from ._retry import IDEMPOTENT_METHODS, RetryPolicy
from ._tunnel import HTTPTunnelEndpoint, SOCKS5Endpoint
from .errors import (
    ConnectTimeoutError,
    FramingError,
    HTTP2ProtocolError,
    HTTP2UnavailableError,
    PoolClosedError,
    PoolError,
    PoolTimeoutError,
    ProxyAuthenticationRequired,
    ProxyError,
    ProxyProtocolError,
    ProxyUnreachableError,
    ProxyURLError,
    ReadTimeoutError,
    ResponseHeadersTooLargeError,
    ResponseTimeoutError,
    StreamResetError,
    UnprocessedStreamError,
    isTemporaryNetworkError,
)
from .stats import CloseReason, KeyStats, PoolStats, WaitStats

if TYPE_CHECKING:
    from .treq import PooledHTTPClient, treqClient

#: The version of pooled_http; the packaging metadata reads it from here.
__version__ = "0.1.0"

#: The names that come from L{pooled_http.treq}, loaded on first use.
_TREQ_NAMES = frozenset({"PooledHTTPClient", "treqClient"})

__all__ = [
    "HTTPConnectionPool",
    "PooledAgent",
    "CachingEndpointFactory",
    "PooledHTTPClient",
    "TLSPolicyIdentity",
    "treqClient",
    "ProxyURL",
    "parseProxy",
    "ProxyEndpointFactory",
    "HTTPTunnelEndpoint",
    "SOCKS5Endpoint",
    "RetryPolicy",
    "IDEMPOTENT_METHODS",
    "PoolError",
    "PoolTimeoutError",
    "PoolClosedError",
    "ConnectTimeoutError",
    "ResponseTimeoutError",
    "ReadTimeoutError",
    "ResponseHeadersTooLargeError",
    "FramingError",
    "StreamResetError",
    "UnprocessedStreamError",
    "HTTP2ProtocolError",
    "HTTP2UnavailableError",
    "ProxyURLError",
    "ProxyError",
    "ProxyAuthenticationRequired",
    "ProxyUnreachableError",
    "ProxyProtocolError",
    "isTemporaryNetworkError",
    "CloseReason",
    "KeyStats",
    "PoolStats",
    "WaitStats",
]


def __getattr__(name: str) -> Any:
    """
    Load L{treqClient} and L{PooledHTTPClient} (and with them treq) the
    first time either is used.

    @param name: The attribute asked for.
    @return: The attribute.
    @raise AttributeError: If there is no such attribute.
    """
    if name in _TREQ_NAMES:
        # Without treq this fails with an ImportError naming the extra.
        from . import treq

        value = getattr(treq, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """
    The module's names, the ones loaded on first use included.
    """
    return sorted(set(globals()) | _TREQ_NAMES)
