"""The API's Prometheus metrics, correct with any number of uvicorn workers.

`mini-forge api` sets PROMETHEUS_MULTIPROC_DIR before any worker starts (see api/server.py),
so every worker writes its values to files there and a scrape of any worker sums them all.
The counters move once per pop of the KeySource pump (one per batch of requests), not once
per request, so the hot path stays lean. The pool length is read from Redis at scrape time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

KEYS_SERVED = Counter("mini_forge_keys_served", "Keys handed out to requests", registry=None)
UNAVAILABLE = Counter(
    "mini_forge_unavailable_responses",
    "Requests answered 503, by reason",
    ["reason"],
    registry=None,
)
POP_SECONDS = Histogram(
    "mini_forge_pop_seconds",
    "Latency of one pool pop (one Redis call that serves a batch of waiting requests)",
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=None,
)


class _ScrapeTimeReadings(Collector):
    """What was read from Redis for this scrape: whether it answered, and the pool length."""

    def __init__(self, pool_length: int | None) -> None:
        self._pool_length = pool_length

    def collect(self) -> list[Metric]:
        readings: list[Metric] = [
            GaugeMetricFamily(
                "mini_forge_redis_up",
                "1 if Redis answered this scrape",
                value=int(self._pool_length is not None),
            )
        ]
        if self._pool_length is not None:
            readings.append(
                GaugeMetricFamily(
                    "mini_forge_pool_length", "Keys waiting in the pool", value=self._pool_length
                )
            )
        return readings


def exposition(pool_length: int | None) -> bytes:
    """The metrics in Prometheus text format; `pool_length` is None when Redis did not answer."""
    registry = CollectorRegistry()
    # Ask how values are actually stored: prometheus-client chose when it was first imported.
    if values.ValueClass is not values.MutexValue:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in (KEYS_SERVED, UNAVAILABLE, POP_SECONDS):
            registry.register(metric)
    registry.register(_ScrapeTimeReadings(pool_length))
    return generate_latest(registry)
