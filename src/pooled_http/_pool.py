"""
L{HTTPConnectionPool}: Twisted's pool surface over L{pooled_http._core}'s
rules.  This layer owns the Deferreds, endpoints, timers and transports; it
asks the core what to do and carries the answers out.

The concerns around it have their own modules: carrying out the core's
answers (L{pooled_http._actions}), idle timeouts
(L{pooled_http._idle}), opening connections (L{pooled_http._connecting}),
the per-request lease with its retries (L{pooled_http._lease}), log events
(L{pooled_http._events}).  Connections are built by an injectable factory
and talk back only through the L{ConnectionOwner} the pool hands them
(L{pooled_http._contract}).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    fail,
    succeed,
)
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.python.failure import Failure

from ._actions import CoreActions
from ._connecting import Connector
from ._contract import ConnectionFactory, PoolConnection
from ._core import PoolCore, Waiter, WaiterState
from ._counters import Counters, snapshot, summary
from ._endpointcache import CONNECT_TIMEOUT
from ._events import emit
from ._idle import IdleTimers
from ._lease import Lease
from ._lifecycle import Lifecycle
from ._protocols import connectionFactoryFor
from ._reports import OWNER_SETTINGS, ConnectionReports, PoolOwner
from ._retry import RetryPolicy
from ._settings import DEFAULT, Setting, flag, settings
from ._shutdown import Shutdown
from ._timers import activeCalls, cancelCall
from .errors import (
    PoolClosedError,
    PoolTimeoutError,
)
from .stats import PoolStats
from .trace import Dispatch, Observable, RequestTrace

__all__ = ["HTTPConnectionPool", "DEFAULT"]

_SETTINGS = settings(
    Setting("maxPersistentPerHost", integer=True),
    Setting("maxConnectionsPerHost", integer=True),
    Setting("maxConnections", integer=True),
    Setting("cachedConnectionTimeout"),
    Setting("poolTimeout", optional=True),
    CONNECT_TIMEOUT,
    Setting("responseTimeout", optional=True),
    Setting("readTimeout", optional=True),
    Setting("maxConnectionAge", optional=True),
    Setting("maxRequestsPerConnection", integer=True, optional=True),
    Setting("closeGracePeriod"),
    Setting("maxHeaderBytes", integer=True),
    Setting("maxConcurrentStreams", integer=True),
)

# pooled_http's own switches: True or False, nothing read by its truth
# (persistent and retryAutomatically are Twisted's, read by their truth as
# Twisted's pool reads them).
_FLAGS = frozenset({"lenientHeaders", "logReuse"})

_LIMITS = frozenset({"maxConnectionsPerHost", "maxConnections", "maxPersistentPerHost"})


class HTTPConnectionPool(CoreActions, Shutdown, ConnectionReports, Observable):
    """
    A pool of persistent HTTP connections with hard limits, a fair queue,
    timeouts on every phase and clean shutdown; a drop-in replacement for
    L{twisted.web.client.HTTPConnectionPool}.

    Pass it wherever Twisted's pool goes: C{Agent(reactor, pool=pool)},
    C{treq.get(url, pool=pool)}.  Connections are kept per key (C{Agent}
    uses C{(scheme, host, port)}), handed out one request at a time, and
    taken back when the response has been read.

    At most C{maxConnectionsPerHost} connections are open per key and
    C{maxConnections} over all keys, counting those being opened, in use,
    idle and still closing.  When a limit is reached, C{getConnection} waits: first come first
    served within a key, keys served in turn when the global limit blocks,
    and an idle connection of another key is closed to make room rather
    than left until it times out.

    Every setting is a keyword argument and a settable attribute; a value
    that is zero, negative or not a number raises L{ValueError} naming it.

    @ivar persistent: Whether connections are kept for reuse.
    Defaults are the class attributes of the same name (Twisted's pool
    keeps its defaults the same way); a keyword argument left at
    L{DEFAULT} takes them.

    @ivar maxPersistentPerHost: Idle connections kept per key.  Until it
        is set it follows C{maxConnectionsPerHost}, so every connection a
        key may open may be kept.  Setting it above C{maxConnectionsPerHost}
        raises the per-key cap with it, so code written for Twisted's pool
        keeps its parallelism.
    @ivar maxConnectionsPerHost: Connections per key.
    @ivar maxConnections: Connections over all keys.
    @ivar cachedConnectionTimeout: Seconds an idle connection is kept.
    @ivar retryAutomatically: Whether failed requests are retried at all.
    @ivar retryPolicy: The L{RetryPolicy} deciding which are.
    @ivar poolTimeout: Seconds C{getConnection} may wait for a slot, or
        L{None} to wait as long as it takes.
    @ivar connectTimeout: Seconds to open a connection, TLS handshake
        included, or L{None}.
    @ivar responseTimeout: Seconds from sending a request to its response
        headers, or L{None}.
    @ivar readTimeout: Seconds without body bytes while a response is being
        delivered, or L{None}.
    @ivar maxConnectionAge: Seconds after which a connection is closed when
        it next goes idle, or L{None}.
    @ivar maxRequestsPerConnection: Requests after which a connection is
        closed, or L{None}.
    @ivar closeGracePeriod: Seconds a closing connection may take before it
        is aborted.
    @ivar maxHeaderBytes: Bytes a response's status line and headers may
        take; a longer head fails the request with
        L{ResponseHeadersTooLargeError} (inside Twisted's C{ResponseFailed}).
    @ivar maxConcurrentStreams: Requests one HTTP/2 connection carries at
        once, at most (the server's C{SETTINGS_MAX_CONCURRENT_STREAMS} may
        allow fewer); read when a connection learns the server's settings.
    @ivar lenientHeaders: Skip response header lines without a colon, as
        browsers (and Scrapy) do, instead of failing the response.  Only
        the llhttp connection (C{protocol="httptools"}) reads it; Twisted's
        protocol fails such a response either way.
    @ivar protocol: The HTTP/1.1 implementation in use: C{"httptools"},
        C{"twisted"}, or C{"custom"} when a C{connectionFactory} was given.
    @ivar connectionFactory: Builds each new connection:
        C{connectionFactory(owner, key)} returns a protocol meeting
        L{pooled_http._contract.PoolConnection}.
    """

    # Defaults; every assignment is checked by __setattr__.
    persistent: bool = True
    maxPersistentPerHost: int = 8
    maxConnectionsPerHost: int = 8
    maxConnections: int = 256
    cachedConnectionTimeout: float = 240.0
    retryAutomatically: bool = True
    poolTimeout: float | None = None
    connectTimeout: float | None = 30.0
    responseTimeout: float | None = None
    readTimeout: float | None = None
    maxConnectionAge: float | None = None
    maxRequestsPerConnection: int | None = None
    closeGracePeriod: float = 2.0
    maxHeaderBytes: int = 65536
    maxConcurrentStreams: int = 100
    lenientHeaders: bool = False

    #: Whether to log a C{pooled_http.reuse} event every time an idle
    #: connection is handed out: one event per request, off by default
    #: because Twisted's log machinery costs as much as the hand-out itself.
    logReuse = False

    def __init__(
        self,
        reactor: IReactorTime,
        persistent: bool = True,
        *,
        maxPersistentPerHost: int = DEFAULT,
        maxConnectionsPerHost: int = DEFAULT,
        maxConnections: int = DEFAULT,
        cachedConnectionTimeout: float = DEFAULT,
        retryAutomatically: bool = DEFAULT,
        retryPolicy: RetryPolicy | None = None,
        poolTimeout: float | None = DEFAULT,
        connectTimeout: float | None = DEFAULT,
        responseTimeout: float | None = DEFAULT,
        readTimeout: float | None = DEFAULT,
        maxConnectionAge: float | None = DEFAULT,
        maxRequestsPerConnection: int | None = DEFAULT,
        closeGracePeriod: float = DEFAULT,
        maxHeaderBytes: int = DEFAULT,
        maxConcurrentStreams: int = DEFAULT,
        lenientHeaders: bool = DEFAULT,
        protocol: str = "auto",
        connectionFactory: ConnectionFactory | None = None,
    ) -> None:
        """
        @param reactor: The reactor every timer and connection uses.
        @param persistent: Whether connections are kept for reuse.
        @param protocol: Which HTTP/1.1 implementation connections use:
            C{"auto"} (the default: our own on llhttp where httptools
            imports, else Twisted's), C{"httptools"} or C{"twisted"}.
        @param connectionFactory: Builds connections (see the class
            docstring); given, it replaces C{protocol}'s choice.
        @param retryPolicy: The L{RetryPolicy}; L{None} for the default.
        @raise ValueError: Naming the setting, for a bad limit or timeout.
        @raise TypeError: For a C{retryPolicy} or C{connectionFactory} of
            the wrong type.
        @raise ImportError: For C{protocol="httptools"} where httptools does
            not import.
        @note: Every other keyword argument sets the attribute of the same
            name.
        """
        self._reactor: Any = reactor
        self._core = PoolCore(8, 256, 8)
        self._counters = Counters()
        # Bound once (not per request): every waiter's Deferred calls the
        # first when cancelled, every lease asks the second for a retry, and
        # every hand-off to a waiting request ends in the third.
        self._waiterCanceller = self._cancelWaiter
        self._retrier = self._retry
        self._handedTo = self._handed
        self._serial = 0
        self._live: set[PoolConnection] = set()
        # Connections in use that are closed when they come back.
        self._retiring: set[PoolConnection] = set()
        self._closeWatchers: list[Deferred[None]] = []
        self._closeTimer: DelayedCall | None = None
        self._stragglerTimers: set[DelayedCall] = set()
        # Set by the caller: as an argument, or as a subclass's class
        # attribute (as code written for Twisted's pool sets its defaults).
        self._persistentExplicit = maxPersistentPerHost is not DEFAULT or any(
            "maxPersistentPerHost" in vars(cls)
            for cls in type(self).__mro__
            if cls is not HTTPConnectionPool and issubclass(cls, HTTPConnectionPool)
        )
        self._ready = False
        # The trace observers' dispatch, None while there are none.
        self._dispatch: Dispatch | None = None
        self.retryPolicy = retryPolicy if retryPolicy is not None else RetryPolicy()
        if connectionFactory is None:
            self.protocol, connectionFactory = connectionFactoryFor(protocol)
        elif not callable(connectionFactory):
            raise TypeError(
                "connectionFactory must be a callable (owner, key) -> connection, "
                f"not {connectionFactory!r}"
            )
        else:
            self.protocol = "custom"
        self.connectionFactory = connectionFactory
        self.persistent = persistent
        given = {
            "maxPersistentPerHost": maxPersistentPerHost,
            "maxConnectionsPerHost": maxConnectionsPerHost,
            "maxConnections": maxConnections,
            "cachedConnectionTimeout": cachedConnectionTimeout,
            "retryAutomatically": retryAutomatically,
            "poolTimeout": poolTimeout,
            "connectTimeout": connectTimeout,
            "responseTimeout": responseTimeout,
            "readTimeout": readTimeout,
            "maxConnectionAge": maxConnectionAge,
            "maxRequestsPerConnection": maxRequestsPerConnection,
            "closeGracePeriod": closeGracePeriod,
            "maxHeaderBytes": maxHeaderBytes,
            "maxConcurrentStreams": maxConcurrentStreams,
            "lenientHeaders": lenientHeaders,
        }
        for name, value in given.items():
            if value is not DEFAULT:
                setattr(self, name, value)
        self._owner = PoolOwner(self)
        self._idle = IdleTimers(reactor, self, self._idleExpired)
        self._connector = Connector(
            reactor, self, self._factoryFor, self._connected, self._connectFailed
        )
        self._ready = True
        self._applyLimits()

    # Settings

    def __setattr__(self, name: str, value: Any) -> None:
        rule = _SETTINGS.get(name)
        if rule is None:
            if name in _FLAGS:
                flag(name, value)
            elif name == "retryPolicy" and not isinstance(value, RetryPolicy):
                raise TypeError(f"retryPolicy must be a RetryPolicy, not {value!r}")
            object.__setattr__(self, name, value)
        else:
            object.__setattr__(self, name, rule.validate(value))
        if name in OWNER_SETTINGS and self._ready:
            # Connections read it from their owner, on every request.
            setattr(self._owner, name, getattr(self, name))
        if rule is None:
            return
        if name == "maxPersistentPerHost":
            # Code written for Twisted's pool raises maxPersistentPerHost to
            # get more parallel connections: the per-key cap follows it.
            self._persistentExplicit = True
        if not self._ready:
            return
        if name == "cachedConnectionTimeout":
            self._idle.timeoutChanged()
        elif name in _LIMITS:
            self._applyLimits()
        elif name == "maxConcurrentStreams":
            # Multiplexed connections already open follow it.
            for connection in list(self._live):
                follow = getattr(connection, "ownerSettingsChanged", None)
                if follow is not None:
                    follow()

    def _applyLimits(self) -> None:
        core = self._core
        perHost = self.maxConnectionsPerHost
        if self._persistentExplicit:
            perHost = max(perHost, self.maxPersistentPerHost)
        else:
            # Not set: every connection a key may open may be kept, so a
            # pool whose maxConnectionsPerHost was raised for bursts does
            # not close most of them after each burst and open them again.
            object.__setattr__(self, "maxPersistentPerHost", perHost)
        core.perHostLimit = perHost
        core.globalLimit = self.maxConnections
        core.maxIdlePerHost = self.maxPersistentPerHost
        self._carryOut(core.limitsChanged())

    # Twisted's surface

    def getConnection(
        self, key: Hashable, endpoint: IStreamClientEndpoint
    ) -> Deferred[Any]:
        """
        Supply a connection, newly opened or reused, for one HTTP request.

        The connection stays out of the pool until its response has been
        read; then it comes back by itself.  If a limit is reached the
        returned Deferred waits for a free slot (at most C{poolTimeout}).

        @param key: Identifies connections that can be used interchangeably.
        @param endpoint: Opens a new connection when one is needed.
        @return: A Deferred firing with an object offering C{request()} and
            C{abort()} like L{twisted.web._newclient.HTTP11ClientProtocol}; failing with
            L{PoolClosedError}, L{PoolTimeoutError}, L{ConnectTimeoutError}
            or the endpoint's own connection error.
        @raise TypeError: If C{key} is not hashable or C{endpoint} is not an
            endpoint.
        """
        return self._send(key, endpoint, None)

    def _send(
        self, key: Hashable, endpoint: IStreamClientEndpoint, request: Any
    ) -> Deferred[Any]:
        """
        Send C{request} on a connection of C{key}: what L{getConnection}
        followed by the lease's C{request()} does, with one Deferred for
        the whole (L{PooledAgent} sends this way).  Cancelling it while the
        request waits takes it out of the queue; once sent, cancels the
        request.  With C{request} L{None}, this is L{getConnection}.

        @return: The Deferred of the response, or of the lease.
        """
        dispatch = self._dispatch
        trace = None if dispatch is None else RequestTrace(dispatch, key)
        if not self._core.closed:
            lease = self._takeLease(key, endpoint, trace)
            if lease is not None:
                if request is None:
                    return succeed(lease)
                return lease.request(request)
        return self._wait(key, endpoint, 0, trace, request)

    # Introspection

    def stats(self) -> PoolStats:
        """
        Return a snapshot of the pool: current counts in total and per key,
        and counters since the pool was created.
        """
        return snapshot(self._core, self._counters)

    def __repr__(self) -> str:
        return summary(self._core, self._counters)

    def _pendingCalls(self) -> list[DelayedCall]:
        """
        Every timer the pool and its connections still have to run: pool
        timeouts of waiters, connect timers, idle timers, shutdown timers
        and each live connection's own (for C{pooled_http.testing}).
        """
        calls = self._idle.pendingCalls()
        for bucket in self._core.buckets.values():
            calls.extend(activeCalls(waiter.timer for waiter in bucket.waiters))
            for waiter in bucket.connecting:
                calls.extend(self._connector.pendingCalls(waiter))
        for connection in self._live:
            own = getattr(connection, "pendingCalls", None)
            if own is not None:
                calls.extend(own())
        calls.extend(activeCalls([self._closeTimer, *self._stragglerTimers]))
        return calls

    # Handing out

    def _wait(
        self,
        key: Hashable,
        endpoint: IStreamClientEndpoint,
        minSerial: int,
        trace: RequestTrace | None,
        request: Any = None,
    ) -> Deferred[Any]:
        """
        The slow path of L{getConnection} (after L{_takeLease} found no idle
        connection to hand out at once): queue a waiter, which the core
        serves when a connection comes back or may be opened.

        @param minSerial: Only a connection whose serial is at least this
            will do (a retry's).
        @param request: The request to send once a connection is handed
            over (L{_send}), or L{None} to hand over the lease.
        @return: A Deferred of a lease, or of C{request}'s response.
        """
        core = self._core
        if core.closed:
            if trace is not None:
                trace.failed(Failure(PoolClosedError(key)))
            return fail(PoolClosedError(key))
        if not callable(getattr(endpoint, "connect", None)):
            raise TypeError(
                f"endpoint for pool key {key!r} must provide IStreamClientEndpoint, "
                f"not {endpoint!r}"
            )
        waiter = Waiter(key, minSerial)
        waiter.mayMultiplex = getattr(endpoint, "mayMultiplex", False) is True
        waiter.endpoint = endpoint
        waiter.enqueuedAt = self._reactor.seconds()
        waiter.canceller = self._waiterCanceller
        waiter.deferred = Deferred(waiter.cancel)
        d: Deferred[Any] = waiter.deferred
        waiter.trace = trace
        waiter.request = request
        actions = core.request(waiter)
        if trace is not None and waiter.state is WaiterState.WAITING:
            trace.queued()
        if actions:
            self._carryOut(actions)
        if waiter.state is WaiterState.WAITING and self.poolTimeout is not None:
            waiter.timer = self._reactor.callLater(
                self.poolTimeout, self._waiterTimedOut, waiter
            )
        return d

    def _takeLease(
        self,
        key: Hashable,
        endpoint: IStreamClientEndpoint,
        trace: RequestTrace | None,
    ) -> Lease | None:
        """
        The fast path of L{getConnection}: a lease on an idle connection of
        C{key} if one may be handed out now, else L{None} (also when the
        pool is closed).  L{_send} asks here first too.

        @raise TypeError: If C{key} is not hashable.
        """
        try:
            connection = self._core.takeIdle(key)
        except TypeError:
            raise TypeError(f"pool key {key!r} is not hashable") from None
        if connection is None:
            return None
        self._counters.waits += 1
        if self.logReuse:
            emit("reuse", key, "idle connection handed out")
        return self._lend(connection, endpoint, True, trace)

    def _lend(
        self,
        connection: PoolConnection,
        endpoint: IStreamClientEndpoint,
        reused: bool,
        trace: RequestTrace | None,
    ) -> Lease:
        if connection.lifecycle is Lifecycle.IDLE:
            connection.moveTo(Lifecycle.ACTIVE)
            self._idle.stop(connection)
        policy = self.retryPolicy if self.retryAutomatically else None
        if trace is not None:
            trace.acquired(connection.serial, reused)
        return Lease(connection, endpoint, reused, policy, self._retrier, trace)

    def _retry(
        self,
        key: Hashable,
        endpoint: IStreamClientEndpoint,
        reason: Failure,
        trace: RequestTrace | None,
    ) -> Deferred[Lease] | None:
        """
        A lease's request failed and its policy allows a retry: count it
        and ask for a connection opened after the failure (like Twisted:
        the other idle ones may have been timed out by the server as well);
        a stream the server refused while busy with others may go on any
        connection (the one that refused it goes on, holding new streams
        until others finish).
        """
        if self._core.closed:
            return None
        self._counters.retried += 1
        emit("retry", key, reason.getErrorMessage())
        retry = None if trace is None else trace.retried(reason)
        refused = getattr(reason.value, "refused", False) is True
        return self._wait(key, endpoint, 0 if refused else self._serial + 1, retry)

    def _cancelWaiter(self, waiter: Waiter) -> None:
        started = waiter.started
        if started is not None:
            # Its request was sent: cancelling it is cancelling that.
            started.cancel()
            return
        cancelCall(waiter.timer)
        waiter.timer = None
        if waiter.trace is not None:
            waiter.trace.failed(Failure(CancelledError()))
        if waiter.state is WaiterState.WAITING:
            self._carryOut(self._core.cancel(waiter))
        elif waiter.state is WaiterState.CONNECTING:
            # The caller's Deferred fails with CancelledError once this
            # returns: the connection, if it still comes, serves the next
            # in line, and a connect not started yet never starts.
            waiter.cancelled = True
            self._core.abandon(waiter)
            self._connector.cancel(waiter)

    def _waiterTimedOut(self, waiter: Waiter) -> None:
        waiter.timer = None
        if waiter.state is not WaiterState.WAITING:
            return
        limit = self._core.blockingLimit(waiter.key)
        waited = self._reactor.seconds() - waiter.enqueuedAt
        self._carryOut(self._core.cancel(waiter))
        self._counters.timedOut += 1
        error = PoolTimeoutError(waiter.key, limit, waited)
        emit("timeout", waiter.key, str(error))
        if waiter.trace is not None:
            waiter.trace.failed(Failure(error))
        waiter.deferred.errback(Failure(error))
