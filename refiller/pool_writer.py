"""The refiller's side of the Redis pool: check it, hold the refill lock, push chunks.

Every write is fenced twice inside its Lua script: by the refill-lock token (so only one
refiller pushes at a time and a refiller whose lock lapsed stops) and by the run id of the
Redis process the range was claimed in (so a chunk is never pushed again into a Redis that
restarted or failed over, where its first push may already have been served and lost).
"""

from __future__ import annotations

import secrets
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
    PoolNames,
)

# How long a dead refiller can block the others; every claim and push extends it.
LOCK_TTL_MS = 2000


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

    def check(self) -> PoolState:
        """The pool's length, after discarding it if it was filled in another Redis process."""
        length, run_id, discarded = self._check(keys=[self.names.pool, self.names.stamp])
        return PoolState(int(length), run_id.decode(), int(discarded))

    def acquire_lock(self) -> bool:
        return bool(self._client.set(self.names.lock, self.token, nx=True, px=LOCK_TTL_MS))

    def release_lock(self) -> None:
        self._release(keys=[self.names.lock], args=[self.token])

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
