"""The refiller's side of the Redis pool: check it, hold the refill lock, push chunks.

Every write is fenced twice inside its Lua script: by the refill-lock token (so only one
refiller pushes at a time and a refiller whose lock lapsed stops) and by the run id of the
Redis process the range was claimed in (so a chunk is never pushed again into a Redis that
restarted or failed over, where its first push may already have been served and lost).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from refiller.counter import Range
from shared.pool import (
    CHECK_SCRIPT,
    CLAIM_SCRIPT,
    POOL_STALE,
    PUSH_MARKER_TTL_SECONDS,
    PUSH_SCRIPT,
    RELEASE_SCRIPT,
    RENEW_SCRIPT,
    PoolNames,
)

# How long a dead refiller can block the others; every claim and push extends it.
LOCK_TTL_MS = 2000
# A reservation slower than this lets the lock lapse, so another refiller can try.
LOCK_KEPT_MAX_SECONDS = 60.0


class CounterWentBackError(Exception):
    """The counter store handed out a range below one already pushed to this pool."""


@dataclass(frozen=True)
class PoolState:
    length: int
    run_id: str
    discarded: int


class PoolWriter:
    """Pool operations of one refiller, identified by its lock token."""

    def __init__(self, client: redis.Redis, names: PoolNames) -> None:
        self._client = client
        self.names = names
        self.token = secrets.token_hex(8)
        self._check = client.register_script(CHECK_SCRIPT)
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._push = client.register_script(PUSH_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._renew = client.register_script(RENEW_SCRIPT)

    def check(self) -> PoolState:
        """The pool's length, after discarding it if it was filled in another Redis process."""
        length, run_id, discarded = self._check(keys=[self.names.pool, self.names.stamp])
        return PoolState(int(length), run_id.decode(), int(discarded))

    def acquire_lock(self) -> bool:
        return bool(self._client.set(self.names.lock, self.token, nx=True, px=LOCK_TTL_MS))

    def release_lock(self) -> None:
        self._release(keys=[self.names.lock], args=[self.token])

    @contextmanager
    def lock_kept(self) -> Iterator[None]:
        """Keep the refill lock alive while the block runs (a reservation), for at most
        LOCK_KEPT_MAX_SECONDS.

        A counter store that takes longer than the lock's TTL to answer would otherwise
        lose the lock mid-reservation and the range would be abandoned: with a store that
        stays that slow, every refill would waste a range and push nothing. The lock still
        lapses within its TTL when this process dies or freezes.
        """
        done = threading.Event()

        def renew() -> None:
            deadline = time.monotonic() + LOCK_KEPT_MAX_SECONDS
            while not done.wait(LOCK_TTL_MS / 3000) and time.monotonic() < deadline:
                try:
                    if not self._renew(keys=[self.names.lock], args=[self.token, LOCK_TTL_MS]):
                        return  # lost already: the claim after the block will say so
                except redis.RedisError:
                    continue  # the claim fails too if Redis stays away

        keeper = threading.Thread(target=renew, name="refill-lock-keeper", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def claim(self, reserved: Range, run_id: str) -> bool:
        """Record the range as the highest pushed; False if the lock or Redis changed."""
        result = self._claim(
            keys=[self.names.lock, self.names.high],
            args=[self.token, run_id, reserved.start, reserved.end, LOCK_TTL_MS],
        ).decode()
        if result == "ok":
            return True
        if result == "lost":
            return False
        raise CounterWentBackError(
            f"the counter store handed out numbers from {reserved.start}, but numbers up to "
            f"{result} were already pushed to {self.names.pool}: the counter store went back "
            "in time (restored from an old copy?). Nothing was pushed; fix the counter store "
            f"so that it continues from at least {result}."
        )

    def push(self, reserved: Range, chunk_index: int, keys: list[bytes], run_id: str) -> int | None:
        """Push one chunk at most once; the pool length, or None to abandon the range."""
        result = int(
            self._push(
                keys=[
                    self.names.pool,
                    self.names.stamp,
                    self.names.lock,
                    self.names.push_marker(reserved.start, chunk_index),
                ],
                args=[
                    self.token,
                    run_id,
                    LOCK_TTL_MS,
                    PUSH_MARKER_TTL_SECONDS,
                    len(keys[0]),
                    b"".join(keys),
                ],
            )
        )
        return None if result == POOL_STALE else result

    def mark_exhausted(self) -> None:
        self._client.set(self.names.exhausted, "1")
