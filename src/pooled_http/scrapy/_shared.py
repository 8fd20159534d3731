"""
The pools of one crawl.  Scrapy builds a handler per scheme (one for
C{http}, one for C{https}); they share one L{SharedPools}, so that
C{CONCURRENT_REQUESTS} caps the connections of the whole crawl and its
statistics are counted once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from twisted.internet.defer import Deferred, DeferredList, succeed

from .._pool import HTTPConnectionPool
from ..stats import PoolStats
from ._config import HandlerConfig
from ._deadlines import Deadlines
from ._routing import Agents

__all__ = ["SharedPools", "sharedPoolsFor", "statsValues"]


def statsValues(stats: list[PoolStats]) -> dict[str, float | int]:
    """
    The C{pooled_http/...} values a crawl's stats collector gets, summed
    over the crawl's pools.

    @param stats: A snapshot of each pool.
    @return: Stat name -> value.
    """
    values: dict[str, float | int] = {
        "pooled_http/opened": sum(s.opened for s in stats),
        "pooled_http/reused": sum(s.reused for s in stats),
        "pooled_http/retried": sum(s.retried for s in stats),
        "pooled_http/timed_out": sum(s.timedOut for s in stats),
        "pooled_http/failed": sum(s.failed for s in stats),
        "pooled_http/wait_time_max": max((s.waitTime.max for s in stats), default=0.0),
    }
    waited = sum(s.waitTime.count for s in stats)
    values["pooled_http/wait_time_mean"] = (
        sum(s.waitTime.mean * s.waitTime.count for s in stats) / waited
        if waited
        else 0.0
    )
    for s in stats:
        for reason, count in s.closed.items():
            name = "pooled_http/closed/" + reason.replace(" ", "_")
            values[name] = values.get(name, 0) + count
    return values


class SharedPools:
    """
    The pool of direct requests, the pool of proxied ones (made when the
    first proxied request comes) and the agents over them; with a count of
    the handlers using them.

    @ivar pool: The pool of direct requests.
    @ivar agents: The agents of every (proxy, bind address).
    @ivar deadlines: The whole-download deadlines of the crawl's downloads.
    @ivar users: Handlers not closed yet.
    """

    def __init__(self, reactor: Any, config: HandlerConfig, contextFactory: Any) -> None:
        self._reactor = reactor
        self._config = config
        self.pool = HTTPConnectionPool(reactor, **config.poolArgs)
        self._proxyPool: HTTPConnectionPool | None = None
        self.agents = Agents(reactor, contextFactory, self.pool, self.proxyPool)
        self.deadlines = Deadlines(reactor)
        self.users = 0
        self._closing: Deferred[None] | None = None

    def proxyPool(self) -> HTTPConnectionPool:
        """
        The pool of requests through a proxy: every request to one proxy
        shares a key there, so its per-key cap is the global one.
        """
        if self._proxyPool is None:
            self._proxyPool = HTTPConnectionPool(
                self._reactor, **self._config.proxyPoolArgs
            )
        return self._proxyPool

    def pools(self) -> list[HTTPConnectionPool]:
        """
        The pools made so far.
        """
        return [p for p in (self.pool, self._proxyPool) if p is not None]

    def release(self, stats: Any) -> Deferred[None]:
        """
        One handler is done: once all are, record the statistics in
        C{stats} (a Scrapy stats collector, or L{None}) and close the pools.

        @return: A Deferred that fires when this handler may consider its
            pools closed: at once while another handler still uses them,
            else once every connection is gone (within the pools'
            C{closeGracePeriod}).
        """
        self.users -= 1
        if self.users > 0:
            return succeed(None)
        if self._closing is None:
            if stats is not None:
                snapshot = statsValues([p.stats() for p in self.pools()])
                for name, value in snapshot.items():
                    stats.set_value(name, value)
            deadlines = self.deadlines

            def closed(_: Any) -> None:
                # Every download is over: no deadline is left to keep.
                deadlines.stop()

            self._closing = DeferredList(
                [p.close(timeout=p.closeGracePeriod) for p in self.pools()]
            ).addCallback(closed)
        closing: Deferred[None] = Deferred()

        def done(result: Any) -> Any:
            closing.callback(None)
            return result

        self._closing.addBoth(done)
        return closing


_byCrawler: WeakKeyDictionary[Any, SharedPools] = WeakKeyDictionary()


def sharedPoolsFor(crawler: Any, make: Callable[[], SharedPools]) -> SharedPools:
    """
    The L{SharedPools} of C{crawler}, made with C{make} for its first
    handler (or once the previous ones were all closed).
    """
    shared = _byCrawler.get(crawler)
    if shared is None or shared._closing is not None:
        shared = _byCrawler[crawler] = make()
    shared.users += 1
    return shared
