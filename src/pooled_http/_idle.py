"""
Idle timeouts: how long an idle connection may wait in the pool, and the
timers that close it when that time is up.

Connections on the pool's own C{cachedConnectionTimeout} expire in the
order they went idle, so one reactor timer (the I{sweeper}) serves them all
and the cost of parking a connection does not grow with the number of idle
connections.  One whose server (C{Keep-Alive: timeout=N}) or maximum age
asks for less gets a timer of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IReactorTime

from ._contract import PoolConnection
from ._timers import activeCalls, cancelCall
from .stats import CloseReason

__all__ = ["IdleTimers"]


class _IdleSettings(Protocol):
    cachedConnectionTimeout: float
    maxConnectionAge: float | None


class IdleTimers:
    """
    The idle timers of one pool.

    @ivar settings: Where C{cachedConnectionTimeout} and
        C{maxConnectionAge} are read (the pool).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        settings: _IdleSettings,
        expired: Callable[[PoolConnection, str], None],
    ) -> None:
        """
        @param reactor: Where timers are scheduled.
        @param settings: The pool's settings.
        @param expired: Called with a connection and a L{CloseReason} when
            its idle time is up.
        """
        self._reactor: Any = reactor
        self.settings = settings
        self._expired = expired
        # Connections on the default timeout, by when they went idle.
        self._parked: dict[PoolConnection, float] = {}
        self._sweeper: DelayedCall | None = None
        # Connections with a shorter deadline of their own.
        self._own: dict[PoolConnection, DelayedCall] = {}

    def timeoutFor(self, connection: PoolConnection) -> float:
        """
        How long an idle connection may wait: the pool's idle timeout,
        shortened to close a little before the server's own keep-alive
        timeout and before the connection's maximum age.

        @param connection: The connection going idle.
        @return: Seconds; zero or less means it has expired already.
        """
        settings = self.settings
        timeout = float(settings.cachedConnectionTimeout)
        serverTimeout = connection.keepAliveTimeout
        if serverTimeout is not None:
            timeout = min(timeout, serverTimeout - min(1.0, serverTimeout / 4))
        if settings.maxConnectionAge is not None:
            age = self._reactor.seconds() - connection.createdAt
            timeout = min(timeout, settings.maxConnectionAge - age)
        return timeout

    def start(self, connection: PoolConnection) -> bool:
        """
        Start the idle timeout of a connection that just went idle.

        @return: C{False} if it has expired already (nothing was started).
        """
        settings = self.settings
        if connection.keepAliveTimeout is None and settings.maxConnectionAge is None:
            # The common case, without a call: the pool's own timeout.
            timeout = float(settings.cachedConnectionTimeout)
        else:
            timeout = self.timeoutFor(connection)
        if timeout <= 0:
            return False
        if timeout < settings.cachedConnectionTimeout:
            reason = CloseReason.IDLE_TIMEOUT
            if connection.keepAliveTimeout is None:
                reason = CloseReason.EXPIRED
            self._own[connection] = self._reactor.callLater(
                timeout, self._ownExpired, connection, reason
            )
            return True
        self._parked[connection] = self._reactor.seconds()
        if self._sweeper is None:
            self._sweeper = self._reactor.callLater(timeout, self._sweep)
        return True

    def stop(self, connection: PoolConnection) -> None:
        """
        A connection stops being idle: forget its idle timeout.
        """
        own = self._own
        if own:
            cancelCall(own.pop(connection, None))
        parked = self._parked
        if parked.pop(connection, None) is not None and not parked:
            sweeper, self._sweeper = self._sweeper, None
            cancelCall(sweeper)

    def timeoutChanged(self) -> None:
        """
        C{cachedConnectionTimeout} was changed: wait for the oldest idle
        connection's new deadline.
        """
        if self._sweeper is not None:
            sweeper, self._sweeper = self._sweeper, None
            cancelCall(sweeper)
            self._sweep()

    def pendingCalls(self) -> list[DelayedCall]:
        """
        The idle timers still to run.
        """
        return activeCalls([*self._own.values(), self._sweeper])

    def _ownExpired(self, connection: PoolConnection, reason: str) -> None:
        self._own.pop(connection, None)
        self._expired(connection, reason)

    def _sweep(self) -> None:
        """
        Close the connections whose idle timeout has passed, oldest first,
        and wait for the next one.
        """
        self._sweeper = None
        parked = self._parked
        timeout = float(self.settings.cachedConnectionTimeout)
        now = self._reactor.seconds()
        while parked:
            connection, since = next(iter(parked.items()))
            if since + timeout > now:
                self._sweeper = self._reactor.callLater(
                    since + timeout - now, self._sweep
                )
                return
            del parked[connection]
            self._expired(connection, CloseReason.IDLE_TIMEOUT)
