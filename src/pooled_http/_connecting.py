"""
Connecting: opening a new connection for a waiter through its endpoint,
under C{connectTimeout}, and building the connection's protocol with the
pool's connection factory.

The connect timeout covers the endpoint's whole C{connect()} (name
resolution, TCP, whatever a proxying endpoint does before it hands over the
transport) and then, for TLS, the handshake: when the endpoint succeeds
with the handshake still under way, what is left of the timeout is handed
to the connection (L{PoolConnection.awaitHandshake}).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

from twisted.internet.base import DelayedCall
from twisted.internet.defer import fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from ._contract import ConnectionFactory, ConnectionOwner, PoolConnection
from ._core import Waiter
from ._events import emit
from ._timers import activeCalls, cancelCall

__all__ = ["Connector", "ProtocolFactory"]


class ProtocolFactory(Factory):
    """
    The Twisted protocol factory handed to an endpoint: builds one
    connection of one key with the pool's connection factory, and lets the
    pool stamp it (serial, generation) as it is born.
    """

    noisy = False

    #: The L{pooled_http.trace.RequestTrace} of the request whose connect
    #: this is, when the pool has observers (tunnel endpoints report to it).
    trace: Any = None

    def __init__(
        self,
        build: ConnectionFactory,
        owner: ConnectionOwner,
        key: Hashable,
        stamp: Callable[[PoolConnection], None],
    ) -> None:
        self._build = build
        self._owner = owner
        self._key = key
        self._stamp = stamp

    def __repr__(self) -> str:
        return f"ProtocolFactory({self._key!r})"

    def buildProtocol(self, addr: Any) -> Any:
        """
        Build the connection's protocol.
        """
        return self.buildWith(self._build)

    def buildWith(self, build: ConnectionFactory) -> Any:
        """
        Build the connection's protocol with another connection factory
        than the pool's (an endpoint that negotiated HTTP/2 by ALPN builds
        an HTTP/2 connection this way).

        @param build: The connection factory.
        @return: The connection, stamped.
        """
        connection = build(self._owner, self._key)
        self._stamp(connection)
        return connection


class _ConnectSettings(Protocol):
    connectTimeout: float | None


class Connector:
    """
    Opens connections for waiters.

    The outcome of each attempt goes to one of two callbacks: C{connected(
    waiter, connection)} or C{failed(waiter, failure, timedOut)}.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        settings: _ConnectSettings,
        factoryFor: Callable[[Hashable], Factory],
        connected: Callable[[Waiter, PoolConnection], None],
        failed: Callable[[Waiter, Failure, bool], None],
    ) -> None:
        """
        @param reactor: Where the connect timer is scheduled.
        @param settings: Where C{connectTimeout} is read (the pool).
        @param factoryFor: Makes the protocol factory for a key.
        @param connected: Called when an attempt succeeds.
        @param failed: Called when an attempt fails, is cancelled or times
            out (the last argument says whether it timed out).
        """
        self._reactor: Any = reactor
        self._settings = settings
        self._factoryFor = factoryFor
        self._connected = connected
        self._failed = failed

    def connect(self, waiter: Waiter) -> None:
        """
        Start opening a connection for C{waiter}, whose endpoint is
        C{waiter.endpoint}.
        """
        try:
            factory: Any = self._factoryFor(waiter.key)
            if waiter.trace is not None:
                factory.trace = waiter.trace
            d = waiter.endpoint.connect(factory)
        except BaseException:
            d = fail(Failure())
        waiter.connecting = d
        timeout = self._settings.connectTimeout
        if timeout is not None:
            waiter.connectTimer = self._reactor.callLater(
                timeout, self._timedOut, waiter, timeout
            )
        d.addCallbacks(self._done, self._notDone, (waiter,), None, (waiter,))

    def cancel(self, waiter: Waiter) -> None:
        """
        Cancel C{waiter}'s attempt if it is under way.
        """
        if waiter.connecting is not None:
            waiter.connecting.cancel()

    def pendingCalls(self, waiter: Waiter) -> list[DelayedCall]:
        """
        The connect timer of C{waiter}'s attempt, if it is still to run.
        """
        return activeCalls((waiter.connectTimer,))

    def _timedOut(self, waiter: Waiter, timeout: float) -> None:
        waiter.connectTimer = None
        waiter.timedOut = True
        emit("timeout", waiter.key, f"connect took longer than {timeout:g} s")
        self.cancel(waiter)

    def _done(self, connection: PoolConnection, waiter: Waiter) -> None:
        waiter.connecting = None
        timer, waiter.connectTimer = waiter.connectTimer, None
        if timer is not None and timer.active():
            remaining = timer.getTime() - self._reactor.seconds()
            timer.cancel()
            # The connect phase ends with the TLS handshake.
            connection.awaitHandshake(remaining, self._settings.connectTimeout or 0)
        self._connected(waiter, connection)

    def _notDone(self, failure: Failure, waiter: Waiter) -> None:
        waiter.connecting = None
        timer, waiter.connectTimer = waiter.connectTimer, None
        cancelCall(timer)
        self._failed(waiter, failure, waiter.timedOut)
