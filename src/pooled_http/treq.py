"""
The treq face (the C{pooled_http[treq]} extra): L{treqClient}, a ready
C{treq.HTTPClient} over a L{PooledAgent} and a new L{HTTPConnectionPool}.

The only module of the library that imports treq; the package loads it when
L{pooled_http.treqClient} or L{pooled_http.PooledHTTPClient} is first used,
so that C{import pooled_http} does not need treq.  Without treq, importing
this module fails with an L{ImportError} naming the extra to install.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.web.iweb import IAgent

from ._agent import PooledAgent, _defaultPolicy
from ._pool import HTTPConnectionPool
from ._proxy import ProxySelector, ProxyURL

try:
    from treq.client import HTTPClient
except ImportError as e:
    if e.name is None or e.name.split(".")[0] != "treq":
        raise
    raise ImportError(
        "pooled_http.treqClient and PooledHTTPClient need treq: "
        "pip install 'pooled_http[treq]'",
        name="treq",
    ) from e

__all__ = ["PooledHTTPClient", "treqClient"]


class PooledHTTPClient(HTTPClient):
    """
    A C{treq.HTTPClient} over a L{PooledAgent}, made by L{treqClient}, that
    knows its pool.

    @ivar agent: The L{PooledAgent}.
    @ivar pool: Its pool.
    """

    def __init__(self, agent: PooledAgent, **kwargs: Any) -> None:
        """
        @param agent: The agent.
        @param kwargs: Passed to C{treq.HTTPClient}.
        """
        super().__init__(cast(IAgent, agent), **kwargs)
        self.agent = agent
        self.pool = agent.pool

    def close(self, timeout: float | None = None) -> Deferred[None]:
        """
        Close the pool: fail waiting requests and close every connection.

        @param timeout: Passed to the pool's C{close}.
        @return: A L{Deferred} that fires when every connection is closed.
        """
        close = self.pool.close  # type: ignore[attr-defined]
        return close(timeout)


def treqClient(
    reactor: Any,
    *,
    contextFactory: Any = _defaultPolicy,
    bindAddress: Any = None,
    proxy: str | bytes | ProxyURL | ProxySelector | None = None,
    trustEnv: bool = False,
    http2: bool = False,
    **poolOptions: Any,
) -> PooledHTTPClient:
    """
    Make a ready C{treq.HTTPClient} over a L{PooledAgent} and a new
    L{HTTPConnectionPool}.

    C{connectTimeout} is one of the pool's options here: it bounds the whole
    connection attempt and fails it with
    L{pooled_http.errors.ConnectTimeoutError}.

    @param reactor: The reactor.
    @param contextFactory: The TLS policy (L{twisted.web.iweb.IPolicyForHTTPS}) of the agent.
    @param bindAddress: The local address client sockets bind to.
    @param proxy: The proxy, as for L{PooledAgent}.
    @param trustEnv: Whether to honour the proxy variables of the
        environment, as for L{PooledAgent}.
    @param http2: Whether C{https://} connections offer HTTP/2 by ALPN, as
        for L{PooledAgent} (the C{pooled_http[http2]} extra).
    @param poolOptions: Keyword arguments for L{HTTPConnectionPool}
        (C{persistent}, C{maxConnectionsPerHost}, C{connectTimeout},
        C{poolTimeout}, ...).
    @return: The client; C{client.pool} is its pool and C{client.close()}
        closes it.
    """
    pool = HTTPConnectionPool(reactor, **poolOptions)
    agent = PooledAgent(
        reactor,
        pool=pool,
        contextFactory=contextFactory,
        bindAddress=bindAddress,
        proxy=proxy,
        trustEnv=trustEnv,
        http2=http2,
    )
    return PooledHTTPClient(agent)
