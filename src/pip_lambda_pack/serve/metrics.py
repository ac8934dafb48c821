"""``GET /metrics``: Prometheus text of the service's invocations, per function.

prometheus_client keeps the counters and writes the exposition format; every series is
labelled by ``function``. A registry per service, so two services in one process (tests)
count apart.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .model import Outcome

CONTENT_TYPE = CONTENT_TYPE_LATEST
disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series say nothing a scrape needs
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._series: dict[str, tuple[Any, ...]] = {}
        label = ["function"]

        def counter(name: str, text: str) -> Counter:
            return Counter(name, text, label, registry=self.registry)

        self.invocations = counter("lambda_pack_invocations", "Invocations answered")
        self.errors = counter("lambda_pack_errors", "Invocations that ended in a function error")
        self.cold = counter("lambda_pack_cold_starts", "Invocations that started an environment")
        self.warm = counter("lambda_pack_warm_starts", "Invocations on a warm environment")
        self.throttles = counter("lambda_pack_throttles", "Invocations refused with 429")
        self.hits = counter("lambda_pack_cache_hits", "Blobs found in the worker cache")
        self.misses = counter("lambda_pack_cache_misses", "Blobs fetched from the store")
        self.fetched = counter("lambda_pack_fetched_bytes", "Bytes fetched from the store")
        self.duration = Histogram(
            "lambda_pack_duration_seconds",
            "Invocation duration",
            label,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.init = Histogram(
            "lambda_pack_init_duration_seconds",
            "Environment init duration (cold starts)",
            label,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.environments = Gauge(
            "lambda_pack_environments", "Environments alive", label, registry=self.registry
        )

    def record(self, name: str, outcome: Outcome) -> None:
        """Count one finished invocation."""
        series = self._series.get(name)
        if series is None:  # the labelled series of the warm path, looked up once per function
            labelled = (self.invocations, self.duration, self.warm)
            series = self._series[name] = tuple(m.labels(name) for m in labelled)
        invocations, duration, warm_starts = series
        invocations.inc()
        if outcome.error_type is not None:
            self.errors.labels(name).inc()
        duration.observe(outcome.duration_ms / 1000)
        if not outcome.cold:
            warm_starts.inc()
            return
        self.cold.labels(name).inc()
        if outcome.init_ms is not None:
            self.init.labels(name).observe(outcome.init_ms / 1000)
        figures = outcome.provisioning
        self.hits.labels(name).inc(int(figures.get("hits", 0)))
        self.misses.labels(name).inc(int(figures.get("misses", 0)))
        self.fetched.labels(name).inc(int(figures.get("bytes_fetched", 0)))

    def text(self, environments: dict[str, int]) -> bytes:
        """The exposition text, with the environments alive per function now."""
        self.environments.clear()
        for name, count in environments.items():
            self.environments.labels(name).set(count)
        return generate_latest(self.registry)
