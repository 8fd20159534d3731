"""
Trace hooks: what a pool, its connections and the requests on them do, step
by step, told to observers.

Register a L{TraceObserver} (subclass it and override the methods you need;
every method of the base class does nothing) with
L{HTTPConnectionPool.addObserver<pooled_http.HTTPConnectionPool.addObserver>}.
The pool then makes one L{RequestTrace} per attempt of a request (a retry is
a new attempt) when C{getConnection} is called, and calls the observers'
methods with it at each step, in this order for a request on a new
connection::

    requestQueued               (only if a limit made it wait)
    requestDequeued             (only after requestQueued, with the wait)
    connectStarted
    tunnelStarted, tunnelDone   (through a CONNECT or SOCKS5 proxy)
    connectDone                 (or connectFailed)
    tlsHandshakeStarted         (https)
    connectionAcquired          (also for an idle connection, reused=True)
    requestStarting             (before any byte: may add headers)
    requestHeadersSent
    tlsHandshakeDone            (the request head waits in TLS until then)
    requestBodySent
    responseHeadersReceived
    responseBodyDone            (or requestFailed, at any point)
    connectionReleased          (back in the pool, or not kept)
    connectionClosed            (with the reason, when it goes)

A request whose attempt failed and is sent again gets C{requestRetried}
with the new attempt's trace, whose events follow.  The connection a new
connect opens may be handed to another waiting request of the same key
than the one that started it: C{connectDone} names the connection,
C{connectionAcquired} says which request got it.

An observer that raises is logged (namespace C{pooled_http}) and never
breaks a request or the other observers.  With no observer registered the
pool makes no trace and the cost of every hook is one attribute test.

HTTP/2: L{RequestTrace.streamId} and L{TraceObserver.streamOpened} are
where a multiplexed connection reports the stream a request went on; the
HTTP/1.1 connections leave it L{None}.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["TraceObserver", "RequestTrace", "Observable"]

_log = Logger(namespace="pooled_http")


class TraceObserver:
    """
    The base class of trace observers: one method per step, each doing
    nothing.  Request steps get the attempt's L{RequestTrace}; connection
    steps get the pool key and the connection's id (its serial: grows with
    every connection the pool opens).
    """

    # Waiting for a connection

    def requestQueued(self, trace: RequestTrace) -> None:
        """
        A limit was reached: the request waits in the pool's queue.
        """

    def requestDequeued(self, trace: RequestTrace, wait: float) -> None:
        """
        The request left the queue after C{wait} seconds, to a connection
        or to a connect of its own.
        """

    # Opening a connection

    def connectStarted(self, trace: RequestTrace) -> None:
        """
        A new connection is being opened for the request's key.
        """

    def tunnelStarted(self, trace: RequestTrace, kind: str, proxy: str) -> None:
        """
        The connection to a proxy is up; the tunnel's handshake begins.

        @param kind: C{"CONNECT"} or C{"SOCKS5"}.
        @param proxy: The proxy's URL without its credentials.
        """

    def tunnelDone(self, trace: RequestTrace, kind: str, proxy: str) -> None:
        """
        The proxy set up the tunnel.
        """

    def connectDone(self, trace: RequestTrace, connectionId: int) -> None:
        """
        The connection is open (for TLS, the handshake has just begun).
        """

    def connectFailed(self, trace: RequestTrace, reason: Failure) -> None:
        """
        The connection could not be opened (or timed out, or was cancelled).
        """

    def tlsHandshakeStarted(self, key: Hashable, connectionId: int) -> None:
        """
        The TLS handshake of a new connection is under way.
        """

    def tlsHandshakeDone(self, key: Hashable, connectionId: int) -> None:
        """
        The TLS handshake completed.
        """

    # The request

    def connectionAcquired(
        self, trace: RequestTrace, connectionId: int, reused: bool
    ) -> None:
        """
        The request got a connection: a new one or (C{reused}) one that had
        served a request before.
        """

    def requestStarting(self, trace: RequestTrace, request: Any) -> None:
        """
        The request is about to be written: C{request} is Twisted's
        L{twisted.web._newclient.Request}, whose C{headers} may still be
        changed (replace them with a copy first: they may be the caller's).
        """

    def streamOpened(self, trace: RequestTrace, streamId: int) -> None:
        """
        On HTTP/2, the request went on stream C{streamId}.
        """

    def requestHeadersSent(self, trace: RequestTrace) -> None:
        """
        The request's head has been written.
        """

    def requestBodySent(self, trace: RequestTrace) -> None:
        """
        The whole request, body included, has been written.
        """

    def responseHeadersReceived(
        self, trace: RequestTrace, status: int, version: tuple[Any, ...]
    ) -> None:
        """
        The final response head arrived.

        @param version: Like C{(b"HTTP", 1, 1)}.
        """

    def responseBodyDone(self, trace: RequestTrace) -> None:
        """
        The whole response body has been received: the attempt succeeded.
        """

    def requestFailed(self, trace: RequestTrace, reason: Failure) -> None:
        """
        The attempt failed (before or after the response head); a retry, if
        any, follows as L{requestRetried}.
        """

    def requestRetried(
        self, trace: RequestTrace, reason: Failure, retry: RequestTrace
    ) -> None:
        """
        The failed attempt C{trace} is sent again as attempt C{retry}.
        """

    # Connections

    def connectionReleased(self, key: Hashable, connectionId: int, kept: bool) -> None:
        """
        A connection finished its response: kept for reuse, or not.
        """

    def connectionClosed(self, key: Hashable, connectionId: int, reason: str) -> None:
        """
        A connection is being closed or is gone, with one of
        L{pooled_http.stats.CloseReason} (C{"evicted"} for a connection
        closed to make room for another key).
        """


class Dispatch:
    """
    The observers of one pool, called in the order they were added; an
    observer that raises is logged and skipped.

    @ivar observers: The observers.
    """

    __slots__ = ("observers", "reactor", "_hooks")

    def __init__(self, observers: Iterable[TraceObserver], reactor: Any) -> None:
        self.observers = tuple(observers)
        self.reactor = reactor
        # Per hook, the bound methods of the observers that have their own:
        # a method left as TraceObserver's no-op is never called.
        hooks: dict[str, tuple[Any, ...]] = {}
        for name in _HOOKS:
            noOp = getattr(TraceObserver, name)
            hooks[name] = tuple(
                getattr(observer, name)
                for observer in self.observers
                if getattr(type(observer), name, noOp) is not noOp
            )
        self._hooks = hooks

    def call(self, name: str, *args: Any) -> None:
        """
        Call method C{name} of every observer that has one with C{args}.
        """
        for method in self._hooks[name]:
            try:
                method(*args)
            except Exception:
                _log.failure(
                    "trace observer {observer!r} failed in {hook}",
                    observer=getattr(method, "__self__", method),
                    hook=name,
                )


#: The names of the hooks of L{TraceObserver}.
_HOOKS = tuple(name for name in vars(TraceObserver) if not name.startswith("_"))


class Observable:
    """
    The trace-observer registry of L{pooled_http.HTTPConnectionPool}: the
    pool's C{_dispatch} is L{None} while no observer is registered, so
    every hook of the pool costs one attribute test.
    """

    _dispatch: Dispatch | None
    _reactor: Any

    def addObserver(self, observer: TraceObserver) -> None:
        """
        Tell C{observer} about every step of the requests that ask for a
        connection from now on, and of every connection (see
        L{pooled_http.trace}).  Observers are called in the order they were
        added; one that raises is logged and does not break a request.

        @param observer: A L{TraceObserver} (or an object with the same
            methods).
        @raise TypeError: If C{observer} is a class, or has none of the
            methods of L{TraceObserver} (it would never be called).
        @raise ValueError: If C{observer} was added already.
        """
        if isinstance(observer, type) or not any(
            callable(getattr(observer, name, None)) for name in _HOOKS
        ):
            raise TypeError(
                f"observer must be a TraceObserver instance (or an object with"
                f" its methods), not {observer!r}"
            )
        if observer in self.observers:
            raise ValueError(f"{observer!r} is an observer of this pool already")
        self._dispatch = Dispatch((*self.observers, observer), self._reactor)

    def removeObserver(self, observer: TraceObserver) -> None:
        """
        Stop telling C{observer} about new requests and connections
        (attempts under way still finish their reports to it).

        @param observer: An observer given to L{addObserver}.
        @raise ValueError: If it was not added.
        """
        observers = list(self.observers)
        if observer not in observers:
            raise ValueError(f"{observer!r} is not an observer of this pool")
        observers.remove(observer)
        self._dispatch = Dispatch(observers, self._reactor) if observers else None

    @property
    def observers(self) -> tuple[TraceObserver, ...]:
        """
        The trace observers, in the order they were added.
        """
        dispatch = self._dispatch
        return dispatch.observers if dispatch is not None else ()


class RequestTrace:
    """
    One attempt of one request, as observers see it.  The pool, the lease
    and the connection report its steps through its methods, which record
    the times and call the observers once per step.

    @ivar key: The pool key.
    @ivar attempt: 0 for the first attempt, 1 for the first retry, ...
        (OpenTelemetry's C{http.request.resend_count}).
    @ivar startedAt: When C{getConnection} was called (reactor seconds).
    @ivar wait: Seconds spent in the queue waiting for a connection.
    @ivar connectionId: The connection it got, once it got one.
    @ivar reused: Whether that connection had served a request before.
    @ivar request: Twisted's request, once it is being sent.
    @ivar status: The response's status code, once its head arrived.
    @ivar version: The response's version, like C{(b"HTTP", 1, 1)}.
    @ivar streamId: The HTTP/2 stream, or L{None} on HTTP/1.1.
    @ivar finished: Whether the attempt is over (body done or failed).
    @ivar context: Free for observers to keep their state of this attempt
        in, under a key of their own (an OpenTelemetry span, ...).
    """

    __slots__ = (
        "_dispatch",
        "key",
        "attempt",
        "startedAt",
        "wait",
        "connectionId",
        "reused",
        "request",
        "status",
        "version",
        "streamId",
        "finished",
        "context",
        "_queued",
        "_headersSent",
        "_bodySent",
    )

    def __init__(self, dispatch: Dispatch, key: Hashable, attempt: int = 0) -> None:
        self._dispatch = dispatch
        self.key = key
        self.attempt = attempt
        self.startedAt: float = dispatch.reactor.seconds()
        self.wait = 0.0
        self.connectionId: int | None = None
        self.reused = False
        self.request: Any = None
        self.status: int | None = None
        self.version: tuple[Any, ...] | None = None
        self.streamId: int | None = None
        self.finished = False
        self.context: dict[Any, Any] = {}
        self._queued = False
        self._headersSent = False
        self._bodySent = False

    def __repr__(self) -> str:
        return (
            f"<RequestTrace {self.key!r} attempt={self.attempt} "
            f"connection={self.connectionId}>"
        )

    @property
    def now(self) -> float:
        """
        The pool's reactor's time, in seconds.
        """
        seconds: float = self._dispatch.reactor.seconds()
        return seconds

    # Reports, each made once.

    def queued(self) -> None:
        """
        The request waits for a slot.
        """
        self._queued = True
        self._dispatch.call("requestQueued", self)

    def dequeued(self) -> None:
        """
        The request leaves the queue (no-op if it never waited).
        """
        if self._queued:
            self._queued = False
            self.wait = self.now - self.startedAt
            self._dispatch.call("requestDequeued", self, self.wait)

    def connectStarted(self) -> None:
        """
        A connect starts on behalf of this request.
        """
        self.dequeued()
        self._dispatch.call("connectStarted", self)

    def tunnel(self, done: bool, kind: str, proxy: str) -> None:
        """
        A proxy tunnel of this request's connect starts or is up.
        """
        hook = "tunnelDone" if done else "tunnelStarted"
        self._dispatch.call(hook, self, kind, proxy)

    def connectDone(self, connectionId: int) -> None:
        """
        The connect succeeded.
        """
        self._dispatch.call("connectDone", self, connectionId)

    def connectFailed(self, reason: Failure) -> None:
        """
        The connect failed.
        """
        self._dispatch.call("connectFailed", self, reason)

    def acquired(self, connectionId: int, reused: bool) -> None:
        """
        The request got connection C{connectionId}.
        """
        self.dequeued()
        self.connectionId = connectionId
        self.reused = reused
        self._dispatch.call("connectionAcquired", self, connectionId, reused)

    def starting(self, request: Any) -> None:
        """
        The request is about to be written on its connection.
        """
        self.request = request
        self._dispatch.call("requestStarting", self, request)

    def stream(self, streamId: int) -> None:
        """
        The request went on HTTP/2 stream C{streamId}.
        """
        self.streamId = streamId
        self._dispatch.call("streamOpened", self, streamId)

    def headersSent(self) -> None:
        """
        The request head is written.
        """
        if not self._headersSent and not self.finished:
            self._headersSent = True
            self._dispatch.call("requestHeadersSent", self)

    def bodySent(self) -> None:
        """
        The whole request is written.
        """
        if self._headersSent and not self._bodySent and not self.finished:
            self._bodySent = True
            self._dispatch.call("requestBodySent", self)

    def responseHeaders(self, status: int, version: tuple[Any, ...]) -> None:
        """
        The response head arrived.
        """
        if self.status is None and not self.finished:
            self.status = status
            self.version = version
            self._dispatch.call("responseHeadersReceived", self, status, version)

    def responseDone(self) -> None:
        """
        The response is complete.
        """
        if not self.finished:
            self.finished = True
            self._dispatch.call("responseBodyDone", self)

    def failed(self, reason: Failure) -> None:
        """
        The attempt failed.
        """
        if not self.finished:
            self.finished = True
            self._dispatch.call("requestFailed", self, reason)

    def retried(self, reason: Failure) -> RequestTrace:
        """
        The attempt is sent again.

        @return: The trace of the new attempt.
        """
        retry = RequestTrace(self._dispatch, self.key, self.attempt + 1)
        self._dispatch.call("requestRetried", self, reason, retry)
        return retry


def handshakeStarted(dispatch: Dispatch, connection: Any) -> None:
    """
    Report that a new connection's TLS handshake is under way, if it is.
    """
    from twisted.internet.interfaces import ISSLTransport

    if getattr(connection, "handshakeDone", True):
        return
    if ISSLTransport.providedBy(getattr(connection, "transport", None)):
        dispatch.call("tlsHandshakeStarted", connection.key, connection.serial)


def tracedFactory(factory: Any) -> RequestTrace | None:
    """
    The trace carried by the protocol factory an endpoint was given, looking
    through factories that wrap others (TLS): how a tunnel endpoint reports
    its steps.
    """
    for _ in range(4):
        if factory is None:
            return None
        trace = getattr(factory, "trace", None)
        if isinstance(trace, RequestTrace):
            return trace
        factory = getattr(factory, "wrappedFactory", None)
    return None
