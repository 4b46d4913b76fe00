"""What every counter store offers, and how one is chosen from DATABASE_URL.

A counter store is the only truth about which numbers are taken. `reserve(size)` takes
the next `size` numbers in one committed transaction and returns them as a `Range`; no two
reservations, from any process on any host, ever overlap. The store also pins the key
mapping (length, order, secret fingerprint) at first use, because a changed mapping could
turn old numbers into keys already issued.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

# The name of the one counter row every store keeps.
COUNTER_NAME = "keys"


class CounterStoreError(Exception):
    """The counter store is unusable (corrupt, unreadable, tampered with); one clear line."""


class MappingChangedError(CounterStoreError):
    """The configured key mapping differs from the one pinned in the counter store."""


class StopRequestedError(Exception):
    """The process was asked to stop while it waited for the counter store."""


class KeyspaceExhaustedError(Exception):
    """Every number of the keyspace has been reserved."""


@dataclass(frozen=True)
class Range:
    """Numbers [start, end) reserved by one transaction."""

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class CounterReading:
    """The counter as `mini-forge status` sees it: the next number, and the pinned key length."""

    position: int
    key_length: int


class CounterStore(Protocol):
    def reserve(self, size: int) -> Range:
        """Take the next `size` numbers (fewer at the end of the keyspace)."""
        ...

    def position(self) -> int:
        """The next number that would be reserved."""
        ...

    def close(self) -> None: ...


def next_range(start: int, size: int, keyspace_size: int) -> Range:
    """The range a reservation of `size` takes from `start`: cut at the keyspace's end."""
    if size < 1:
        raise ValueError("a reservation takes at least one number")
    if start >= keyspace_size:
        raise KeyspaceExhaustedError(f"all {keyspace_size} keys of the keyspace have been reserved")
    return Range(start, min(start + size, keyspace_size))


def check_counter_value(value: object, keyspace_size: int, where: str) -> int:
    """The counter's stored value, or CounterStoreError when it was tampered with."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CounterStoreError(f"{where}: counter value {value!r} is not an integer")
    if not 0 <= value <= keyspace_size:
        raise CounterStoreError(
            f"{where}: counter value {value} is outside [0, {keyspace_size}] "
            "(edited by hand?); refusing to use it"
        )
    return value


def check_mapping(pinned: dict[str, str], wanted: dict[str, str], where: str) -> None:
    """Raise MappingChangedError naming each setting that differs from the pinned one."""
    changed = [
        f"{name} (pinned {pinned[name]!r}, configured {wanted[name]!r})"
        if name != "KEY_SECRET"
        else "KEY_SECRET (its fingerprint differs)"
        for name in sorted(wanted)
        if name in pinned and pinned[name] != wanted[name]
    ]
    if changed:
        raise MappingChangedError(
            f"{where}: the key mapping changed since this counter was first used: "
            + "; ".join(changed)
            + ". Old numbers would become new keys that may already have been issued; "
            "restore the original settings or start a new counter store."
        )


def open_counter_store(
    database_url: str,
    keyspace_size: int,
    mapping: dict[str, str],
    stop: threading.Event | None = None,
) -> CounterStore:
    """Open (creating on first use) the counter store that DATABASE_URL names.

    The store waits out a busy or unreachable database, but raises StopRequestedError as
    soon as `stop` is set, so a stopping refiller never hangs on it.
    """
    scheme = urlsplit(database_url).scheme
    if scheme == "sqlite":
        from refiller.sqlite_store import SQLiteCounterStore

        return SQLiteCounterStore.open(database_url, keyspace_size, mapping, stop)
    if scheme in ("postgresql", "postgres"):
        from refiller.postgres_store import PostgresCounterStore

        return PostgresCounterStore.open(database_url, keyspace_size, mapping, stop)
    raise CounterStoreError(f"DATABASE_URL has an unsupported scheme {scheme!r}")


def pinned_key_length(value: object, where: str) -> int:
    """The KEY_LENGTH pinned in a counter store's mapping table, checked."""
    key_length = int(str(value)) if value is not None and str(value).isdigit() else 0
    if key_length < 1:
        raise CounterStoreError(f"{where}: no valid pinned KEY_LENGTH")
    return key_length


def read_counter(database_url: str) -> CounterReading:
    """Read the counter store that DATABASE_URL names without creating or changing anything."""
    scheme = urlsplit(database_url).scheme
    if scheme == "sqlite":
        from refiller.sqlite_store import read_sqlite_counter

        return read_sqlite_counter(database_url)
    if scheme in ("postgresql", "postgres"):
        from refiller.postgres_store import read_postgres_counter

        return read_postgres_counter(database_url)
    raise CounterStoreError(f"DATABASE_URL has an unsupported scheme {scheme!r}")
