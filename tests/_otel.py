"""OpenTelemetry SDK helpers for the tests: in-memory span and metric exporters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def instrumented(**kw: Any) -> Iterator[tuple[Any, Any]]:
    """``vllm_client.instrument()`` with an in-memory span exporter and metric reader; yields
    (spans, reader) and uninstruments afterwards."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import vllm_client

    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    vllm_client.instrument(tracer_provider=tp, meter_provider=mp, **kw)
    try:
        yield spans, reader
    finally:
        vllm_client.uninstrument()


def points(reader: Any) -> dict[str, list[Any]]:
    """Metric name -> its data points, as the reader has them now."""
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out
