"""A counter store slower than the refill lock's TTL: the refiller keeps its lock and its range."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from refiller.pool_writer import LOCK_TTL_MS
from refiller.sqlite_store import BUSY_TIMEOUT_MS
from tests.support import Processes, RedisServer, wait_until

pytestmark = pytest.mark.faults

POOL = "mini-forge:pool"
ONE_RANGE_POOL = {
    "POOL_TARGET": "1000",
    "POOL_LOW_WATERMARK": "500",
    "RANGE_SIZE": "1000",
    "RANGE_SIZE_MAX": "1000",
}


def test_a_reservation_slower_than_the_lock_ttl_is_pushed_not_abandoned(
    processes: Processes, redis_server: RedisServer, tmp_path: Path
) -> None:
    stall_seconds = LOCK_TTL_MS / 1000 + 1.5
    assert stall_seconds < BUSY_TIMEOUT_MS / 1000  # the store waits; it does not give up
    counter_file = tmp_path / "counter.db"
    client = redis_server.client()
    processes.refiller(**ONE_RANGE_POOL)
    wait_until(lambda: client.llen(POOL) == 1000, 30, "the first range in the pool")

    holder = sqlite3.connect(counter_file, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # the next reservation waits for this
    try:
        client.lpop(POOL, 600)  # below the low watermark: the refiller takes its lock
        wait_until(lambda: client.exists(f"{POOL}:lock"), 10, "the refiller to take its lock")
        time.sleep(stall_seconds)
        assert client.exists(f"{POOL}:lock"), "the lock lapsed while the refiller waited"
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    wait_until(lambda: client.llen(POOL) >= 1000, 30, "the second range in the pool")
    with sqlite3.connect(counter_file) as reader:
        (position,) = reader.execute("SELECT value FROM counters").fetchone()
    assert position == 2000, "a range was abandoned and another reserved"
    assert "abandoned" not in processes.log("refiller")
