"""The refiller's Prometheus metrics, served on METRICS_PORT (0 = not served).

The refiller is one process, so its numbers are plain attributes that a collector turns
into metrics at scrape time; nothing here depends on prometheus-client's multiprocess mode
(which the API uses), so both can run with the same environment.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from refiller.counter import Range


class RefillerMetrics(Collector):
    """Counts what one refiller did; `serve()` exposes them over HTTP."""

    def __init__(self, keyspace_size: int) -> None:
        self.keyspace_size = keyspace_size
        self.ranges_reserved = 0
        self.keys_pushed = 0
        self.reservation_seconds_sum = 0.0
        self.range_size = 0
        self.pool_length = 0
        self.keyspace_remaining = keyspace_size

    def serve(self, host: str, port: int) -> None:
        """Answer scrapes on host:port from a daemon thread."""
        registry = CollectorRegistry()
        registry.register(self)
        start_http_server(port, addr=host, registry=registry)

    def counter_at(self, position: int) -> None:
        self.keyspace_remaining = self.keyspace_size - position

    def reserved(self, reserved: Range, seconds: float) -> None:
        self.ranges_reserved += 1
        self.reservation_seconds_sum += seconds
        self.range_size = len(reserved)
        self.counter_at(reserved.end)

    def pushed(self, keys: int, pool_length: int) -> None:
        self.keys_pushed += keys
        self.pool_length = pool_length

    def collect(self) -> list[Metric]:
        prefix = "mini_forge_refiller"
        return [
            CounterMetricFamily(
                f"{prefix}_ranges_reserved", "Ranges reserved", value=self.ranges_reserved
            ),
            CounterMetricFamily(
                f"{prefix}_keys_pushed", "Keys pushed onto the pool", value=self.keys_pushed
            ),
            SummaryMetricFamily(
                f"{prefix}_reservation_seconds",
                "Time to reserve one range in the counter store",
                count_value=self.ranges_reserved,
                sum_value=self.reservation_seconds_sum,
            ),
            GaugeMetricFamily(
                f"{prefix}_range_size", "Size of the last range reserved", value=self.range_size
            ),
            GaugeMetricFamily(
                f"{prefix}_pool_length", "Pool length last seen", value=self.pool_length
            ),
            GaugeMetricFamily(
                f"{prefix}_keyspace_remaining",
                "Numbers of the keyspace not yet reserved",
                value=self.keyspace_remaining,
            ),
        ]
