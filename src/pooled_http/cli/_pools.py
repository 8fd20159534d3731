"""
The C{pooled-http} command's side of a connection pool, whether it is
pooled_http's or Twisted's own: noting which requests were sent over a
reused connection, and closing the pool at the end of a run without waiting
forever.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred

from .._timers import cancelCall
from ._tally import FetchResult

__all__ = ["ConnectionRecorder", "closePool"]


class ConnectionRecorder:
    """
    Stands in front of a pool for an agent and notes, for the request being
    issued, whether the connection handed out was reused and how long it
    took to get it (the wait in the pool's queue and the connect, if any).

    The agent calls C{getConnection} synchronously inside C{request}; the
    fetcher sets L{current} just before calling C{request}.  Every other
    attribute is the pool's.

    @ivar pool: The pool.
    @ivar current: The result of the request being issued, whose C{reused}
        is to be set, or L{None}.
    """

    def __init__(self, pool: Any, clock: Any = None) -> None:
        """
        @param pool: The pool the agent should use.
        @param clock: Where the time comes from, to note how long each
            request waited for its connection; L{None} not to.
        """
        self.pool = pool
        self.clock = clock
        self.current: FetchResult | None = None

    def getConnection(self, key: Hashable, endpoint: Any) -> Deferred[Any]:
        """
        Ask the pool for a connection and note whether it was reused.

        @param key: The pool key.
        @param endpoint: The endpoint to connect with.
        @return: What the pool returns.
        """
        result, self.current = self.current, None
        # Twisted's own pool does not mark its connections; an idle
        # connection for the key means the next one handed out is reused.
        idle = getattr(self.pool, "_connections", None)
        guess = bool(idle.get(key)) if isinstance(idle, dict) else None
        clock = self.clock
        asked = clock.seconds() if clock is not None else 0.0
        d: Deferred[Any] = self.pool.getConnection(key, endpoint)
        if result is not None:

            def record(connection: Any) -> Any:
                reused = getattr(connection, "reused", None)
                result.reused = guess if reused is None else bool(reused)
                if clock is not None:
                    result.waitMs = (clock.seconds() - asked) * 1000.0
                return connection

            d.addCallback(record)
        return d

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


def closePool(reactor: Any, pool: Any, timeout: float = 5.0) -> Deferred[None]:
    """
    Close a pool (a pooled_http one entirely, a stock one's idle
    connections), giving up after C{timeout} seconds.

    @param reactor: The reactor.
    @param pool: The pool.
    @param timeout: Seconds to wait at most.
    @return: A Deferred that fires when the pool is closed or the time is up.
    """
    close = getattr(pool, "close", None)
    if close is not None:
        closing = maybeDeferred(close, timeout=timeout)
    else:
        closing = maybeDeferred(pool.closeCachedConnections)
    done: Deferred[None] = Deferred()

    def fire(_: object = None) -> None:
        if not done.called:
            done.callback(None)

    timer = reactor.callLater(timeout + 1, fire)

    def closed(result: object) -> None:
        cancelCall(timer)
        fire()

    closing.addBoth(closed)
    return done
