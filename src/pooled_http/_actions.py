"""
Carrying out the core's decisions: the part of L{HTTPConnectionPool} that
hands connections to waiting requests, parks, closes and opens them, as
the L{pooled_http._core.PoolCore} decides, and hears how an opening went.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from ._connecting import Connector, ProtocolFactory
from ._contract import PoolConnection
from ._core import Action, ActionKind, PoolCore, Waiter
from ._counters import Counters
from ._events import emit
from ._idle import IdleTimers
from ._lease import Lease
from ._lifecycle import Lifecycle
from ._timers import cancelCall
from .errors import ConnectTimeoutError, PoolClosedError
from .stats import CloseReason
from .trace import Dispatch, RequestTrace, handshakeStarted

if TYPE_CHECKING:
    from ._contract import ConnectionFactory
    from ._reports import PoolOwner

__all__ = ["CoreActions"]


class CoreActions:
    """
    The part of L{HTTPConnectionPool} that carries out what its core
    decides.
    """

    _core: PoolCore
    _counters: Counters
    _idle: IdleTimers
    _connector: Connector
    _live: set[PoolConnection]
    _reactor: Any
    _dispatch: Dispatch | None
    _owner: PoolOwner
    _serial: int
    _handedTo: Callable[[Waiter, Deferred[Any], Lease], None]
    closeGracePeriod: float
    connectTimeout: float | None
    connectionFactory: ConnectionFactory
    logReuse: bool

    if TYPE_CHECKING:
        # The pool's own, and its connection reports' (later in its bases:
        # defining them here would hide those).

        def _lend(
            self,
            connection: PoolConnection,
            endpoint: Any,
            reused: bool,
            trace: RequestTrace | None,
        ) -> Lease: ...

        def _connectionQuiescent(self, connection: PoolConnection) -> None: ...

    # Carrying out the core's decisions

    def _carryOut(self, actions: list[Action]) -> None:
        for action in actions:
            kind = action.kind
            if kind is ActionKind.HAND:
                self._hand(action.waiter, action.connection, action.reused)
            elif kind is ActionKind.PARK:
                self._park(action.connection)
            elif kind is ActionKind.CLOSE:
                self._close(action.connection, action.reason)
            elif kind is ActionKind.CONNECT:
                assert action.waiter is not None
                self._connect(action.waiter)
            elif kind is ActionKind.FAIL:
                waiter = action.waiter
                assert waiter is not None
                cancelCall(waiter.timer)
                waiter.timer = None
                if not waiter.deferred.called:
                    if waiter.trace is not None:
                        waiter.trace.failed(Failure(PoolClosedError(waiter.key)))
                    waiter.deferred.errback(Failure(PoolClosedError(waiter.key)))

    def _hand(self, waiter: Any, connection: PoolConnection, reused: bool) -> None:
        if waiter.timer is not None:
            cancelCall(waiter.timer)
            waiter.timer = None
        # Counters.waited, written out: this runs for every queued request.
        counters = self._counters
        waited = self._reactor.seconds() - waiter.enqueuedAt
        counters.waits += 1
        counters.waitSum += waited
        if waited > counters.waitMax:
            counters.waitMax = waited
        if reused and self.logReuse:
            emit("reuse", connection.key, "handed to a waiting request")
        lease = self._lend(connection, waiter.endpoint, reused, waiter.trace)
        # The waiter lets go of its Deferred (whose canceller refers to the
        # waiter): nothing of a served request is left in a reference cycle
        # for the garbage collector.
        d, waiter.deferred = waiter.deferred, None
        connection.handOff(partial(self._handedTo, waiter, d, lease))

    def _handed(self, waiter: Waiter, d: Deferred[Any], lease: Lease) -> None:
        """
        A connection handed to C{waiter} can take its request now: send the
        request the waiter carries, its response going to C{d}; or give
        the caller the lease.  A caller that cancelled in between gets
        nothing, and the connection comes back unused.
        """
        if d.called:
            self._connectionQuiescent(lease.connection)
            return
        request, waiter.request = waiter.request, None
        if request is None:
            d.callback(lease)
            return
        started = waiter.started = lease.request(request)
        started.chainDeferred(d)

    def _park(self, connection: PoolConnection) -> None:
        """
        Keep a connection idle until its idle timeout.
        """
        connection.moveTo(Lifecycle.IDLE)
        if not self._idle.start(connection):
            self._carryOut(self._core.discard(connection, CloseReason.EXPIRED))

    def _idleExpired(self, connection: PoolConnection, reason: str) -> None:
        self._carryOut(self._core.discard(connection, reason))

    def _close(self, connection: PoolConnection, reason: str) -> None:
        self._idle.stop(connection)
        if connection.lifecycle is Lifecycle.CLOSED:
            # Already gone: only the books need to know.
            self._carryOut(self._core.lost(connection))
            return
        if connection.lifecycle is Lifecycle.CLOSING:
            return
        self._counters.closed[reason] = self._counters.closed.get(reason, 0) + 1
        emit(
            "evict" if reason == CloseReason.EVICTED else "close",
            connection.key,
            reason,
        )
        if self._dispatch is not None:
            self._dispatch.call(
                "connectionClosed", connection.key, connection.serial, reason
            )
        connection.close(self.closeGracePeriod)

    # Connecting

    def _connect(self, waiter: Waiter) -> None:
        if waiter.cancelled:
            # Cancelled after the core chose it, before its connect began.
            self._carryOut(self._core.connectFailed(waiter))
            return
        if waiter.trace is not None:
            waiter.trace.connectStarted()
        self._connector.connect(waiter)

    def _factoryFor(self, key: Hashable) -> Factory:
        return ProtocolFactory(self.connectionFactory, self._owner, key, self._stamp)

    def _stamp(self, connection: PoolConnection) -> None:
        self._serial += 1
        connection.serial = self._serial

    def _connected(self, waiter: Waiter, connection: PoolConnection) -> None:
        emit("open", waiter.key, "new connection")
        if self._dispatch is not None:
            if waiter.trace is not None:
                waiter.trace.connectDone(connection.serial)
            handshakeStarted(self._dispatch, connection)
        self._live.add(connection)
        self._carryOut(
            self._core.connected(
                waiter, connection, getattr(connection, "capacity", None)
            )
        )

    def _connectFailed(self, waiter: Waiter, failure: Failure, timedOut: bool) -> None:
        self._counters.failed += 1
        if timedOut:
            self._counters.timedOut += 1
            failure = Failure(ConnectTimeoutError(waiter.key, self.connectTimeout or 0))
        elif self._core.closed and failure.check(
            CancelledError, ConnectingCancelledError
        ):
            failure = Failure(PoolClosedError(waiter.key))
        trace = waiter.trace
        if trace is not None:
            trace.connectFailed(failure)
        self._carryOut(self._core.connectFailed(waiter))
        if not waiter.deferred.called and not waiter.cancelled:
            if trace is not None:
                trace.failed(failure)
            waiter.deferred.errback(failure)
