"""
What a benchmark run of pooled_http observes: nothing (the default), a
no-op trace observer, or OpenTelemetry with the SDK, picked with
C{run.py --observer} (C{none}, C{noop}, C{otel}, C{otel-noevents}: spans
without the per-step events), which sets C{POOLED_HTTP_BENCH_OBSERVER} for the
client processes.

C{otel} uses the SDK's tracer provider with a span processor that exports
each finished span to an exporter that drops it, and a meter provider
with an in-memory reader: the cost of making the spans, events and metric
points, not of shipping them.
"""

from __future__ import annotations

import os
from typing import Any

OBSERVERS = ("none", "noop", "otel", "otel-noevents")


def observe(pool: Any) -> None:
    """
    Attach the observer the run asked for to C{pool}.

    @param pool: A pooled_http pool.
    """
    which = os.environ.get("POOLED_HTTP_BENCH_OBSERVER", "none")
    if which == "none":
        return
    if which == "noop":
        from pooled_http.trace import TraceObserver

        pool.addObserver(TraceObserver())
        return
    if which not in ("otel", "otel-noevents"):
        raise ValueError(f"POOLED_HTTP_BENCH_OBSERVER must be one of {OBSERVERS}")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from pooled_http import otel

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracerProvider = TracerProvider()
    tracerProvider.add_span_processor(SimpleSpanProcessor(Drop()))
    meterProvider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    otel.instrument(pool, tracerProvider, meterProvider, events=which == "otel")
