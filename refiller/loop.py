"""The refill loop: watch the pool, reserve ranges, encode them, push them in chunks.

Below POOL_LOW_WATERMARK the refiller takes the refill lock and pushes chunks of keys until
the pool holds POOL_TARGET. Chunks come from the range it holds; when that range is used
up it reserves the next one, sized by a RangeSizer to the demand it sees, so the number of
counter transactions does not grow with the demand and the pool size stays independent of
the range size. Redis errors are retried with backoff; a range whose pushing cannot be
finished in the Redis process it was claimed in is abandoned (a gap, never a duplicate), and
so is the unpushed rest of a range when the refiller stops.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from refiller.backoff import Backoff
from refiller.counter import CounterStore, KeyspaceExhaustedError, Range, StopRequestedError
from refiller.metrics import RefillerMetrics
from refiller.pool_writer import PoolWriter
from refiller.range_sizer import RangeSizer
from refiller.reporting import StatusReporter
from shared.codec import KeyCodec
from shared.settings import Settings

log = logging.getLogger("mini_forge.refiller")

# Errors that pass by themselves: Redis restarting, unreachable, or a replica not yet promoted.
TRANSIENT_REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)


@dataclass
class _HeldRange:
    """A reserved range claimed in Redis process `run_id`, pushed up to chunk `next_chunk`."""

    numbers: Range
    run_id: str
    next_chunk: int = 0


class Refiller:
    """Keeps one pool between its low watermark and its target."""

    def __init__(
        self,
        settings: Settings,
        store: CounterStore,
        writer: PoolWriter,
        codec: KeyCodec,
        stop: threading.Event,
        *,
        metrics: RefillerMetrics,
        reporter: StatusReporter,
    ) -> None:
        self._settings = settings
        self._store = store
        self._writer = writer
        self._codec = codec
        self._stop = stop
        self._metrics = metrics
        self._reporter = reporter
        self._exhausted = False
        self._warned_low_keyspace = False
        self._sizer = RangeSizer(
            settings.RANGE_SIZE, settings.RANGE_SIZE_MIN, settings.RANGE_SIZE_MAX
        )
        self._held: _HeldRange | None = None

    def run(self) -> None:
        """Refill until `stop` is set. Raises only for errors that must end the process."""
        backoff = Backoff()
        redis_down = False
        while not self._stop.is_set():
            try:
                self.refill_once()
            except StopRequestedError as waiting_for:
                log.info("stopped while waiting for the counter store: %s", waiting_for)
                return
            except TRANSIENT_REDIS_ERRORS as error:
                if not redis_down:
                    log.warning("redis unavailable, retrying with backoff: %s", error)
                redis_down = True
                self._stop.wait(backoff.next_delay())
                continue
            if redis_down:
                log.info("redis reachable again")
                redis_down = False
            backoff.reset()
            self._stop.wait(self._settings.REFILL_POLL_MS / 1000)

    def refill_once(self) -> None:
        """One look at the pool; refill it to the target if it is below the low watermark."""
        state = self._writer.check()
        if state.discarded:
            log.warning(
                "discarded a pool filled in another redis process (restart or failover)",
                extra={"discarded_keys": state.discarded, "run_id": state.run_id},
            )
        self._metrics.pool_length = state.length
        self._reporter.tick(state.length, self._unpushed(), self._store.position)
        if self._exhausted:
            self._writer.mark_exhausted()
            return
        if state.length >= self._settings.POOL_LOW_WATERMARK or not self._writer.acquire_lock():
            return
        try:
            # Another refiller may have refilled the pool between our look and the lock.
            state = self._writer.check()
            length = state.length
            while length < self._settings.POOL_TARGET and not self._stop.is_set():
                pushed_length = self._push_next_chunk(state.run_id)
                if pushed_length is None:
                    return
                length = pushed_length
        finally:
            self._writer.release_lock()

    def _push_next_chunk(self, run_id: str) -> int | None:
        """Push the next chunk of the held range, reserving a range first if none is left.

        Returns the pool length after the push, or None to stop this refill.
        """
        held = self._held
        if held is not None and held.run_id != run_id:
            log.warning(
                "redis restarted or failed over since the held range was claimed; "
                "its unpushed rest is abandoned",
                extra={"start": held.numbers.start, "end": held.numbers.end},
            )
            self._sizer.abandoned()
            held = None
        if held is None or self._chunk_start(held) >= held.numbers.end:
            held = self._reserve_and_claim(run_id)
        self._held = held
        if held is None:
            return None
        chunk_start = self._chunk_start(held)
        chunk_end = min(chunk_start + self._settings.PUSH_CHUNK_SIZE, held.numbers.end)
        keys = self._codec.encode_range(chunk_start, chunk_end)
        length = self._push_chunk(held.numbers, held.next_chunk, keys, run_id)
        if length is None:
            log.warning(
                "redis or the refill lock changed while pushing; rest of range abandoned",
                extra={"start": held.numbers.start, "end": held.numbers.end, "at": chunk_start},
            )
            self._sizer.abandoned()
            self._held = None
            return None
        held.next_chunk += 1
        self._metrics.pushed(len(keys), length)
        return length

    def _unpushed(self) -> int:
        """How many numbers of the range this refiller holds are not in the pool yet."""
        held = self._held
        return 0 if held is None else max(held.numbers.end - self._chunk_start(held), 0)

    def _chunk_start(self, held: _HeldRange) -> int:
        return held.numbers.start + held.next_chunk * self._settings.PUSH_CHUNK_SIZE

    def _reserve_and_claim(self, run_id: str) -> _HeldRange | None:
        """Reserve the next range and claim it for pushing, or None to stop refilling."""
        started = time.perf_counter()
        try:
            with self._writer.lock_kept():
                reserved = self._store.reserve(self._sizer.next_size())
        except KeyspaceExhaustedError as error:
            log.error("keyspace exhausted, no more ranges will be reserved: %s", error)
            self._exhausted = True
            self._writer.mark_exhausted()
            return None
        took_seconds = time.perf_counter() - started
        log.info(
            "reserved range",
            extra={
                "start": reserved.start,
                "end": reserved.end,
                "size": len(reserved),
                "took_ms": round(took_seconds * 1000, 2),
            },
        )
        self._metrics.reserved(reserved, took_seconds)
        self._reporter.reserved(reserved, took_seconds)
        self._warn_if_keyspace_low(reserved)
        if not self._writer.claim(reserved, run_id):
            log.warning("refill lock or redis changed before pushing; range abandoned")
            self._sizer.abandoned()
            return None
        return _HeldRange(reserved, run_id)

    def _push_chunk(
        self, reserved: Range, chunk_index: int, keys: list[bytes], run_id: str
    ) -> int | None:
        """Push until Redis answers; a lost reply is harmless because pushes are idempotent."""
        backoff = Backoff()
        while True:
            try:
                return self._writer.push(reserved, chunk_index, keys, run_id)
            except TRANSIENT_REDIS_ERRORS as error:
                if self._stop.is_set():
                    return None
                log.warning("push failed, retrying the same chunk: %s", error)
                self._stop.wait(backoff.next_delay())

    def _warn_if_keyspace_low(self, reserved: Range) -> None:
        left = self._codec.keyspace_size - reserved.end
        if not self._warned_low_keyspace and left < self._codec.keyspace_size / 100:
            self._warned_low_keyspace = True
            log.warning(
                "less than 1% of the keyspace is left",
                extra={"keys_left": left, "keyspace": self._codec.keyspace_size},
            )
