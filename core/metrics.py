"""Prometheus metrics: names shared by the API and the workers.

Counters and histograms live in the process that observes them (the API's requests, a
worker's tasks). Figures that are facts about the system (jobs by status, faces indexed,
queue depth) are read at scrape time from their source of truth, so every API process
reports the same numbers and nothing drifts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

NAMESPACE = "facesearch"

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests by route and status",
    ["method", "route", "status"],
    namespace=NAMESPACE,
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TASK_DURATION = Histogram(
    "task_duration_seconds",
    "Celery task run time by task and outcome",
    ["task", "outcome"],
    namespace=NAMESPACE,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
MODEL_LOAD_SECONDS = Gauge(
    "model_load_seconds",
    "Time to load the face pipeline in this worker process",
    ["model"],
    namespace=NAMESPACE,
    multiprocess_mode="max",
)


class StateCollector(Collector):
    """Gauges read at scrape time: ``read()`` returns rows of (metric, help, labels, value)."""

    def __init__(self, read: Callable[[], list[tuple[str, str, dict[str, str], float]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for name, help_text, labels, value in self._read():
            family = families.get(name)
            if family is None:
                family = GaugeMetricFamily(f"{NAMESPACE}_{name}", help_text, labels=list(labels))
                families[name] = family
            family.add_metric(list(labels.values()), value)
        yield from families.values()


def render(*extra: CollectorRegistry) -> bytes:
    """The text exposition of this process's metrics (all processes' when
    PROMETHEUS_MULTIPROC_DIR is set: gunicorn workers, prefork children), then ``extra``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own = CollectorRegistry()
        multiprocess.MultiProcessCollector(own)
        output = generate_latest(own)
    else:
        output = generate_latest(REGISTRY)
    return output + b"".join(generate_latest(registry) for registry in extra)


def start_metrics_server(port: int, host: str) -> None:
    """Serve /metrics from a background thread (a worker has no web server of its own)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, addr=host, registry=registry)
    else:
        start_http_server(port, addr=host)
