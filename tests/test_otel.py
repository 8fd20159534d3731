"""
L{pooled_http.otel}: spans, their attributes and events, the trace context
in the request headers, and metric points, read back from the OpenTelemetry
SDK's in-memory span exporter and metric reader, for a request, a retry, a
timeout and a pool wait.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from tests.faults._base import FaultTestCase
from tests.faults.test_connection_faults import closeReusedRequests
from tests.support.servers import ReceivedRequest, ScriptedConnection, okScript

try:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )
    from opentelemetry.trace import SpanKind, StatusCode

    from pooled_http import otel
except ImportError:  # pragma: no cover
    otel = None  # type: ignore[assignment]

from pooled_http import PooledAgent


def slowScript(connection: ScriptedConnection, request: ReceivedRequest) -> None:
    """
    Answer after a fifth of a second.
    """
    connection.later(0.2, okScript, connection, request)


class OpenTelemetryTests(FaultTestCase):
    """
    A pool instrumented with in-memory exporters.
    """

    if otel is None:
        skip = "opentelemetry-sdk is not installed (pip install pooled_http[otel])"

    def setUp(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracerProvider = TracerProvider()
        self.tracerProvider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meterProvider = MeterProvider(metric_readers=[self.reader])

    def instrumentedAgent(self, **poolOptions: Any) -> PooledAgent:
        from twisted.internet import reactor

        pool = self.makePool(**poolOptions)
        otel.instrument(pool, self.tracerProvider, self.meterProvider)
        self.addCleanup(otel.uninstrument, pool)
        return PooledAgent(reactor, pool=pool)

    def metric(self, name: str) -> list[Any]:
        """
        The data points of metric C{name}.
        """
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points

    def eventNames(self, span: Any) -> list[str]:
        return [event.name for event in span.events]

    async def test_request(self) -> None:
        """
        One request: one CLIENT span named after the method, child of the
        caller's span, with the semantic conventions' attributes, one event
        per step, its context sent in C{traceparent}; metric points for the
        duration, the wait, active requests and connections by state.
        """
        server = self.startServer()
        agent = self.instrumentedAgent()
        tracer = self.tracerProvider.get_tracer("test")
        url = b"http://127.0.0.1:%d/path?sig=secret&x=1#frag" % (server.port,)
        with tracer.start_as_current_span("caller") as parent:
            d = defer.ensureDeferred(self.fetchOk(agent, url))
        await d
        spans = [s for s in self.exporter.get_finished_spans() if s.name != "caller"]
        (span,) = spans
        self.assertEqual(span.name, "GET")
        self.assertEqual(span.kind, SpanKind.CLIENT)
        self.assertEqual(span.parent.span_id, parent.get_span_context().span_id)
        attributes = dict(span.attributes)
        self.assertEqual(
            attributes,
            {
                "http.request.method": "GET",
                "url.full": f"http://127.0.0.1:{server.port}/path?sig=REDACTED&x=1",
                "url.scheme": "http",
                "server.address": "127.0.0.1",
                "server.port": server.port,
                "http.response.status_code": 200,
                "network.protocol.version": "1.1",
            },
        )
        self.assertEqual(
            self.eventNames(span),
            [
                "pooled_http.connect.start",
                "pooled_http.connect.done",
                "pooled_http.connection.acquired",
                "pooled_http.request.headers_sent",
                "pooled_http.request.body_sent",
                "pooled_http.response.headers_received",
                "pooled_http.response.body_done",
            ],
        )
        self.assertNotEqual(span.status.status_code, StatusCode.ERROR)
        traceparent = server.requests[0].header(b"traceparent")
        assert traceparent is not None
        self.assertIn(f"{span.context.trace_id:032x}".encode(), traceparent)
        self.assertIn(f"{span.context.span_id:016x}".encode(), traceparent)

        (duration,) = self.metric("http.client.request.duration")
        self.assertEqual(duration.count, 1)
        self.assertEqual(
            dict(duration.attributes),
            {
                "http.request.method": "GET",
                "url.scheme": "http",
                "server.address": "127.0.0.1",
                "server.port": server.port,
                "http.response.status_code": 200,
                "network.protocol.version": "1.1",
            },
        )
        (queue,) = self.metric("http.client.request.time_in_queue")
        self.assertEqual((queue.count, queue.sum), (1, 0.0))
        (active,) = self.metric("http.client.active_requests")
        self.assertEqual(active.value, 0)
        byState = {
            p.attributes["http.connection.state"]: p.value
            for p in self.metric("http.client.open_connections")
        }
        self.assertEqual(byState, {"active": 0, "idle": 1})
        await agent.pool.close()  # type: ignore[attr-defined]
        (connection,) = self.metric("http.client.connection.duration")
        self.assertEqual(connection.count, 1)
        byState = {
            p.attributes["http.connection.state"]: p.value
            for p in self.metric("http.client.open_connections")
        }
        self.assertEqual(byState, {"active": 0, "idle": 0})

    async def test_retry(self) -> None:
        """
        A retried GET: the failed attempt's span has C{error.type}; the
        retry's span has C{http.request.resend_count} 1 and the same parent.
        """
        server = self.startServer(closeReusedRequests)
        agent = self.instrumentedAgent()
        await self.fetchOk(agent, server.url())
        self.exporter.clear()
        tracer = self.tracerProvider.get_tracer("test")
        with tracer.start_as_current_span("caller") as parent:
            d = defer.ensureDeferred(self.fetchOk(agent, server.url()))
        await d
        spans = [s for s in self.exporter.get_finished_spans() if s.name != "caller"]
        first, second = sorted(spans, key=lambda s: s.start_time)
        self.assertEqual(first.status.status_code, StatusCode.ERROR)
        self.assertIn("error.type", first.attributes)
        self.assertNotIn("http.request.resend_count", first.attributes)
        self.assertEqual(second.attributes["http.request.resend_count"], 1)
        self.assertEqual(second.attributes["http.response.status_code"], 200)
        self.assertNotIn("error.type", second.attributes)
        parentId = parent.get_span_context().span_id
        self.assertEqual([first.parent.span_id, second.parent.span_id], [parentId] * 2)
        self.assertEqual(
            sum(p.count for p in self.metric("http.client.request.duration")), 3
        )

    async def test_timeout(self) -> None:
        """
        A response timeout: the span ends in error with the pool's error
        type, and the duration is recorded with it.
        """
        server = self.startServer(lambda connection, request: None)
        agent = self.instrumentedAgent(responseTimeout=0.05, retryAutomatically=False)
        await self.failureOf(agent.request(b"GET", server.url()))
        (span,) = self.exporter.get_finished_spans()
        self.assertEqual(span.status.status_code, StatusCode.ERROR)
        self.assertEqual(
            span.attributes["error.type"], "pooled_http.errors.ResponseTimeoutError"
        )
        self.assertNotIn("http.response.status_code", span.attributes)
        self.assertEqual([e.name for e in span.events][-1], "exception")
        (duration,) = self.metric("http.client.request.duration")
        self.assertEqual(
            duration.attributes["error.type"], "pooled_http.errors.ResponseTimeoutError"
        )

    async def test_poolWait(self) -> None:
        """
        A request that waits for the pool's only connection has the queue
        events; a third one times out in the queue, and its wait is
        recorded too.
        """
        server = self.startServer(slowScript)
        agent = self.instrumentedAgent(maxConnectionsPerHost=1, poolTimeout=0.3)
        first = defer.ensureDeferred(self.fetchOk(agent, server.url()))
        second = defer.ensureDeferred(self.fetchOk(agent, server.url()))
        third = agent.request(b"GET", server.url())
        await first
        await second
        from pooled_http import PoolTimeoutError

        error = await self.failureOf(third)
        self.assertIsInstance(error, PoolTimeoutError)
        spans = sorted(self.exporter.get_finished_spans(), key=lambda s: s.start_time)
        self.assertEqual(len(spans), 3)
        waited = spans[1]
        names = self.eventNames(waited)
        self.assertEqual(
            names[:3],
            [
                "pooled_http.queued",
                "pooled_http.dequeued",
                "pooled_http.connection.acquired",
            ],
        )
        self.assertGreater(waited.events[1].attributes["pooled_http.wait"], 0.0)
        timedOut = spans[2]
        self.assertEqual(timedOut.name, "HTTP")
        self.assertEqual(
            timedOut.attributes["error.type"], "pooled_http.errors.PoolTimeoutError"
        )
        self.assertEqual(timedOut.attributes["server.address"], "127.0.0.1")
        # Never handed to a connection: the conventions' "_OTHER" method.
        self.assertEqual(timedOut.attributes["http.request.method"], "_OTHER")
        queued = self.metric("http.client.request.time_in_queue")
        self.assertEqual(sum(p.count for p in queued), 3)
        self.assertGreater(max(p.max for p in queued), 0.0)

    async def test_noEvents(self) -> None:
        """
        With C{events=False} the span has its attributes and no event, and
        still starts before the wait for a connection.
        """
        server = self.startServer(slowScript)
        from twisted.internet import reactor

        pool = self.makePool(maxConnectionsPerHost=1)
        otel.instrument(pool, self.tracerProvider, self.meterProvider, events=False)
        self.addCleanup(otel.uninstrument, pool)
        agent = PooledAgent(reactor, pool=pool)
        first = defer.ensureDeferred(self.fetchOk(agent, server.url()))
        second = defer.ensureDeferred(self.fetchOk(agent, server.url()))
        await first
        await second
        spans = sorted(self.exporter.get_finished_spans(), key=lambda s: s.start_time)
        self.assertEqual([len(s.events) for s in spans], [0, 0])
        self.assertEqual(spans[1].attributes["http.response.status_code"], 200)
        # Both started at once; the second waited for the first's connection.
        self.assertLess(spans[1].start_time, spans[0].end_time)

    async def test_uninstrument(self) -> None:
        """
        After C{uninstrument} no span is made and no C{traceparent} sent;
        instrumenting twice is refused.
        """
        server = self.startServer()
        agent = self.instrumentedAgent()
        pool: Any = agent.pool
        self.assertRaises(ValueError, otel.instrument, pool)
        otel.uninstrument(pool)
        self.assertEqual(pool.observers, ())
        await self.fetchOk(agent, server.url())
        self.assertEqual(self.exporter.get_finished_spans(), ())
        self.assertIsNone(server.requests[0].header(b"traceparent"))

    async def test_uninstrumentForgetsConnections(self) -> None:
        """
        After C{uninstrument} the pool's connections, which the observer
        no longer hears about, are no longer counted as open.
        """
        server = self.startServer()
        agent = self.instrumentedAgent()
        await self.fetchOk(agent, server.url())
        byState = {
            p.attributes["http.connection.state"]: p.value
            for p in self.metric("http.client.open_connections")
        }
        self.assertEqual(byState, {"active": 0, "idle": 1})
        otel.uninstrument(agent.pool)
        await agent.pool.close()  # type: ignore[attr-defined]
        byState = {
            p.attributes["http.connection.state"]: p.value
            for p in self.metric("http.client.open_connections")
        }
        self.assertEqual(byState, {"active": 0, "idle": 0})

    def test_notAPool(self) -> None:
        """
        Instrumenting what is not a pool (an agent, L{None}) is a
        L{TypeError} naming C{pool}.
        """
        from twisted.internet import reactor

        for wrong in (None, object(), PooledAgent(reactor, pool=self.makePool())):
            error = self.assertRaises(TypeError, otel.instrument, wrong)
            self.assertIn("pool must be an HTTPConnectionPool", str(error))
