"""
L{HTTPConnectionPool}: Twisted's pool surface over L{pooled_http._core}'s
rules.  This layer owns the Deferreds, endpoints, timers and transports; it
asks the core what to do and carries the answers out.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.error import ConnectingCancelledError, ConnectionDone
from twisted.internet.interfaces import (
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import Request
from twisted.web.iweb import IResponse

from ._connection import Lifecycle, PooledConnection, PooledConnectionFactory
from ._core import Action, ActionKind, PoolCore, Waiter, WaiterState
from ._retry import RetryPolicy
from ._settings import Setting, settings
from .errors import (
    ConnectTimeoutError,
    PoolClosedError,
    PoolError,
    PoolTimeoutError,
)
from .stats import CloseReason, KeyStats, PoolStats, WaitStats

__all__ = ["HTTPConnectionPool"]

#: How long a connection being closed may take before it is aborted.
DEFAULT_CLOSE_GRACE = 2.0

_SETTINGS = settings(
    Setting("maxPersistentPerHost", integer=True),
    Setting("maxConnectionsPerHost", integer=True),
    Setting("maxConnections", integer=True),
    Setting("cachedConnectionTimeout"),
    Setting("poolTimeout", optional=True),
    Setting("connectTimeout", optional=True),
    Setting("responseTimeout", optional=True),
    Setting("readTimeout", optional=True),
    Setting("maxConnectionAge", optional=True),
    Setting("maxRequestsPerConnection", integer=True, optional=True),
    Setting("closeGracePeriod"),
    Setting("maxHeaderBytes", integer=True),
)

_CLOSE_TIMEOUT = Setting("close(timeout)", optional=True, zero=True)

_LIMITS = frozenset({"maxConnectionsPerHost", "maxConnections", "maxPersistentPerHost"})


class _Counters:
    """
    What the pool has done since it was created.
    """

    __slots__ = (
        "closed",
        "retried",
        "timedOut",
        "failed",
        "waits",
        "waitSum",
        "waitMax",
    )

    def __init__(self) -> None:
        self.closed: dict[str, int] = dict.fromkeys(CloseReason.ALL, 0)
        self.retried = 0
        self.timedOut = 0
        self.failed = 0
        self.waits = 0
        self.waitSum = 0.0
        self.waitMax = 0.0


class _PooledRequester:
    """
    What L{HTTPConnectionPool.getConnection} hands out: one connection for
    one request, with Twisted's C{request()} and C{abort()}, that retries a
    failed request on another connection when the retry policy allows it.

    @ivar key: The pool key.
    @ivar reused: Whether the connection had served a request before.
    @ivar connection: The underlying L{PooledConnection}.
    """

    __slots__ = ("_pool", "connection", "key", "reused", "_endpoint", "_policy")

    def __init__(
        self,
        pool: HTTPConnectionPool,
        connection: PooledConnection,
        endpoint: IStreamClientEndpoint,
        reused: bool,
        policy: RetryPolicy | None,
    ) -> None:
        self._pool = pool
        self.connection = connection
        self.key = connection.key
        self.reused = reused
        self._endpoint = endpoint
        self._policy = policy

    def __repr__(self) -> str:
        return f"<pooled connection to {self.key!r} reused={self.reused}>"

    @property
    def state(self) -> str:
        """
        The Twisted protocol state of the connection (C{"QUIESCENT"}, ...).
        """
        return self.connection.state

    @property
    def transport(self) -> Any:
        """
        The connection's transport.
        """
        return self.connection.transport

    def request(self, request: Request) -> Deferred[IResponse]:
        """
        Send C{request} on the connection.

        @return: A Deferred firing with the response, or failing with
            Twisted's request failures or a pooled_http timeout error.
        """
        connection = self.connection
        d: Deferred[Any] = connection.request(request)
        return d.addErrback(self._failed, request, connection)

    def _failed(
        self, failure: Failure, request: Request, connection: PooledConnection
    ) -> Any:
        pool = self._pool
        timeoutError = connection.timeoutError
        if timeoutError is not None and not failure.check(PoolError):
            failure = Failure(timeoutError)
        policy = self._policy
        if (
            policy is None
            or pool._core.closed
            or not policy.shouldRetry(
                request.method, failure, request.bodyProducer is not None, self.reused
            )
        ):
            return failure
        pool._counters.retried += 1
        pool._event("retry", self.key, failure.getErrorMessage())
        nextPolicy = policy.increment()

        def send(requester: _PooledRequester) -> Deferred[IResponse]:
            requester._policy = nextPolicy
            return requester.request(request)

        # Like Twisted, retry on a connection opened after the failure: the
        # other idle ones may have been timed out by the server as well.
        minSerial = pool._serial + 1
        return pool._acquire(self.key, self._endpoint, minSerial).addCallback(send)

    def abort(self) -> Deferred[None]:
        """
        Abort the connection, failing its request.
        """
        result: Deferred[None] = self.connection.abort()
        return result


class HTTPConnectionPool:
    """
    A pool of persistent HTTP connections with hard limits, a fair queue,
    timeouts on every phase and clean shutdown; a drop-in replacement for
    L{twisted.web.client.HTTPConnectionPool}.

    Pass it wherever Twisted's pool goes: C{Agent(reactor, pool=pool)},
    C{treq.get(url, pool=pool)}.  Connections are kept per key (C{Agent}
    uses C{(scheme, host, port)}), handed out one request at a time, and
    taken back when the response has been read.

    At most C{maxConnectionsPerHost} connections are open per key and
    C{maxConnections} over all keys, counting those being opened, in use and
    idle.  When a limit is reached, C{getConnection} waits: first come first
    served within a key, keys served in turn when the global limit blocks,
    and an idle connection of another key is closed to make room rather
    than left until it times out.

    Every setting is a keyword argument and a settable attribute; a value
    that is zero, negative or not a number raises L{ValueError} naming it.

    @ivar persistent: Whether connections are kept for reuse.
    @ivar maxPersistentPerHost: Idle connections kept per key (default 8).
        Setting it above C{maxConnectionsPerHost} raises the per-key cap with
        it, so code written for Twisted's pool keeps its parallelism.
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
    """

    # Defaults; every assignment is checked by __setattr__.
    maxPersistentPerHost: int = 8
    maxConnectionsPerHost: int = 8
    maxConnections: int = 256
    cachedConnectionTimeout: float = 240.0
    poolTimeout: float | None = None
    connectTimeout: float | None = 30.0
    responseTimeout: float | None = None
    readTimeout: float | None = None
    maxConnectionAge: float | None = None
    maxRequestsPerConnection: int | None = None
    closeGracePeriod: float = DEFAULT_CLOSE_GRACE
    maxHeaderBytes: int = 65536

    #: Whether to log a C{pooled_http.reuse} event every time an idle
    #: connection is handed out: one event per request, off by default
    #: because Twisted's log machinery costs as much as the hand-out itself.
    logReuse = False

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        persistent: bool = True,
        *,
        maxPersistentPerHost: int | None = None,
        maxConnectionsPerHost: int = 8,
        maxConnections: int = 256,
        cachedConnectionTimeout: float = 240.0,
        retryAutomatically: bool = True,
        retryPolicy: RetryPolicy | None = None,
        poolTimeout: float | None = None,
        connectTimeout: float | None = 30.0,
        responseTimeout: float | None = None,
        readTimeout: float | None = None,
        maxConnectionAge: float | None = None,
        maxRequestsPerConnection: int | None = None,
        closeGracePeriod: float = DEFAULT_CLOSE_GRACE,
        maxHeaderBytes: int = 65536,
    ) -> None:
        self._reactor: Any = reactor
        self._core = PoolCore(8, 256, 8)
        self._counters = _Counters()
        self._generation = 0
        # Idle connections on the default timeout, by when they went idle.
        self._parked: dict[PooledConnection, float] = {}
        self._sweeper: DelayedCall | None = None
        self._serial = 0
        self._live: set[PooledConnection] = set()
        self._closeWatchers: list[Deferred[None]] = []
        self._closeTimer: DelayedCall | None = None
        self.persistent = persistent
        self.retryAutomatically = retryAutomatically
        if retryPolicy is not None and not isinstance(retryPolicy, RetryPolicy):
            raise ValueError(f"retryPolicy must be a RetryPolicy, not {retryPolicy!r}")
        self.retryPolicy = retryPolicy if retryPolicy is not None else RetryPolicy()
        self._persistentExplicit = False
        if maxPersistentPerHost is not None:
            self.maxPersistentPerHost = maxPersistentPerHost
        self.maxConnectionsPerHost = maxConnectionsPerHost
        self.maxConnections = maxConnections
        self.cachedConnectionTimeout = cachedConnectionTimeout
        self.poolTimeout = poolTimeout
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
        self.readTimeout = readTimeout
        self.maxConnectionAge = maxConnectionAge
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.closeGracePeriod = closeGracePeriod
        self.maxHeaderBytes = maxHeaderBytes

    # Settings

    def __setattr__(self, name: str, value: Any) -> None:
        rule = _SETTINGS.get(name)
        if rule is None:
            object.__setattr__(self, name, value)
            return
        object.__setattr__(self, name, rule.validate(value))
        self._settingChanged(name)

    def _settingChanged(self, name: str) -> None:
        if name == "maxPersistentPerHost":
            # Code written for Twisted's pool raises maxPersistentPerHost to
            # get more parallel connections: the per-key cap follows it.
            self._persistentExplicit = True
        if name == "cachedConnectionTimeout" and self._sweeper is not None:
            # Wait for the oldest idle connection's new deadline.
            sweeper, self._sweeper = self._sweeper, None
            if sweeper is not None and sweeper.active():
                sweeper.cancel()
            self._sweep()
        if name not in _LIMITS:
            return
        core = self._core
        perHost = self.maxConnectionsPerHost
        if self._persistentExplicit:
            perHost = max(perHost, self.maxPersistentPerHost)
        core.perHostLimit = perHost
        core.globalLimit = self.maxConnections
        core.maxIdlePerHost = min(self.maxPersistentPerHost, perHost)
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
            C{abort()} like L{HTTP11ClientProtocol}; failing with
            L{PoolClosedError}, L{PoolTimeoutError}, L{ConnectTimeoutError}
            or the endpoint's own connection error.
        @raise TypeError: If C{key} is not hashable or C{endpoint} is not an
            endpoint.
        """
        return self._acquire(key, endpoint, 0)

    def closeCachedConnections(self, key: Hashable | None = None) -> Deferred[None]:
        """
        Close idle connections (all of them, or only C{key}'s).  A connection
        in use when this is called is closed when it comes back instead of
        being kept.  A peer that does not finish closing within
        C{closeGracePeriod} is aborted, so this never hangs.

        @return: A Deferred that fires once every closed connection's
            C{connectionLost} has happened.
        """
        if key is None:
            self._generation += 1
        actions = self._core.closeIdle(key, CloseReason.SHUTDOWN)
        watchers = [a.connection.whenLost() for a in actions]
        self._carryOut(actions)
        return gatherResults(watchers).addCallback(lambda _: None)

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
            self._event("shutdown", None, "close() called")
            self._carryOut(self._core.shutdown())
            for bucket in list(self._core.buckets.values()):
                for waiter in list(bucket.connecting):
                    if waiter.connecting is not None:
                        waiter.connecting.cancel()
            if timeout is not None:
                self._closeTimer = self._reactor.callLater(timeout, self._abortInFlight)
        self._checkClosed()
        return watcher

    # Introspection

    def stats(self) -> PoolStats:
        """
        Return a snapshot of the pool: current counts in total and per key,
        and counters since the pool was created.
        """
        idle = inUse = connecting = waiting = 0
        perKey: dict[Hashable, KeyStats] = {}
        for key, bucket in self._core.buckets.items():
            k = KeyStats(
                idle=len(bucket.idle),
                inUse=len(bucket.inUse),
                connecting=len(bucket.connecting),
                waiting=len(bucket.waiters),
                opened=bucket.opened,
                reused=bucket.reused,
            )
            perKey[key] = k
            idle += k.idle
            inUse += k.inUse
            connecting += k.connecting
            waiting += k.waiting
        c = self._counters
        return PoolStats(
            idle=idle,
            inUse=inUse,
            connecting=connecting,
            waiting=waiting,
            opened=self._core.opened,
            reused=self._core.reused,
            closed=dict(c.closed),
            retried=c.retried,
            timedOut=c.timedOut,
            failed=c.failed,
            waitTime=WaitStats(
                count=c.waits,
                mean=(c.waitSum / c.waits) if c.waits else 0.0,
                max=c.waitMax,
            ),
            perKey=perKey,
        )

    def __repr__(self) -> str:
        core = self._core
        inUse = connecting = waiting = 0
        for bucket in core.buckets.values():
            inUse += len(bucket.inUse)
            connecting += len(bucket.connecting)
            waiting += len(bucket.waiters)
        state = "closed" if self._core.closed else "open"
        c = self._counters
        return (
            f"<HTTPConnectionPool {state} keys={len(core.buckets)} "
            f"idle={core.idleCount} inUse={inUse} connecting={connecting} "
            f"waiting={waiting} limits={core.perHostLimit}/key,"
            f"{core.globalLimit} total opened={core.opened} reused={core.reused} "
            f"closed={sum(c.closed.values())}>"
        )

    # Handing out

    def _acquire(
        self, key: Hashable, endpoint: IStreamClientEndpoint, minSerial: int
    ) -> Deferred[Any]:
        core = self._core
        if core.closed:
            return _failed(PoolClosedError(key))
        if not minSerial:
            try:
                connection = core.takeIdle(key)
            except TypeError:
                raise TypeError(f"pool key {key!r} is not hashable") from None
            if connection is not None:
                self._counters.waits += 1
                if self.logReuse:
                    self._event("reuse", key, "idle connection handed out")
                return succeed(self._handOut(connection, endpoint, True))
        if not callable(getattr(endpoint, "connect", None)):
            raise TypeError(
                f"endpoint for pool key {key!r} must provide IStreamClientEndpoint, "
                f"not {endpoint!r}"
            )
        waiter = Waiter(key, minSerial)
        waiter.endpoint = endpoint
        waiter.enqueuedAt = self._reactor.seconds()
        waiter.deferred = Deferred(lambda d: self._cancelWaiter(waiter))
        d: Deferred[Any] = waiter.deferred
        self._carryOut(core.request(waiter))
        if waiter.state is WaiterState.WAITING and self.poolTimeout is not None:
            waiter.timer = self._reactor.callLater(
                self.poolTimeout, self._waiterTimedOut, waiter
            )
        return d

    def _handOut(
        self,
        connection: PooledConnection,
        endpoint: IStreamClientEndpoint,
        reused: bool,
    ) -> _PooledRequester:
        if connection.lifecycle is Lifecycle.IDLE:
            connection.moveTo(Lifecycle.ACTIVE)
            self._unpark(connection)
        policy = self.retryPolicy if self.retryAutomatically else None
        return _PooledRequester(self, connection, endpoint, reused, policy)

    def _cancelWaiter(self, waiter: Waiter) -> None:
        _cancelTimer(waiter)
        if waiter.state is WaiterState.WAITING:
            self._carryOut(self._core.cancel(waiter))
        elif waiter.state is WaiterState.CONNECTING and waiter.connecting is not None:
            # The caller's Deferred fails with CancelledError once this
            # returns; the cancelled attempt must not fire it first.
            waiter.cancelled = True
            waiter.connecting.cancel()

    def _waiterTimedOut(self, waiter: Waiter) -> None:
        waiter.timer = None
        if waiter.state is not WaiterState.WAITING:
            return
        limit = self._core.blockingLimit(waiter.key)
        waited = self._reactor.seconds() - waiter.enqueuedAt
        self._carryOut(self._core.cancel(waiter))
        self._counters.timedOut += 1
        error = PoolTimeoutError(waiter.key, limit, waited)
        self._event("timeout", waiter.key, str(error))
        waiter.deferred.errback(Failure(error))

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
                self._connect(action.waiter)
            elif kind is ActionKind.FAIL:
                waiter = action.waiter
                assert waiter is not None
                _cancelTimer(waiter)
                if not waiter.deferred.called:
                    waiter.deferred.errback(Failure(PoolClosedError(waiter.key)))

    def _hand(self, waiter: Any, connection: PooledConnection, reused: bool) -> None:
        _cancelTimer(waiter)
        c = self._counters
        wait = self._reactor.seconds() - waiter.enqueuedAt
        c.waits += 1
        c.waitSum += wait
        if wait > c.waitMax:
            c.waitMax = wait
        if reused and self.logReuse:
            self._event("reuse", connection.key, "handed to a waiting request")
        requester = self._handOut(connection, waiter.endpoint, reused)
        connection.handOff(lambda: waiter.deferred.callback(requester))

    def _park(self, connection: PooledConnection) -> None:
        """
        Keep a connection idle until its idle timeout.

        Connections on the pool's own C{cachedConnectionTimeout} expire in
        the order they went idle, so one reactor timer serves them all (its
        cost does not grow with the number of idle connections); one whose
        server or age asks for less gets a timer of its own.
        """
        connection.moveTo(Lifecycle.IDLE)
        timeout = self._idleTimeout(connection)
        if timeout <= 0:
            self._carryOut(self._core.discard(connection, CloseReason.EXPIRED))
            return
        if timeout < self.cachedConnectionTimeout:
            reason = CloseReason.IDLE_TIMEOUT
            if connection.keepAliveTimeout is None:
                reason = CloseReason.EXPIRED
            connection.idleTimer = self._reactor.callLater(
                timeout, self._idleExpired, connection, reason
            )
            return
        self._parked[connection] = self._reactor.seconds()
        if self._sweeper is None:
            self._sweeper = self._reactor.callLater(timeout, self._sweep)

    def _unpark(self, connection: PooledConnection) -> None:
        """
        A connection stops being idle: forget its idle timeout.
        """
        idleTimer = connection.idleTimer
        if idleTimer is not None:
            connection.idleTimer = None
            if idleTimer.active():
                idleTimer.cancel()
        parked = self._parked
        if parked.pop(connection, None) is not None and not parked:
            sweeper = self._sweeper
            if sweeper is not None:
                self._sweeper = None
                if sweeper.active():
                    sweeper.cancel()

    def _sweep(self) -> None:
        """
        Close the connections whose idle timeout has passed, oldest first,
        and wait for the next one.
        """
        self._sweeper = None
        parked = self._parked
        timeout = float(self.cachedConnectionTimeout)
        now = self._reactor.seconds()
        while parked:
            connection, since = next(iter(parked.items()))
            if since + timeout > now:
                self._sweeper = self._reactor.callLater(
                    since + timeout - now, self._sweep
                )
                return
            del parked[connection]
            self._carryOut(self._core.discard(connection, CloseReason.IDLE_TIMEOUT))

    def _idleTimeout(self, connection: PooledConnection) -> float:
        """
        How long an idle connection may wait: the pool's idle timeout,
        shortened to close a little before the server's own keep-alive
        timeout and before the connection's maximum age.
        """
        timeout = float(self.cachedConnectionTimeout)
        serverTimeout = connection.keepAliveTimeout
        if serverTimeout is not None:
            timeout = min(timeout, serverTimeout - min(1.0, serverTimeout / 4))
        if self.maxConnectionAge is not None:
            age = self._reactor.seconds() - connection.createdAt
            timeout = min(timeout, self.maxConnectionAge - age)
        return timeout

    def _idleExpired(self, connection: PooledConnection, reason: str) -> None:
        connection.idleTimer = None
        self._carryOut(self._core.discard(connection, reason))

    def _close(self, connection: PooledConnection, reason: str) -> None:
        self._unpark(connection)
        if connection.lifecycle is Lifecycle.CLOSED:
            # Already gone: only the books need to know.
            self._carryOut(self._core.lost(connection))
            return
        if connection.lifecycle is Lifecycle.CLOSING:
            return
        self._counters.closed[reason] = self._counters.closed.get(reason, 0) + 1
        self._event(
            "evict" if reason == CloseReason.EVICTED else "close",
            connection.key,
            reason,
        )
        connection.close(self.closeGracePeriod)

    def _connect(self, waiter: Any) -> None:
        key = waiter.key
        try:
            d = waiter.endpoint.connect(PooledConnectionFactory(self, key))
        except BaseException:
            d = _failed(Failure())
        waiter.connecting = d
        timeout = self.connectTimeout
        timer = None
        if timeout is not None:
            timer = self._reactor.callLater(
                timeout, self._connectTimedOut, waiter, timeout
            )
        d.addCallbacks(
            self._connected,
            self._connectFailed,
            callbackArgs=(waiter, timer),
            errbackArgs=(waiter, timer),
        )

    def _connectTimedOut(self, waiter: Any, timeout: float) -> None:
        waiter.timedOut = True
        self._counters.timedOut += 1
        self._event("timeout", waiter.key, f"connect took longer than {timeout:g} s")
        waiter.connecting.cancel()

    def _connected(self, connection: PooledConnection, waiter: Any, timer: Any) -> None:
        waiter.connecting = None
        self._event("open", waiter.key, "new connection")
        self._live.add(connection)
        if timer is not None and timer.active():
            timer.cancel()
            # The connect phase ends with the TLS handshake.
            connection.awaitHandshake(
                timer.getTime() - self._reactor.seconds(), self.connectTimeout or 0
            )
        self._carryOut(self._core.connected(waiter, connection))

    def _connectFailed(self, failure: Failure, waiter: Any, timer: Any) -> None:
        waiter.connecting = None
        if timer is not None and timer.active():
            timer.cancel()
        self._counters.failed += 1
        if waiter.timedOut:
            failure = Failure(ConnectTimeoutError(waiter.key, self.connectTimeout or 0))
        elif self._core.closed and failure.check(
            CancelledError, ConnectingCancelledError
        ):
            failure = Failure(PoolClosedError(waiter.key))
        self._carryOut(self._core.connectFailed(waiter))
        if not waiter.deferred.called and not waiter.cancelled:
            waiter.deferred.errback(failure)

    # Reports from connections

    def _connectionQuiescent(self, connection: PooledConnection) -> None:
        """
        A connection finished its response and may be reused.
        """
        if connection.lifecycle is not Lifecycle.ACTIVE:
            connection.close(self.closeGracePeriod)
            return
        reason = self._notReusable(connection)
        if reason:
            self._carryOut(self._core.release(connection, False, reason))
        else:
            self._carryOut(self._core.release(connection, True))

    def _notReusable(self, connection: PooledConnection) -> str:
        """
        Return why a connection that came back must not be kept, or C{""}.
        """
        if self._core.closed:
            return CloseReason.SHUTDOWN
        if not self.persistent:
            return CloseReason.NOT_REUSABLE
        if connection.generation < self._generation:
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

    def _connectionGivenUp(self, connection: PooledConnection, reason: Failure) -> None:
        """
        Twisted is closing a connection itself (C{Connection: close}, a parse
        error, unexpected bytes on an idle connection).
        """
        if connection.lifecycle in (Lifecycle.CLOSING, Lifecycle.CLOSED):
            return
        why = (
            CloseReason.SERVER_CLOSED
            if reason.check(ConnectionDone)
            else CloseReason.ERROR
        )
        actions = self._core.discard(connection, why)
        # Twisted calls loseConnection itself; count and arm the grace timer.
        self._carryOut(actions)

    def _timedOut(self, connection: PooledConnection, error: PoolError) -> None:
        """
        A timer of C{connection} fired; the caller aborts it.
        """
        self._counters.timedOut += 1
        self._event("timeout", connection.key, str(error))
        self._carryOut(self._core.discard(connection, CloseReason.ERROR))

    def _connectionLost(self, connection: PooledConnection, reason: Failure) -> None:
        """
        A connection's transport is gone: its slot is free.
        """
        previous = connection.lifecycle
        connection.lifecycle = Lifecycle.CLOSED
        self._live.discard(connection)
        if previous is Lifecycle.IDLE:
            self._unpark(connection)
        if previous in (Lifecycle.IDLE, Lifecycle.ACTIVE):
            why = CloseReason.SERVER_CLOSED
            if previous is Lifecycle.ACTIVE:
                why = CloseReason.ERROR
            self._counters.closed[why] += 1
            self._event("close", connection.key, why)
        self._carryOut(self._core.lost(connection))
        self._checkClosed()

    # Shutdown

    def _abortInFlight(self) -> None:
        self._closeTimer = None
        for connection in list(self._live):
            if connection.lifecycle is Lifecycle.ACTIVE:
                self._carryOut(self._core.discard(connection, CloseReason.SHUTDOWN))
            connection.abortTransport()

    def _checkClosed(self) -> None:
        if not self._core.closed or self._live or self._core.buckets:
            return
        if self._closeTimer is not None:
            if self._closeTimer.active():
                self._closeTimer.cancel()
            self._closeTimer = None
        watchers, self._closeWatchers = self._closeWatchers, []
        for d in watchers:
            if not d.called:  # a caller may have cancelled its Deferred
                d.callback(None)

    # Logging

    def _event(self, event: str, key: Hashable | None, reason: str) -> None:
        """
        Emit a structured log event named C{pooled_http.<event>}.
        """
        self._log.debug(
            "{pooledHttpEvent}: {key!r}: {reason}",
            pooledHttpEvent="pooled_http." + event,
            key=key,
            reason=reason,
        )


def _cancelTimer(waiter: Any) -> None:
    timer = waiter.timer
    if timer is not None:
        waiter.timer = None
        if timer.active():
            timer.cancel()


def _failed(error: BaseException | Failure) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error if isinstance(error, Failure) else Failure(error))
    return d
