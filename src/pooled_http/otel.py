"""
OpenTelemetry traces and metrics for a pool (the C{pooled_http[otel]}
extra), on the pool's trace hooks (L{pooled_http.trace})::

    from pooled_http import otel
    otel.instrument(pool)               # the global providers
    otel.instrument(pool, tracerProvider=tp, meterProvider=mp)
    otel.uninstrument(pool)

Each attempt of a request is one C{CLIENT} span named after the method,
from C{getConnection} (the wait for a connection included) to the end of
the response body or the failure, with the attributes of the HTTP client
semantic conventions (C{http.request.method}, C{url.full} without user
info and with signature query values redacted, C{url.scheme},
C{server.address}, C{server.port}, C{http.response.status_code},
C{error.type}, C{network.protocol.version}, C{http.request.resend_count} on
retries) and one event per step (C{pooled_http.queued},
C{pooled_http.connect.start}, ...).  The parent is the context current
when the request asked the pool for a connection; the trace context is
written into the request's headers by the configured propagator just
before the request is sent, whatever agent sent it (L{PooledAgent
<pooled_http.PooledAgent>}, Twisted's C{Agent}, treq): the hook runs in the
pool's lease, under every agent.  The caller's C{Headers} object is copied
first, never changed.

Metrics: C{http.client.request.duration} (seconds, per attempt, as the
span), C{http.client.active_requests} (requests being sent or received),
C{http.client.open_connections} (by C{http.connection.state}: C{active} or
C{idle}), C{http.client.connection.duration} and
C{http.client.request.time_in_queue} (the wait for a connection, 0 for a
request served at once).  Connections opened before C{instrument} are not
counted.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Iterable
from typing import Any

from opentelemetry import context as otelcontext
from opentelemetry import metrics, propagate
from opentelemetry import trace as oteltrace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind, Status, StatusCode
from twisted.python.failure import Failure

from . import __version__
from ._redact import fullURL, hostOf, keyAttributes, text
from .trace import RequestTrace, TraceObserver

__all__ = ["instrument", "uninstrument", "OpenTelemetryObserver"]

_SCOPE = "pooled_http"

_DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
_CONNECTION_BUCKETS = (
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

# The attributes of the active-request and open-connection counts.
_COUNTED = ("http.request.method", "server.address", "server.port", "url.scheme")

_instrumented: weakref.WeakKeyDictionary[Any, OpenTelemetryObserver] = (
    weakref.WeakKeyDictionary()
)


def instrument(
    pool: Any,
    tracerProvider: Any = None,
    meterProvider: Any = None,
    *,
    events: bool = True,
) -> OpenTelemetryObserver:
    """
    Trace and measure C{pool}'s requests and connections.

    @param pool: An L{HTTPConnectionPool<pooled_http.HTTPConnectionPool>}.
    @param tracerProvider: The tracer provider, or L{None} for the global one.
    @param meterProvider: The meter provider, or L{None} for the global one.
    @param events: Whether spans get an event per step (about a fifth of
        the cost per request); without them a span has its attributes only.
    @return: The observer added to the pool.
    @raise ValueError: If C{pool} is instrumented already.
    @raise TypeError: If C{pool} is not a pool (it has no C{addObserver}).
    """
    if not callable(getattr(pool, "addObserver", None)):
        raise TypeError(f"pool must be an HTTPConnectionPool, not {pool!r}")
    if pool in _instrumented:
        raise ValueError(f"{pool!r} is instrumented already; uninstrument it first")
    observer = OpenTelemetryObserver(
        pool._reactor, tracerProvider, meterProvider, events=events
    )
    pool.addObserver(observer)
    _instrumented[pool] = observer
    return observer


def uninstrument(pool: Any) -> None:
    """
    Stop tracing C{pool} (attempts under way still end their spans).

    @param pool: A pool given to L{instrument}; others are left alone.
    """
    observer = _instrumented.pop(pool, None)
    if observer is not None:
        pool.removeObserver(observer)
        observer.forgetConnections()


def errorType(reason: Failure) -> str:
    """
    The C{error.type} of a failure: its exception's qualified class name.
    """
    cls = type(reason.value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class _Attempt:
    """
    What the observer keeps of one traced attempt.
    """

    __slots__ = ("span", "parent", "attributes", "active")

    def __init__(self, span: Any, parent: Any) -> None:
        self.span = span
        self.parent = parent
        self.attributes: dict[str, Any] = {}
        self.active = False


class OpenTelemetryObserver(TraceObserver):
    """
    The L{TraceObserver} L{instrument} adds: spans, events and metrics.
    """

    def __init__(
        self,
        reactor: Any,
        tracerProvider: Any = None,
        meterProvider: Any = None,
        *,
        events: bool = True,
    ) -> None:
        """
        @param reactor: The pool's reactor (its clock times connections).
        @param tracerProvider: The tracer provider, or L{None} for the global.
        @param meterProvider: The meter provider, or L{None} for the global.
        @param events: Whether spans get an event per step.
        """
        self._reactor = reactor
        self._events = events
        self._tracer = oteltrace.get_tracer(
            _SCOPE, __version__, tracer_provider=tracerProvider
        )
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meterProvider)
        self._duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        # The two counts change on every request: kept here as plain
        # numbers by attribute set, read by the SDK when it collects.
        self._activeCounts: dict[tuple[Any, ...], int] = {}
        self._openCounts: dict[tuple[Any, ...], int] = {}
        meter.create_observable_up_down_counter(
            "http.client.active_requests",
            callbacks=[self._observeCounts(self._activeCounts)],
            unit="{request}",
            description="Number of active HTTP requests.",
        )
        meter.create_observable_up_down_counter(
            "http.client.open_connections",
            callbacks=[self._observeCounts(self._openCounts)],
            unit="{connection}",
            description="Number of outbound HTTP connections that are active or idle.",
        )
        self._connectionDuration = meter.create_histogram(
            "http.client.connection.duration",
            unit="s",
            description="The duration of the successfully established outbound "
            "HTTP connections.",
            explicit_bucket_boundaries_advisory=list(_CONNECTION_BUCKETS),
        )
        self._queue = meter.create_histogram(
            "http.client.request.time_in_queue",
            unit="s",
            description="Time requests spent waiting for a connection of the pool.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        # connection id -> [state, attributes, opened at (reactor seconds)]
        self._connections: dict[int, list[Any]] = {}
        # connection id -> the attempt whose connect opened it
        self._opening: dict[int, RequestTrace] = {}

    def forgetConnections(self) -> None:
        """
        The pool no longer tells this observer about its connections: take
        those it still counts out of C{http.client.open_connections}, which
        would otherwise show them open for good.
        """
        for state, attributes, _ in self._connections.values():
            self._count(self._openCounts, attributes, -1, state)
        self._connections.clear()
        self._opening.clear()

    # Spans

    def _attempt(self, trace: RequestTrace, parent: Any = None) -> _Attempt:
        attempt: _Attempt | None = trace.context.get(self)
        if attempt is None:
            if parent is None:
                parent = otelcontext.get_current()
            attributes = keyAttributes(trace.key)
            if trace.attempt:
                attributes["http.request.resend_count"] = trace.attempt
            span = self._tracer.start_span(
                "HTTP", context=parent, kind=SpanKind.CLIENT, attributes=attributes
            )
            attempt = _Attempt(span, parent)
            attempt.attributes = attributes
            trace.context[self] = attempt
        return attempt

    def _event(self, trace: RequestTrace, name: str, **attributes: Any) -> None:
        # The first step starts the span: in the caller's context, before
        # any wait.
        attempt = self._attempt(trace)
        if self._events:
            attempt.span.add_event("pooled_http." + name, attributes)

    def _finish(self, trace: RequestTrace, reason: Failure | None) -> None:
        attempt = self._attempt(trace)
        span = attempt.span
        if "http.request.method" not in attempt.attributes:
            # Failed before its request was handed to a connection (a pool
            # or connect timeout, a cancel while queued): the conventions
            # ask for _OTHER when the method is not known.
            attempt.attributes["http.request.method"] = "_OTHER"
            span.set_attribute("http.request.method", "_OTHER")
        attributes = dict(attempt.attributes)
        if trace.status is not None:
            attributes["http.response.status_code"] = trace.status
            span.set_attribute("http.response.status_code", trace.status)
        if trace.version is not None:
            version = f"{trace.version[1]}.{trace.version[2]}"
            attributes["network.protocol.version"] = version
            span.set_attribute("network.protocol.version", version)
        error = None
        if reason is not None:
            error = errorType(reason)
            span.record_exception(reason.value)
        elif trace.status is not None and trace.status >= 400:
            error = str(trace.status)
        if error is not None:
            attributes["error.type"] = error
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        attributes.pop("http.request.resend_count", None)
        self._duration.record(max(0.0, trace.now - trace.startedAt), attributes)
        if attempt.active:
            attempt.active = False
            self._count(self._activeCounts, attempt.attributes, -1)
        if trace.request is None:
            self._queue.record(max(0.0, trace.now - trace.startedAt), attributes)
        span.end()

    @staticmethod
    def _count(
        counts: dict[tuple[Any, ...], int],
        attributes: dict[str, Any],
        change: int,
        state: str | None = None,
    ) -> None:
        """
        Change the count of an attribute set: the request attributes of an
        active request, or the server attributes and C{state} of a
        connection.
        """
        key: tuple[Any, ...] = tuple(
            (name, attributes[name]) for name in _COUNTED if name in attributes
        )
        if state is not None:
            key += (("http.connection.state", state),)
        counts[key] = counts.get(key, 0) + change

    @staticmethod
    def _observeCounts(counts: dict[tuple[Any, ...], int]) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, dict(key)) for key, value in counts.items()]

        return observe

    # Request steps

    def requestQueued(self, trace: RequestTrace) -> None:
        self._event(trace, "queued")

    def requestDequeued(self, trace: RequestTrace, wait: float) -> None:
        self._event(trace, "dequeued", **{"pooled_http.wait": wait})

    def connectStarted(self, trace: RequestTrace) -> None:
        self._event(trace, "connect.start")

    def tunnelStarted(self, trace: RequestTrace, kind: str, proxy: str) -> None:
        self._event(
            trace,
            "tunnel.start",
            **{"pooled_http.tunnel": kind, "pooled_http.proxy": proxy},
        )

    def tunnelDone(self, trace: RequestTrace, kind: str, proxy: str) -> None:
        self._event(trace, "tunnel.done", **{"pooled_http.tunnel": kind})

    def connectDone(self, trace: RequestTrace, connectionId: int) -> None:
        self._event(trace, "connect.done", **{"pooled_http.connection": connectionId})
        attributes = keyAttributes(trace.key)
        self._connections[connectionId] = ["active", attributes, trace.now]
        self._count(self._openCounts, attributes, 1, "active")
        self._opening[connectionId] = trace

    def connectFailed(self, trace: RequestTrace, reason: Failure) -> None:
        self._event(trace, "connect.failed", **{"pooled_http.error": errorType(reason)})

    def tlsHandshakeStarted(self, key: Hashable, connectionId: int) -> None:
        trace = self._opening.get(connectionId)
        if trace is not None and not trace.finished:
            self._event(trace, "tls.start")

    def tlsHandshakeDone(self, key: Hashable, connectionId: int) -> None:
        trace = self._opening.pop(connectionId, None)
        if trace is not None and not trace.finished:
            self._event(trace, "tls.done")

    def connectionAcquired(
        self, trace: RequestTrace, connectionId: int, reused: bool
    ) -> None:
        self._event(
            trace,
            "connection.acquired",
            **{"pooled_http.connection": connectionId, "pooled_http.reused": reused},
        )
        if reused:
            self._move(connectionId, "active")

    def requestStarting(self, trace: RequestTrace, request: Any) -> None:
        attempt = self._attempt(trace)
        span = attempt.span
        method = text(request.method)
        span.update_name(method)
        attributes = attempt.attributes
        attributes["http.request.method"] = method
        parsedURI = getattr(request, "_parsedURI", None)
        if parsedURI is not None:
            attributes.update(
                {
                    "url.scheme": text(parsedURI.scheme),
                    "server.address": hostOf(parsedURI.host),
                    "server.port": parsedURI.port,
                }
            )
            span.set_attribute("url.full", fullURL(parsedURI))
        span.set_attributes(attributes)
        queueAttributes = dict(attributes)
        queueAttributes.pop("http.request.resend_count", None)
        self._queue.record(trace.wait, queueAttributes)
        attempt.active = True
        self._count(self._activeCounts, attributes, 1)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=oteltrace.set_span_in_context(span))
        if carrier:
            headers = request.headers.copy()
            for name, value in carrier.items():
                headers.setRawHeaders(name.encode("ascii"), [value.encode("ascii")])
            request.headers = headers

    def requestHeadersSent(self, trace: RequestTrace) -> None:
        self._event(trace, "request.headers_sent")

    def requestBodySent(self, trace: RequestTrace) -> None:
        self._event(trace, "request.body_sent")

    def responseHeadersReceived(
        self, trace: RequestTrace, status: int, version: tuple[Any, ...]
    ) -> None:
        self._event(
            trace, "response.headers_received", **{"http.response.status_code": status}
        )

    def responseBodyDone(self, trace: RequestTrace) -> None:
        self._event(trace, "response.body_done")
        self._finish(trace, None)

    def requestFailed(self, trace: RequestTrace, reason: Failure) -> None:
        self._finish(trace, reason)

    def requestRetried(
        self, trace: RequestTrace, reason: Failure, retry: RequestTrace
    ) -> None:
        self._attempt(retry, self._attempt(trace).parent)

    def streamOpened(self, trace: RequestTrace, streamId: int) -> None:
        self._event(trace, "stream.opened", **{"pooled_http.stream": streamId})

    # Connections

    def _move(self, connectionId: int, state: str) -> None:
        known = self._connections.get(connectionId)
        if known is None or known[0] == state:
            return
        attributes = known[1]
        self._count(self._openCounts, attributes, -1, known[0])
        self._count(self._openCounts, attributes, 1, state)
        known[0] = state

    def connectionReleased(self, key: Hashable, connectionId: int, kept: bool) -> None:
        if kept:
            self._move(connectionId, "idle")

    def connectionClosed(self, key: Hashable, connectionId: int, reason: str) -> None:
        self._opening.pop(connectionId, None)
        known = self._connections.pop(connectionId, None)
        if known is None:
            return
        state, attributes, openedAt = known
        self._count(self._openCounts, attributes, -1, state)
        self._connectionDuration.record(
            max(0.0, self._reactor.seconds() - openedAt), attributes
        )
