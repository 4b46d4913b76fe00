"""The refiller process: open the counter store and Redis, run the refill loop until stopped.

SIGTERM and SIGINT set the stop flag: the chunk being pushed is finished, then the process
exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from refiller.counter import open_counter_store
from refiller.loop import Refiller
from refiller.pool_writer import PoolWriter
from shared.codec import KeyCodec, mapping_identity
from shared.connections import redis_client
from shared.pool import PoolNames
from shared.settings import Settings

log = logging.getLogger("mini_forge.refiller")


def run_refiller(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT. Raises CounterStoreError or CounterWentBackError."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping after the current chunk", extra={"signal": signal.strsignal(signum)})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    codec = KeyCodec(settings.KEY_LENGTH)
    store = open_counter_store(settings.DATABASE_URL, codec.keyspace_size, mapping_identity(codec))
    client = redis_client(settings)
    try:
        writer = PoolWriter(client, PoolNames(settings.POOL_KEY))
        log.info(
            "refiller started",
            extra={
                "pool": settings.POOL_KEY,
                "low_watermark": settings.POOL_LOW_WATERMARK,
                "target": settings.POOL_TARGET,
                "position": store.position(),
                "lock_token": writer.token,
            },
        )
        Refiller(settings, store, writer, codec, stop).run()
        log.info("refiller stopped")
    finally:
        client.close()
        store.close()
