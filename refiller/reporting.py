"""What a refiller leaves in Redis for `mini-forge status`: who is alive, the last range
reserved, and periodic readings of how many keys have been issued.

Each write is small and rate-limited (a heartbeat a second, a reading every ten seconds, one
SET per range), so reporting never slows refilling down. Nothing here is needed for keys
to be served; it only describes the system to operators.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import redis

from refiller.counter import Range
from shared.pool import PoolNames

HEARTBEAT_SECONDS = 1.0
# A refiller is reported dead after missing a few heartbeats.
HEARTBEAT_TTL_SECONDS = 5
SAMPLE_SECONDS = 10.0
# Ninety readings ten seconds apart: the rate is taken over the last fifteen minutes.
SAMPLES_KEPT = 90


class StatusReporter:
    """The Redis side of `mini-forge status` for one refiller."""

    def __init__(
        self, client: redis.Redis, names: PoolNames, token: str, settings: dict[str, Any]
    ) -> None:
        self._client = client
        self._names = names
        self._token = token
        self._identity = f"{socket.gethostname()}:{os.getpid()}"
        self._heartbeat = {"refiller": self._identity, **settings}
        self._next_heartbeat = 0.0
        self._next_sample = 0.0

    def tick(self, pool_length: int, unpushed: int, position: Callable[[], int]) -> None:
        """Heartbeat and issued-keys reading, each when due.

        `unpushed` is the rest of the range this refiller holds: reserved, not in the pool
        yet, so not issued. `position()` is the counter store's position; less the numbers
        held unpushed and the pool length, that is the keys issued (lost ranges included).
        """
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_SECONDS
            self._client.set(
                self._names.refiller_heartbeat(self._token),
                json.dumps({**self._heartbeat, "unpushed": unpushed}),
                ex=HEARTBEAT_TTL_SECONDS,
            )
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_SECONDS
            issued = position() - unpushed - pool_length
            pipeline = self._client.pipeline(transaction=True)
            pipeline.lpush(self._names.issued_samples, f"{time.time():.3f} {issued}")
            pipeline.ltrim(self._names.issued_samples, 0, SAMPLES_KEPT - 1)
            pipeline.execute()

    def reserved(self, reserved: Range, took_seconds: float) -> None:
        self._client.set(
            self._names.last_reservation,
            json.dumps(
                {
                    "start": reserved.start,
                    "end": reserved.end,
                    "at": round(time.time(), 3),
                    "took_ms": round(took_seconds * 1000, 2),
                    "refiller": self._identity,
                }
            ),
        )

    def stopped(self) -> None:
        """Remove the heartbeat at once, so the refiller is not counted as alive."""
        self._client.delete(self._names.refiller_heartbeat(self._token))
