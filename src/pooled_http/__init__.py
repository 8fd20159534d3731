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
"""

from ._agent import PooledAgent, PooledHTTPClient, TLSPolicyIdentity, treqClient
from ._pool import HTTPConnectionPool
from ._proxy import (
    HTTPTunnelEndpoint,
    ProxyEndpointFactory,
    ProxyURL,
    SOCKS5Endpoint,
    parseProxy,
)
from ._retry import IDEMPOTENT_METHODS, RetryPolicy
from .errors import (
    ConnectTimeoutError,
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
    isTemporaryNetworkError,
)
from .stats import CloseReason, KeyStats, PoolStats, WaitStats

__version__ = "0.1.0"

__all__ = [
    "HTTPConnectionPool",
    "PooledAgent",
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
