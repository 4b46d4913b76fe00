"""`mini-forge status`: the pool, the counter and the keyspace at a glance.

Needs only REDIS_URL and DATABASE_URL (and POOL_KEY if it is not the default); it reads
both without changing anything. The watermarks come from the live refillers' heartbeats
(falling back to this process's settings), the key length from the mapping pinned in the
counter store, and the rate from the issued-keys readings refillers keep in Redis
(refiller/reporting.py). Text by default, `--json` for scripts, `--watch` to refresh live.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from rich.console import Console
from rich.live import Live
from rich.table import Table

from refiller.counter import CounterReading, CounterStoreError, read_counter
from shared.codec import KeyCodec
from shared.connections import redis_client
from shared.pool import INSPECT_SCRIPT, PoolNames, PoolReading
from shared.redact import redact_url
from shared.settings import Settings

# Readings closer together than this give no meaningful rate.
_MIN_RATE_WINDOW_SECONDS = 1.0


@dataclass
class Status:
    """One reading of the whole system; a part that could not be read has an error instead."""

    redis_url: str
    database_url: str
    pool_name: str
    read_at: float
    low_watermark: int
    target: int
    pool: PoolReading | None = None
    redis_error: str | None = None
    counter: CounterReading | None = None
    counter_error: str | None = None
    last_reservation: dict[str, Any] | None = None
    refillers: list[dict[str, Any]] = field(default_factory=list)
    # (unix time, keys issued then), newest first.
    issued_samples: list[tuple[float, int]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.redis_error is None and self.counter_error is None

    @property
    def keyspace_size(self) -> int | None:
        return None if self.counter is None else KeyCodec(self.counter.key_length).keyspace_size

    @property
    def keyspace_remaining(self) -> int | None:
        if self.counter is None or self.keyspace_size is None:
            return None
        return self.keyspace_size - self.counter.position

    @property
    def keys_issued(self) -> int | None:
        """Numbers reserved minus keys waiting in the pool and numbers live refillers hold
        unpushed (lost ranges count as issued)."""
        if self.counter is None or self.pool is None:
            return None
        pooled = self.pool.length if self.pool.valid else 0
        held = sum(int(refiller.get("unpushed", 0)) for refiller in self.refillers)
        return self.counter.position - pooled - held

    @property
    def rate(self) -> float | None:
        """Keys issued per second since the oldest reading refillers kept."""
        if self.keys_issued is None or not self.issued_samples:
            return None
        oldest_time, oldest_issued = self.issued_samples[-1]
        elapsed = self.read_at - oldest_time
        if elapsed < _MIN_RATE_WINDOW_SECONDS:
            return None
        return max(0.0, (self.keys_issued - oldest_issued) / elapsed)

    @property
    def seconds_left(self) -> float | None:
        rate, remaining = self.rate, self.keyspace_remaining
        if not rate or remaining is None:
            return None
        return remaining / rate

    def to_json(self) -> dict[str, Any]:
        size, remaining = self.keyspace_size, self.keyspace_remaining
        return {
            "redis": {"url": self.redis_url, "error": self.redis_error},
            "pool": {
                "name": self.pool_name,
                "length": None if self.pool is None else self.pool.length,
                "valid": None if self.pool is None else self.pool.valid,
                "low_watermark": self.low_watermark,
                "target": self.target,
            },
            "counter": {
                "url": self.database_url,
                "error": self.counter_error,
                "position": None if self.counter is None else self.counter.position,
                "key_length": None if self.counter is None else self.counter.key_length,
            },
            "keys_issued": self.keys_issued,
            "keyspace": {
                "size": size,
                "remaining": remaining,
                "remaining_percent": _percent(remaining, size),
                "rate_per_second": self.rate,
                "seconds_left": self.seconds_left,
                "exhausted": None if self.pool is None else self.pool.exhausted,
            },
            "last_reservation": self.last_reservation,
            "refillers_alive": self.refillers,
        }


def _percent(part: int | None, whole: int | None) -> float | None:
    return None if part is None or not whole else round(100 * part / whole, 6)


def read_status(settings: Settings, client: redis.Redis) -> Status:
    names = PoolNames(settings.POOL_KEY)
    status = Status(
        redis_url=redact_url(settings.REDIS_URL),
        database_url=redact_url(settings.DATABASE_URL),
        pool_name=names.pool,
        read_at=time.time(),
        low_watermark=settings.POOL_LOW_WATERMARK,
        target=settings.POOL_TARGET,
    )
    try:
        _read_redis(status, client, names)
    except redis.RedisError as error:
        status.redis_error = str(error) or type(error).__name__
    try:
        status.counter = read_counter(settings.DATABASE_URL)
    except CounterStoreError as error:
        status.counter_error = str(error)
    return status


def _read_redis(status: Status, client: redis.Redis, names: PoolNames) -> None:
    status.pool = PoolReading.from_reply(
        client.eval(INSPECT_SCRIPT, 3, names.pool, names.stamp, names.exhausted)
    )
    last = client.get(names.last_reservation)
    status.last_reservation = None if last is None else json.loads(last)
    samples = client.lrange(names.issued_samples, 0, -1)
    status.issued_samples = [
        (float(when), int(issued)) for when, issued in (sample.split() for sample in samples)
    ]
    heartbeats = list(client.scan_iter(match=names.refiller_heartbeat_pattern, count=1000))
    beats = client.mget(heartbeats) if heartbeats else []
    status.refillers = sorted(
        (json.loads(beat) for beat in beats if beat is not None), key=lambda r: r["refiller"]
    )
    if status.refillers:
        status.low_watermark = status.refillers[0]["low_watermark"]
        status.target = status.refillers[0]["target"]


def _number(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _duration(seconds: float) -> str:
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.0f} s"


def rows(status: Status) -> list[tuple[str, str]]:
    """The status as (label, value) lines, shared by the text and the live view."""
    if status.pool is None:
        pool = f"unreadable: {status.redis_error}"
    else:
        pool = f"{status.pool.length:,} keys" + (
            "" if status.pool.valid else " (not valid: not filled in this redis process)"
        )
    if status.counter is None:
        counter = f"unreadable: {status.counter_error}"
    else:
        counter = f"{status.counter.position:,} (next number to reserve)"
    remaining = status.keyspace_remaining
    percent = _percent(remaining, status.keyspace_size)
    rate, seconds_left = status.rate, status.seconds_left
    if status.pool is not None and status.pool.exhausted:
        time_left = "none: the keyspace is exhausted"
    elif seconds_left is not None:
        time_left = _duration(seconds_left)
    else:
        time_left = "? (no keys issued recently)"
    last = status.last_reservation
    last_text = "none recorded"
    if last is not None:
        last_text = (
            f"[{last['start']:,}, {last['end']:,}) {_duration(status.read_at - last['at'])} ago,"
            f" took {last['took_ms']} ms, by {last['refiller']}"
        )
    refillers = ", ".join(r["refiller"] for r in status.refillers)
    return [
        ("redis", status.redis_url),
        ("counter store", status.database_url),
        (f"pool {status.pool_name}", pool),
        ("watermarks", f"low {status.low_watermark:,}, target {status.target:,}"),
        ("counter position", counter),
        ("keys issued", _number(status.keys_issued)),
        (
            "keyspace remaining",
            f"{_number(remaining)} of {_number(status.keyspace_size)}"
            + ("" if percent is None else f" ({percent:.4f}%)"),
        ),
        ("rate", "?" if rate is None else f"{rate:,.1f} keys/s"),
        ("time left", time_left),
        ("last reservation", last_text),
        ("refillers alive", f"{len(status.refillers)}" + (f" ({refillers})" if refillers else "")),
    ]


def render_text(status: Status) -> str:
    lines = rows(status)
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in lines)


def _table(status: Status) -> Table:
    table = Table(title="mini-forge status", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows(status):
        table.add_row(label, value)
    return table


def run_status(settings: Settings, *, as_json: bool, watch: bool, interval: float) -> int:
    """Print the status once (0 if everything could be read, else 1), or refresh it live."""
    client = redis_client(settings)
    try:
        if watch:
            with Live(_table(read_status(settings, client)), console=Console()) as live:
                while True:
                    time.sleep(interval)
                    live.update(_table(read_status(settings, client)))
        status = read_status(settings, client)
        print(json.dumps(status.to_json(), indent=2) if as_json else render_text(status))
        return 0 if status.healthy else 1
    finally:
        client.close()
