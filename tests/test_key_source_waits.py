"""KeySource wait bounds, with a scripted stand-in for Redis (pure logic, no timing asserts)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from api.key_source import KeySource, KeysUnavailableError
from shared.pool import PoolNames


class SlowPool:
    """Answers pops from a list of keys, each pop taking `pop_seconds`."""

    def __init__(self, keys: list[bytes], pop_seconds: float) -> None:
        self.keys = keys
        self.pop_seconds = pop_seconds
        self.pops: list[int] = []

    def register_script(self, _source: str) -> Callable[..., Awaitable[Any]]:
        async def pop(keys: list[str], args: list[int]) -> list[bytes]:
            self.pops.append(args[0])
            await asyncio.sleep(self.pop_seconds)
            taken, self.keys = self.keys[: args[0]], self.keys[args[0] :]
            return taken

        return pop


def source(pool: SlowPool, wait_seconds: float) -> KeySource:
    return KeySource(pool, PoolNames("pool"), wait_seconds)  # type: ignore[arg-type]


def test_requests_arriving_during_a_slow_pop_are_served_not_failed() -> None:
    """A pop slower than the wait bound must not turn a full pool into 503 pool-empty."""
    pool = SlowPool([f"key{n:04d}".encode() for n in range(100)], pop_seconds=0.15)

    async def scenario() -> list[list[str]]:
        keys = source(pool, wait_seconds=0.05)
        first = asyncio.ensure_future(keys.take(1))
        await asyncio.sleep(0.01)  # the first pop is now in flight
        later = [asyncio.ensure_future(keys.take(1)) for _ in range(5)]
        return await asyncio.gather(first, *later)

    results = asyncio.run(scenario())
    served = [key for batch in results for key in batch]
    assert len(served) == len(set(served)) == 6
    assert pool.pops == [1, 5]


def test_an_empty_pool_fails_each_request_once_its_wait_is_over() -> None:
    pool = SlowPool([], pop_seconds=0.0)

    async def scenario() -> None:
        with pytest.raises(KeysUnavailableError) as caught:
            await source(pool, wait_seconds=0.05).take(1)
        assert caught.value.reason == "pool-empty"

    asyncio.run(scenario())
    assert len(pool.pops) > 1, "the source polls the pool during the wait"
