"""The refiller holds a reserved range and pushes it chunk by chunk as the pool needs it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from refiller.counter import CounterStore, open_counter_store
from refiller.loop import Refiller
from refiller.mapping import mapping_identity
from refiller.metrics import RefillerMetrics
from refiller.pool_writer import PoolWriter
from refiller.reporting import StatusReporter
from shared.codec import KeyCodec
from shared.pool import PoolNames
from shared.settings import Settings, load_settings
from tests.support import RedisServer

NAMES = PoolNames("test:pool")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CounterStore]:
    codec = KeyCodec(7)
    opened = open_counter_store(
        f"sqlite:///{tmp_path / 'counter.db'}", codec.keyspace_size, mapping_identity(codec)
    )
    yield opened
    opened.close()


def refiller(server: RedisServer, store: CounterStore, **settings: str) -> Refiller:
    values = {"REDIS_URL": server.url, "POOL_KEY": NAMES.pool, **settings}
    loaded: Settings = load_settings(values, dotenv_path=None)
    client = server.client()
    writer = PoolWriter(client, NAMES)
    codec = KeyCodec(7)
    reporter = StatusReporter(client, NAMES, writer.token, {})
    return Refiller(
        loaded,
        store,
        writer,
        codec,
        threading.Event(),
        metrics=RefillerMetrics(codec.keyspace_size),
        reporter=reporter,
    )


BIG_RANGE = {
    "RANGE_SIZE": "100000",
    "RANGE_SIZE_MIN": "100000",
    "RANGE_SIZE_MAX": "100000",
    "POOL_TARGET": "20000",
    "POOL_LOW_WATERMARK": "10000",
    "PUSH_CHUNK_SIZE": "5000",
}


def test_a_range_larger_than_the_pool_is_pushed_as_the_pool_needs_it(
    redis_server: RedisServer, store: CounterStore
) -> None:
    client = redis_server.client()
    loop = refiller(redis_server, store, **BIG_RANGE)

    loop.refill_once()
    assert client.llen(NAMES.pool) == 20_000
    assert store.position() == 100_000  # one reservation, mostly still held

    served = client.lrange(NAMES.pool, 0, 14_999)
    client.ltrim(NAMES.pool, 15_000, -1)
    loop.refill_once()
    assert client.llen(NAMES.pool) == 20_000
    assert store.position() == 100_000  # refilled from the held range

    served += client.lrange(NAMES.pool, 0, -1)
    assert served == KeyCodec(7).encode_range(0, 35_000)


def test_a_new_range_is_reserved_only_when_the_held_one_is_used_up(
    redis_server: RedisServer, store: CounterStore
) -> None:
    client = redis_server.client()
    loop = refiller(redis_server, store, **{**BIG_RANGE, "POOL_TARGET": "60000"})
    served: list[bytes | str] = []

    for _ in range(4):
        loop.refill_once()
        served += client.lrange(NAMES.pool, 0, 54_999)
        client.ltrim(NAMES.pool, 55_000, -1)
    served += client.lrange(NAMES.pool, 0, -1)

    assert served == KeyCodec(7).encode_range(0, len(served))  # no gaps, no repeats
    ranges_needed = -(-len(served) // 100_000)
    assert store.position() == ranges_needed * 100_000


def test_a_redis_restart_abandons_the_held_range(
    redis_server: RedisServer, store: CounterStore
) -> None:
    loop = refiller(redis_server, store, **BIG_RANGE)
    loop.refill_once()
    first = redis_server.client().lrange(NAMES.pool, 0, -1)

    redis_server.kill()
    redis_server.start()
    loop.refill_once()

    after = redis_server.client().lrange(NAMES.pool, 0, -1)
    assert len(after) == 20_000
    assert not set(after) & set(first)
    assert after[0] == KeyCodec(7).encode(100_000).encode()  # the held rest is a gap
    assert store.position() == 200_000
