"""
What the pool does when a connection reports (quiescent, given up, timed
out, lost), and L{PoolOwner}, the narrow L{ConnectionOwner} every connection
is handed: it forwards those four reports and exposes the reactor and the
settings a connection reads, nothing else of the pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from ._contract import PoolConnection
from ._core import Action, PoolCore
from ._counters import Counters
from ._events import emit
from ._idle import IdleTimers
from ._lifecycle import Lifecycle
from .errors import PoolError
from .stats import CloseReason
from .trace import Dispatch

if TYPE_CHECKING:
    from ._pool import HTTPConnectionPool

__all__ = ["ConnectionReports", "PoolOwner", "OWNER_SETTINGS"]

#: The pool settings a connection reads through its owner.
OWNER_SETTINGS = frozenset(
    {
        "responseTimeout",
        "readTimeout",
        "lenientHeaders",
        "maxHeaderBytes",
        "maxConcurrentStreams",
    }
)


class ConnectionReports:
    """
    The part of L{HTTPConnectionPool} that handles its connections'
    reports and decides whether a connection that came back is kept.
    """

    _core: PoolCore
    _counters: Counters
    _idle: IdleTimers
    _live: set[PoolConnection]
    _retiring: set[PoolConnection]
    _reactor: Any
    _dispatch: Dispatch | None
    persistent: bool
    closeGracePeriod: float
    maxRequestsPerConnection: int | None
    maxConnectionAge: float | None

    def _carryOut(self, actions: list[Action]) -> None:
        raise NotImplementedError

    def _checkClosed(self) -> None:
        raise NotImplementedError

    def _connectionQuiescent(self, connection: PoolConnection) -> None:
        """
        A connection finished its response and may be reused.
        """
        if connection.lifecycle is not Lifecycle.ACTIVE:
            connection.close(self.closeGracePeriod)
            return
        reason = self._notReusable(connection)
        dispatch = self._dispatch
        if dispatch is not None:
            dispatch.call(
                "connectionReleased", connection.key, connection.serial, not reason
            )
        if reason:
            self._carryOut(self._core.release(connection, False, reason))
        else:
            self._carryOut(self._core.release(connection, True))

    def _notReusable(self, connection: PoolConnection) -> str:
        """
        Return why a connection that came back must not be kept, or C{""}.
        """
        if self._core.closed:
            return CloseReason.SHUTDOWN
        if not self.persistent:
            return CloseReason.NOT_REUSABLE
        if connection in self._retiring:
            return CloseReason.SHUTDOWN
        if not connection.reusable:
            return CloseReason.NOT_REUSABLE
        if connection.timeoutError is not None:
            return CloseReason.ERROR
        limit = self.maxRequestsPerConnection
        if limit is not None and connection.requestsServed >= limit:
            return CloseReason.EXPIRED
        serverMax = connection.keepAliveMax
        if serverMax is not None and connection.requestsServed >= serverMax:
            # Keep-Alive: max=M.  Servers differ on whether M counts the
            # whole connection or what is left; reading it as the whole
            # connection never sends one request too many.
            return CloseReason.EXPIRED
        age = self.maxConnectionAge
        if age is not None and self._reactor.seconds() - connection.createdAt >= age:
            return CloseReason.EXPIRED
        return ""

    def _connectionCapacityChanged(self, connection: PoolConnection) -> None:
        """
        A multiplexed connection can carry a different number of requests
        at once now (C{connection.capacity}; C{0}: none any more).
        """
        self._carryOut(self._core.capacityChanged(connection, connection.capacity or 0))

    def _connectionGivenUp(self, connection: PoolConnection, reason: Failure) -> None:
        """
        The connection is closing itself (C{Connection: close}, a parse
        error, unexpected bytes on an idle connection); it calls
        C{loseConnection} itself.
        """
        why = (
            CloseReason.SERVER_CLOSED
            if reason.check(ConnectionDone)
            else CloseReason.ERROR
        )
        self._carryOut(self._core.discard(connection, why))

    def _connectionTimedOut(self, connection: PoolConnection, error: PoolError) -> None:
        """
        A timer of C{connection} fired; the connection aborts itself next.
        """
        self._counters.timedOut += 1
        emit("timeout", connection.key, str(error))
        self._carryOut(self._core.discard(connection, CloseReason.ERROR))

    def _streamTimedOut(self, connection: PoolConnection, error: PoolError) -> None:
        """
        A timer of one request on a multiplexed connection fired; that
        request's stream is reset, the connection goes on.
        """
        self._counters.timedOut += 1
        emit("timeout", connection.key, str(error))

    def _connectionLost(
        self, connection: PoolConnection, previous: Lifecycle, reason: Failure
    ) -> None:
        """
        A connection's transport is gone: its slot is free.
        """
        self._live.discard(connection)
        self._retiring.discard(connection)
        if previous is Lifecycle.IDLE:
            self._idle.stop(connection)
        if previous in (Lifecycle.IDLE, Lifecycle.ACTIVE):
            why = CloseReason.SERVER_CLOSED
            if previous is Lifecycle.ACTIVE:
                why = CloseReason.ERROR
            self._counters.closed[why] += 1
            emit("close", connection.key, why)
            if self._dispatch is not None:
                self._dispatch.call(
                    "connectionClosed", connection.key, connection.serial, why
                )
        self._carryOut(self._core.lost(connection))
        self._checkClosed()


class PoolOwner:
    """
    The pool as its connections see it: the L{ConnectionOwner} handed to
    every connection it builds.  The four reports are the pool's own
    handlers, bound once, so a report costs no extra call.

    @ivar reactor: The pool's reactor.
    @ivar connectionQuiescent: See L{ConnectionOwner.connectionQuiescent}.
    @ivar connectionGivenUp: See L{ConnectionOwner.connectionGivenUp}.
    @ivar connectionTimedOut: See L{ConnectionOwner.connectionTimedOut}.
    @ivar connectionLost: See L{ConnectionOwner.connectionLost}.
    @ivar connectionCapacityChanged: See
        L{ConnectionOwner.connectionCapacityChanged}.
    @ivar streamTimedOut: See L{ConnectionOwner.streamTimedOut}.
    @ivar responseTimeout: The pool's C{responseTimeout}.
    @ivar readTimeout: The pool's C{readTimeout}.
    @ivar lenientHeaders: The pool's C{lenientHeaders}.
    @ivar maxHeaderBytes: The pool's C{maxHeaderBytes}.
    @ivar maxConcurrentStreams: The pool's C{maxConcurrentStreams}.

    The settings are copies the pool keeps up to date whenever one is set
    (a connection reads them on every request: an attribute costs less
    than a property).
    """

    __slots__ = (
        "_pool",
        "reactor",
        "connectionQuiescent",
        "connectionGivenUp",
        "connectionTimedOut",
        "connectionLost",
        "connectionCapacityChanged",
        "streamTimedOut",
        "responseTimeout",
        "readTimeout",
        "lenientHeaders",
        "maxHeaderBytes",
        "maxConcurrentStreams",
    )

    responseTimeout: float | None
    readTimeout: float | None
    lenientHeaders: bool
    maxHeaderBytes: int
    maxConcurrentStreams: int

    def __init__(self, pool: HTTPConnectionPool) -> None:
        """
        @param pool: The pool whose connections this serves.
        """
        self._pool = pool
        self.reactor: Any = pool._reactor
        self.connectionQuiescent = pool._connectionQuiescent
        self.connectionGivenUp = pool._connectionGivenUp
        self.connectionTimedOut = pool._connectionTimedOut
        self.connectionLost = pool._connectionLost
        self.connectionCapacityChanged = pool._connectionCapacityChanged
        self.streamTimedOut = pool._streamTimedOut
        for name in OWNER_SETTINGS:
            setattr(self, name, getattr(pool, name))

    @property
    def observers(self) -> Dispatch | None:
        """
        The pool's trace observers' dispatch, or L{None} if it has none.
        """
        return self._pool._dispatch
