"""
What both connection classes (L{pooled_http._http11.HTTP11Connection} on
llhttp and L{pooled_http._twistedproto.TwistedHTTP11Connection} on
Twisted's protocol) do the same way: the pool's metadata, closing and
aborting the transport, the grace and TLS-handshake timers, the watchers of
L{ConnectionBase.whenLost}, and the server's C{Keep-Alive} hints.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import ISSLTransport
from twisted.python.failure import Failure

from ._lifecycle import Lifecycle, LifecycleMixin
from ._timers import cancelCall
from .errors import ConnectTimeoutError, PoolError, ResponseTimeoutError

if TYPE_CHECKING:
    from ._contract import ConnectionOwner

__all__ = ["ConnectionBase"]


class ConnectionBase(LifecycleMixin):
    """
    The part of a pooled connection that does not depend on how responses
    are parsed.

    @ivar owner: The L{ConnectionOwner} it reports to.
    @ivar key: The pool key it belongs to.
    @ivar createdAt: When it was built (reactor seconds).
    @ivar requestsServed: Requests sent on it.
    @ivar serial: Set by the pool: grows with every connection it opens.
    @ivar keepAliveTimeout: The server's C{Keep-Alive: timeout=N}, if sent.
    @ivar keepAliveMax: The server's C{Keep-Alive: max=M}, if sent: no more
        than M requests are sent on the connection.
    @ivar reusable: C{False} once the server said it will not serve another
        request (an HTTP/1.0 response without keep-alive).
    @ivar timeoutError: The pool error that ended it (a timeout), reported
        to the request in place of Twisted's generic one.
    @ivar handshakeDone: Whether the TLS handshake has completed.
    @ivar trace: The L{pooled_http.trace.RequestTrace} of the request in
        flight when the pool has observers, else L{None}.
    @ivar endedHere: Whether this side closed or dropped the transport (a
        body that ends with the connection is then cut short, not
        complete).
    """

    if TYPE_CHECKING:
        transport: Any

    #: One request at a time (see L{pooled_http._contract.PoolConnection}).
    capacity: int | None = None

    def _initConnection(self, owner: ConnectionOwner, key: Hashable) -> None:
        """
        Set what every connection starts with.
        """
        self.owner = owner
        self.key = key
        self.lifecycle = Lifecycle.ACTIVE
        self.createdAt: float = owner.reactor.seconds()
        self.requestsServed = 0
        self.serial = 0
        self.keepAliveTimeout: float | None = None
        self.keepAliveMax: int | None = None
        self.reusable = True
        self.timeoutError: PoolError | None = None
        self.abortedByPool = False
        self.handshakeDone = False
        self.trace: Any = None
        self._handshakeTimer: DelayedCall | None = None
        self._graceTimer: DelayedCall | None = None
        self._responseTimer: DelayedCall | None = None
        self._readTimer: DelayedCall | None = None
        self._lostWatchers: list[Deferred[None]] | None = None
        self._finishing = False
        self._pendingHandOff: Callable[[], object] | None = None
        self.endedHere = False

    # The contract

    @property
    def stale(self) -> bool:
        """
        Whether the transport can no longer carry a request although
        C{connectionLost} has not arrived: it is disconnecting, or its TLS
        layer has seen the peer's C{close_notify}.
        """
        transport: Any = self.transport
        return (
            transport is None
            or bool(getattr(transport, "disconnecting", False))
            or bool(getattr(transport, "disconnected", False))
            or bool(getattr(transport, "_lostTLSConnection", False))
        )

    def pendingCalls(self) -> list[DelayedCall]:
        """
        The connection's own timers that are still to run (the pool lists
        them when it reports what is pending).
        """
        calls = (
            self._handshakeTimer,
            self._responseTimer,
            self._readTimer,
            self._graceTimer,
        )
        return [call for call in calls if call is not None and call.active()]

    def handOff(self, give: Callable[[], object]) -> None:
        """
        Run C{give}, which hands this connection to a waiting request, as
        soon as the connection can take a new request: at once, or after
        the response being finished is done with.
        """
        if self._finishing:
            self._pendingHandOff = give
        else:
            give()

    def _runHandOff(self) -> None:
        """
        Run the hand-off that waited for the response to be finished with.
        """
        pending, self._pendingHandOff = self._pendingHandOff, None
        if pending is not None:
            pending()

    def whenLost(self) -> Deferred[None]:
        """
        Return a Deferred that fires once the transport is gone.
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return succeed(None)
        d: Deferred[None] = Deferred()
        if self._lostWatchers is None:
            self._lostWatchers = [d]
        else:
            self._lostWatchers.append(d)
        return d

    def close(self, gracePeriod: float) -> None:
        """
        Close the transport politely; abort it if it has not gone away after
        C{gracePeriod} seconds (a peer that never finishes closing must not
        hang the pool).
        """
        if self.lifecycle is Lifecycle.CLOSED:
            return
        if self.lifecycle is not Lifecycle.CLOSING:
            self.moveTo(Lifecycle.CLOSING)
        self._stopRequestTimers()
        transport: Any = self.transport
        if transport is None:
            return
        self.endedHere = True
        transport.loseConnection()
        if self._graceTimer is None and self.lifecycle is Lifecycle.CLOSING:
            reactor: Any = self.owner.reactor
            self._graceTimer = reactor.callLater(gracePeriod, self.abortTransport)

    def abortTransport(self) -> None:
        """
        Drop the transport at once.
        """
        transport: Any = self.transport
        if self.lifecycle is Lifecycle.CLOSED or transport is None:
            return
        self.endedHere = True
        abort = getattr(transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:  # pragma: no cover - every TCP/TLS transport has it
            transport.loseConnection()

    def _connectionGone(self) -> None:
        """
        The transport is gone: stop the handshake and grace timers.
        """
        cancelCall(self._handshakeTimer)
        cancelCall(self._graceTimer)
        self._handshakeTimer = self._graceTimer = None

    def _fireLost(self) -> None:
        """
        Fire the L{whenLost} watchers.
        """
        watchers, self._lostWatchers = self._lostWatchers, None
        for watcher in watchers or ():
            watcher.callback(None)

    # Timers

    def _timedOut(self, error: PoolError) -> None:
        """
        A timer fired: remember why (the request fails with C{error}), tell
        the owner, and abort.
        """
        self.timeoutError = error
        this: Any = self
        self.owner.connectionTimedOut(this, error)
        self.abortTransport()

    def _stopRequestTimers(self) -> None:
        """
        Stop the timers of the request in flight.
        """
        cancelCall(self._responseTimer)
        cancelCall(self._readTimer)
        self._responseTimer = self._readTimer = None

    def _responseTimedOut(self, timeout: float) -> None:
        self._responseTimer = None
        self._timedOut(ResponseTimeoutError(self.key, timeout))

    # TLS

    def awaitHandshake(self, remaining: float, timeout: float) -> None:
        """
        The transport is connected; if it is TLS and the handshake is still
        going, the connect timeout keeps running until it completes.

        @param remaining: Seconds left of the connect timeout.
        @param timeout: The whole connect timeout, for the error message.
        """
        if self.handshakeDone or not ISSLTransport.providedBy(self.transport):
            return
        reactor: Any = self.owner.reactor
        self._handshakeTimer = reactor.callLater(
            max(0.0, remaining), self._handshakeTimedOut, timeout
        )

    def _handshakeTimedOut(self, timeout: float) -> None:
        self._handshakeTimer = None
        self._timedOut(ConnectTimeoutError(self.key, timeout))

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake finished: the connect phase is over.
        """
        self.handshakeDone = True
        cancelCall(self._handshakeTimer)
        self._handshakeTimer = None
        dispatch = getattr(self.owner, "observers", None)
        if dispatch is not None:
            dispatch.call("tlsHandshakeDone", self.key, self.serial)

    def _traceLost(self, reason: Failure) -> None:
        """
        The transport is gone: an attempt still traced on it failed.
        """
        trace, self.trace = self.trace, None
        if trace is not None and not trace.finished:
            error = self.timeoutError
            trace.failed(Failure(error) if error is not None else reason)

    # The server's hints

    def _noteKeepAlive(self, values: Iterable[bytes] | None) -> None:
        """
        Remember the server's C{Keep-Alive: timeout=N, max=M}.
        """
        for value in values or ():
            for part in value.split(b","):
                name, _, number = part.strip().partition(b"=")
                try:
                    parsed = int(number.strip())
                except ValueError:
                    continue
                if parsed < 0:
                    continue
                name = name.strip().lower()
                if name == b"timeout":
                    self.keepAliveTimeout = float(parsed)
                elif name == b"max":
                    self.keepAliveMax = parsed
