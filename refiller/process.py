"""The refiller process: open the counter store and Redis, run the refill loop until stopped.

SIGTERM and SIGINT set the stop flag: the chunk being pushed is finished, then the process
exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from types import FrameType

import redis

from refiller.counter import open_counter_store
from refiller.loop import Refiller
from refiller.mapping import make_codec, mapping_identity
from refiller.metrics import RefillerMetrics
from refiller.pool_writer import PoolWriter
from refiller.reporting import StatusReporter
from shared.connections import redis_client
from shared.pool import PoolNames
from shared.redact import redact_url
from shared.settings import Settings, SettingsError

log = logging.getLogger("mini_forge.refiller")


def run_refiller(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT. Raises CounterStoreError or CounterWentBackError."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping after the current chunk", extra={"signal": signal.strsignal(signum)})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    codec = make_codec(settings)
    store = open_counter_store(
        settings.DATABASE_URL, codec.keyspace_size, mapping_identity(codec), stop
    )
    client = redis_client(settings)
    metrics = RefillerMetrics(codec.keyspace_size)
    try:
        position = store.position()
        metrics.counter_at(position)
        if settings.METRICS_PORT:
            try:
                metrics.serve(settings.HOST, settings.METRICS_PORT)
            except OSError as error:
                raise SettingsError(
                    f"METRICS_PORT={settings.METRICS_PORT}: cannot listen on "
                    f"{settings.HOST} ({error.strerror})"
                ) from None
        names = PoolNames(settings.POOL_KEY)
        writer = PoolWriter(client, names)
        log.info(
            "refiller started",
            extra={
                "redis": redact_url(settings.REDIS_URL),
                "counter_store": redact_url(settings.DATABASE_URL),
                "pool": settings.POOL_KEY,
                "low_watermark": settings.POOL_LOW_WATERMARK,
                "target": settings.POOL_TARGET,
                "position": position,
                "metrics_port": settings.METRICS_PORT,
                "lock_token": writer.token,
            },
        )
        reporter = StatusReporter(
            client,
            names,
            writer.token,
            {
                "low_watermark": settings.POOL_LOW_WATERMARK,
                "target": settings.POOL_TARGET,
                "range_size": settings.RANGE_SIZE,
            },
        )
        Refiller(settings, store, writer, codec, stop, metrics=metrics, reporter=reporter).run()
        with contextlib.suppress(redis.RedisError):
            reporter.stopped()
        log.info("refiller stopped")
    finally:
        client.close()
        store.close()
