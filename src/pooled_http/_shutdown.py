"""
Shutting down: L{HTTPConnectionPool.closeCachedConnections} and
L{HTTPConnectionPool.close}, and the timers that make sure neither ever
waits forever for a connection that does not go away.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, gatherResults

from ._connecting import Connector
from ._contract import PoolConnection
from ._core import Action, PoolCore
from ._events import emit
from ._lifecycle import Lifecycle
from ._settings import Setting
from ._timers import cancelCall
from .stats import CloseReason

__all__ = ["Shutdown"]

_CLOSE_TIMEOUT = Setting("close(timeout)", optional=True, zero=True)


class Shutdown:
    """
    The shutdown part of L{HTTPConnectionPool}.
    """

    _core: PoolCore
    _connector: Connector
    _live: set[PoolConnection]
    _retiring: set[PoolConnection]
    _reactor: Any
    _closeWatchers: list[Deferred[None]]
    _closeTimer: DelayedCall | None
    _stragglerTimers: set[DelayedCall]
    closeGracePeriod: float

    def _carryOut(self, actions: list[Action]) -> None:
        raise NotImplementedError

    def closeCachedConnections(self, key: Hashable | None = None) -> Deferred[None]:
        """
        Close the pool's connections (all of them, or only C{key}'s) and
        wait until they are gone.  The pool stays open.

        Idle connections are closed at once.  A connection in use at the
        call is closed as soon as its response is over instead of going
        back to the pool, and the returned Deferred waits for it too; one
        still in use C{closeGracePeriod} seconds after the call (a response
        nobody reads, a server that stalls) is aborted then, failing its
        response.  A peer that does not finish closing within
        C{closeGracePeriod} is aborted as well, so this never hangs, and
        once the Deferred fires the pool has no connection of the key(s)
        and no timer for them: what a test's tear-down needs.

        @param key: Only this key's connections, or L{None} for all.
        @return: A Deferred that fires once every connection concerned has
            had its C{connectionLost}.
        """
        busy = [
            c
            for c in self._live
            if c.lifecycle is Lifecycle.ACTIVE and (key is None or c.key == key)
        ]
        self._retiring.update(busy)
        actions = self._core.closeIdle(key, CloseReason.SHUTDOWN)
        watchers = [a.connection.whenLost() for a in actions]
        watchers.extend(c.whenLost() for c in busy)
        self._carryOut(actions)
        done = gatherResults(watchers).addCallback(lambda _: None)
        if busy:
            timer = self._reactor.callLater(
                self.closeGracePeriod, self._abortStragglers, busy
            )
            self._stragglerTimers.add(timer)

            def stopTimer(result: Any) -> Any:
                self._stragglerTimers.discard(timer)
                cancelCall(timer)
                return result

            done.addBoth(stopTimer)
        return done

    def close(self, timeout: float | None = None) -> Deferred[None]:
        """
        Shut the pool down.

        From the call on, C{getConnection} fails with L{PoolClosedError};
        queued requests fail with it; idle connections and connection
        attempts are closed; requests in flight may finish, until C{timeout}
        seconds (if given) after which their connections are aborted.

        @param timeout: Seconds in-flight requests may still take, or
            L{None} to let them finish.
        @return: A Deferred that fires after every connection's
            C{connectionLost}.
        """
        timeout = _CLOSE_TIMEOUT.validate(timeout)
        watcher: Deferred[None] = Deferred()
        self._closeWatchers.append(watcher)
        if not self._core.closed:
            emit("shutdown", None, "close() called")
            self._carryOut(self._core.shutdown())
            for bucket in list(self._core.buckets.values()):
                for waiter in list(bucket.connecting):
                    self._connector.cancel(waiter)
            if timeout is not None:
                self._closeTimer = self._reactor.callLater(timeout, self._abortInFlight)
        self._checkClosed()
        return watcher

    def _abortStragglers(self, connections: list[PoolConnection]) -> None:
        """
        C{closeCachedConnections}' grace is over: abort the connections
        that were in use at the call and are not gone yet.
        """
        for connection in connections:
            if connection.lifecycle is Lifecycle.CLOSED:
                continue
            if connection.lifecycle is Lifecycle.ACTIVE:
                self._carryOut(self._core.discard(connection, CloseReason.SHUTDOWN))
            # Its request fails: sending it again on a new connection would
            # leave the key a connection the caller asked to be rid of.
            connection.abortedByPool = True
            connection.abortTransport()

    def _abortInFlight(self) -> None:
        self._closeTimer = None
        self._abortStragglers(list(self._live))

    def _checkClosed(self) -> None:
        if not self._core.closed or self._live or self._core.buckets:
            return
        cancelCall(self._closeTimer)
        self._closeTimer = None
        watchers, self._closeWatchers = self._closeWatchers, []
        for d in watchers:
            if not d.called:  # a caller may have cancelled its Deferred
                d.callback(None)
