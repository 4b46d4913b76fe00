"""Coalesced, bounded pops from the Redis pool.

Every request that wants keys joins a queue. One pump per process lets the requests already
arriving join, then pops, in a single `LPOP pool count` (in one MULTI transaction with the
stamp check), exactly as many keys as the queued requests are missing, hands them out in
arrival order, and repeats while requests wait. No key is held beyond the requests already
waiting. On an empty pool it polls with a short backoff until each request's deadline;
Redis errors fail the waiting requests at once, so every wait is bounded by
EMPTY_POOL_WAIT_MS plus one Redis timeout.

The pump talks to Redis on a connection of its own, below the client's per-command layers
(pool checkout, retry wrapper, script object): that makes a pop two to three times cheaper
in CPU, and a pop is the only Redis call of the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import redis.asyncio
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api import metrics
from shared.pool import KEYSPACE_EXHAUSTED, POOL_STALE, POP_GUARD_SCRIPT, PoolNames

log = logging.getLogger("mini_forge.api")

_POLL_FIRST_SECONDS = 0.002
_POLL_MAX_SECONDS = 0.025
# Before each pop the pump yields to the event loop this many times, so that requests on
# their way in (bytes read but not yet parsed, clients just answered sending their next
# request) join this pop instead of waiting for the next one. At 64 connections it doubles
# the keys per pop (about 13 to 26) and lifts /get-key by about 5% (bench/); on an idle
# process it adds microseconds.
_GATHER_YIELDS = 8


class KeysUnavailableError(Exception):
    """No keys can be served right now; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(eq=False)
class _Waiter:
    count: int
    deadline: float
    future: asyncio.Future[list[bytes]]
    keys: list[bytes] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.count - len(self.keys)


class KeySource:
    """Hands out keys from the pool to concurrent requests, one Redis call per batch."""

    def __init__(self, client: redis.asyncio.Redis, names: PoolNames, wait_seconds: float) -> None:
        self._wait_seconds = wait_seconds
        pool = client.connection_pool
        # One deadline per pop (below) instead of one per socket operation inside redis-py,
        # which would cost a task and four timeout contexts per pop.
        self._timeout: float = pool.connection_kwargs["socket_timeout"]
        self._connection = pool.connection_class(
            **{**pool.connection_kwargs, "socket_timeout": None}
        )
        self._pool_key = names.pool
        # Everything of the transaction but LPOP's count is the same for every pop: pack once.
        connection = self._connection
        self._multi_and_check = b"".join(
            connection.pack_commands(
                [
                    ("MULTI",),
                    ("EVAL", POP_GUARD_SCRIPT, 3, names.pool, names.stamp, names.exhausted),
                ]
            )
        )
        self._exec = b"".join(connection.pack_command("EXEC"))
        self._waiters: deque[_Waiter] = deque()
        self._pump_task: asyncio.Task[None] | None = None
        self._redis_down = False

    async def take(self, count: int = 1) -> list[bytes]:
        """Exactly `count` distinct keys as ASCII bytes, or KeysUnavailableError in time."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(count, loop.time() + self._wait_seconds, loop.create_future())
        self._waiters.append(waiter)
        if self._pump_task is None:
            self._pump_task = loop.create_task(self._pump())
        return await waiter.future

    async def close(self) -> None:
        await self._connection.disconnect()

    async def _pop(self, count: int) -> tuple[int, list[bytes]]:
        """MULTI, the stamp check, `LPOP pool count`, EXEC: the check's status and the keys."""
        connection = self._connection
        transaction = [
            self._multi_and_check,
            *connection.pack_command("LPOP", self._pool_key, count),
            self._exec,
        ]
        try:
            async with asyncio.timeout(self._timeout):
                await connection.send_packed_command(transaction, check_health=False)
                for _ in range(3):  # +OK, +QUEUED, +QUEUED
                    await connection.read_response()
                status, keys = await connection.read_response()
        except TimeoutError:
            await connection.disconnect()
            raise RedisTimeoutError(f"no answer within {self._timeout}s") from None
        except BaseException:
            await connection.disconnect()  # replies may be left unread: never reuse it
            raise
        if isinstance(status, Exception):
            raise status
        return int(status), keys or []

    async def _pump(self) -> None:
        delay = _POLL_FIRST_SECONDS
        try:
            while self._waiters:
                for _ in range(_GATHER_YIELDS):
                    await asyncio.sleep(0)
                if await self._pop_for_waiters():
                    delay = _POLL_FIRST_SECONDS
                    continue
                self._expire_waiters()
                if self._waiters:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _POLL_MAX_SECONDS)
        except Exception:
            # A bug must not leave requests waiting for a pump that no longer runs.
            log.exception("key pump failed; failing the waiting requests")
            self._fail_all(KeysUnavailableError("internal-error", "the key pump failed"))
        finally:
            self._pump_task = None

    async def _pop_for_waiters(self) -> bool:
        """One pop for every waiting request; False only if the pool had too few keys.

        Requests that arrive during the pop are served by the next one, at once.
        """
        while self._waiters and self._waiters[0].future.done():  # cancelled by its client
            self._waiters.popleft()
        wanted = sum(waiter.missing for waiter in self._waiters if not waiter.future.done())
        if wanted == 0:
            return True
        started = time.perf_counter()
        try:
            status, keys = await self._pop(wanted)
        except RedisError as error:
            # Clients learn only that Redis is away; where and why is for the operator's log.
            if not self._redis_down:
                log.warning("redis unavailable; /get-key answers 503 until it is back: %s", error)
            self._redis_down = True
            self._fail_all(
                KeysUnavailableError("redis-unavailable", "redis is unavailable; retry shortly")
            )
            return True
        finally:
            metrics.POP_SECONDS.observe(time.perf_counter() - started)
        if self._redis_down:
            log.info("redis reachable again")
            self._redis_down = False
        if status == POOL_STALE:
            self._fail_all(
                KeysUnavailableError(
                    "pool-invalid",
                    "the pool was filled in an earlier redis process (restart or failover) "
                    "and is being replaced",
                )
            )
            return True
        if status == KEYSPACE_EXHAUSTED:
            self._fail_all(KeysUnavailableError("keyspace-exhausted", "every key has been issued"))
            return True
        self._hand_out(keys)
        return len(keys) == wanted

    def _hand_out(self, keys: list[bytes]) -> None:
        position = 0
        served = 0
        while self._waiters and position < len(keys):
            waiter = self._waiters[0]
            if waiter.future.done():
                self._waiters.popleft()
                continue
            taken = keys[position : position + waiter.missing]
            waiter.keys.extend(taken)
            position += len(taken)
            if waiter.missing == 0:
                self._waiters.popleft()
                waiter.future.set_result(waiter.keys)
                served += waiter.count
        metrics.KEYS_SERVED.inc(served)

    def _expire_waiters(self) -> None:
        now = asyncio.get_running_loop().time()
        still_waiting: deque[_Waiter] = deque()
        expired = 0
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if waiter.deadline <= now:
                # Keys already handed to a request that times out are dropped: a gap.
                waiter.future.set_exception(
                    KeysUnavailableError("pool-empty", "the key pool is empty; retry shortly")
                )
                expired += 1
            else:
                still_waiting.append(waiter)
        self._waiters = still_waiting
        if expired:
            metrics.UNAVAILABLE.labels("pool-empty").inc(expired)

    def _fail_all(self, error: KeysUnavailableError) -> None:
        failed = 0
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)
                failed += 1
        metrics.UNAVAILABLE.labels(error.reason).inc(failed)
