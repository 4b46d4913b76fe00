"""Coalescing against a real redis-server: distinct keys, and never a key more than asked."""

from __future__ import annotations

import asyncio
import signal

import redis

from api.key_source import KeySource, KeysUnavailableError
from refiller.pool_writer import PoolWriter
from shared.connections import async_redis_client
from shared.pool import PoolNames
from shared.settings import load_settings
from tests.support import RedisServer

NAMES = PoolNames("test:pool")


def fill_pool(server: RedisServer, count: int) -> list[bytes]:
    """Stamp the pool for this Redis process and push `count` distinct keys."""
    client = server.client()
    PoolWriter(client, NAMES).check()
    keys = [f"k{number:06d}".encode() for number in range(count)]
    if keys:
        client.rpush(NAMES.pool, *keys)
    return keys


def pop_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {"calls": 0})["calls"]) for name in ("evalsha", "eval")
    )


async def take_all(server: RedisServer, counts: list[int], wait_ms: int = 500) -> list[object]:
    settings = load_settings({"REDIS_URL": server.url}, dotenv_path=None)
    client = async_redis_client(settings)
    source = KeySource(client, NAMES, wait_ms / 1000)
    try:
        return await asyncio.gather(
            *(source.take(count) for count in counts), return_exceptions=True
        )
    finally:
        await source.close()
        await client.aclose()


def test_concurrent_requests_get_distinct_keys_and_exactly_what_they_asked(
    redis_server: RedisServer,
) -> None:
    pool = fill_pool(redis_server, 5000)
    counts = [1] * 400 + [7] * 50 + [100] * 5  # 1,250 keys for 455 requests
    client = redis_server.client()
    client.config_resetstat()

    results = asyncio.run(take_all(redis_server, counts))

    served = [result for result in results if isinstance(result, list)]
    assert [len(keys) for keys in served] == counts
    handed_out = [key for keys in served for key in keys]
    assert len(set(handed_out)) == len(handed_out) == sum(counts)
    # Exactly the first keys of the pool left it: nothing popped beyond the demand.
    assert sorted(handed_out) == pool[: sum(counts)]
    assert client.llen(NAMES.pool) == len(pool) - sum(counts)
    # Requests waiting together shared pops.
    assert pop_calls(client) < len(counts)


def test_keys_popped_for_a_request_that_times_out_are_dropped(redis_server: RedisServer) -> None:
    pool = fill_pool(redis_server, 12)

    results = asyncio.run(take_all(redis_server, [5, 5, 5], wait_ms=100))

    first, second, third = results
    assert first == pool[0:5]
    assert second == pool[5:10]
    assert isinstance(third, KeysUnavailableError)
    assert third.reason == "pool-empty"
    # The two keys popped for the third request were neither served nor put back.
    assert redis_server.client().llen(NAMES.pool) == 0


def test_an_empty_pool_answers_every_waiting_request_in_time(redis_server: RedisServer) -> None:
    fill_pool(redis_server, 0)

    results = asyncio.run(take_all(redis_server, [1, 3, 1], wait_ms=50))

    assert all(isinstance(result, KeysUnavailableError) for result in results)


def test_a_pool_from_another_redis_process_is_never_served(redis_server: RedisServer) -> None:
    fill_pool(redis_server, 10)
    redis_server.client().set(NAMES.stamp, "0" * 40)  # as after a restart from a snapshot

    (result,) = asyncio.run(take_all(redis_server, [1]))

    assert isinstance(result, KeysUnavailableError)
    assert result.reason == "pool-invalid"


def test_an_exhausted_keyspace_is_reported_once_the_pool_is_empty(
    redis_server: RedisServer,
) -> None:
    pool = fill_pool(redis_server, 2)
    redis_server.client().set(NAMES.exhausted, "1")

    first, second = asyncio.run(take_all(redis_server, [2, 1]))

    assert first == pool
    assert isinstance(second, KeysUnavailableError)
    assert second.reason == "keyspace-exhausted"


def test_a_redis_that_stops_answering_fails_the_waiting_requests_in_time(
    redis_server: RedisServer,
) -> None:
    pool = fill_pool(redis_server, 5)
    process = redis_server.process
    assert process is not None
    settings = load_settings(
        {"REDIS_URL": redis_server.url, "REDIS_TIMEOUT_MS": "300"}, dotenv_path=None
    )

    async def scenario() -> tuple[object, object]:
        client = async_redis_client(settings)
        source = KeySource(client, NAMES, 10)
        try:
            process.send_signal(signal.SIGSTOP)
            try:
                frozen = await asyncio.wait_for(
                    asyncio.gather(source.take(1), return_exceptions=True), timeout=5
                )
            finally:
                process.send_signal(signal.SIGCONT)
            return frozen[0], await source.take(2)
        finally:
            await source.close()
            await client.aclose()

    frozen, after = asyncio.run(scenario())

    assert isinstance(frozen, KeysUnavailableError)
    assert frozen.reason == "redis-unavailable"
    # Redis may or may not run the abandoned transaction once it wakes up: its key is then
    # a gap or still pooled, and either way served at most once.
    assert isinstance(after, list) and len(set(after)) == 2 and set(after) <= set(pool)


def test_requests_arriving_during_a_slow_pop_are_served_not_failed(
    redis_server: RedisServer,
) -> None:
    """A pop slower than the wait bound must not turn a full pool into 503 pool-empty."""
    pool = fill_pool(redis_server, 100)
    process = redis_server.process
    assert process is not None
    settings = load_settings({"REDIS_URL": redis_server.url}, dotenv_path=None)

    async def scenario() -> list[object]:
        client = async_redis_client(settings)
        source = KeySource(client, NAMES, 0.05)
        try:
            process.send_signal(signal.SIGSTOP)  # the first pop now takes 0.3 s
            first = asyncio.ensure_future(source.take(1))
            await asyncio.sleep(0.02)
            later = [asyncio.ensure_future(source.take(1)) for _ in range(5)]
            await asyncio.sleep(0.3)  # well past every request's 0.05 s wait
            process.send_signal(signal.SIGCONT)
            return await asyncio.gather(first, *later, return_exceptions=True)
        finally:
            process.send_signal(signal.SIGCONT)
            await source.close()
            await client.aclose()

    results = asyncio.run(scenario())

    assert all(isinstance(result, list) for result in results), results
    served = [key for result in results if isinstance(result, list) for key in result]
    assert len(served) == len(set(served)) == 6
    assert set(served) <= set(pool)
