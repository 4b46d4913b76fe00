"""The SQLite counter store: one file, any number of refiller processes on one host.

Each reservation is one `BEGIN IMMEDIATE` transaction (the write lock is taken before the
counter is read), in WAL mode with `synchronous=FULL` so a committed reservation survives a
crash. A busy database is waited for, never an error. The schema is created only in an
empty file, under the same write lock, so processes starting together on a fresh file all
come up; a file that has other content is never rewritten.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from refiller.counter import (
    COUNTER_NAME,
    CounterReading,
    CounterStoreError,
    Range,
    StopRequestedError,
    check_counter_value,
    check_mapping,
    next_range,
    pinned_key_length,
)
from shared.codec import KeyCodec

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
_LOCKED_RETRY_SECONDS = 0.05


def _is_locked(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


class SQLiteCounterStore:
    """A counter row in a SQLite file, reserved in ranges."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        keyspace_size: int,
        stop: threading.Event | None = None,
    ) -> None:
        self._connection = connection
        self._path = path
        self._keyspace_size = keyspace_size
        self._stop = stop or threading.Event()

    @classmethod
    def open(
        cls,
        database_url: str,
        keyspace_size: int,
        mapping: dict[str, str],
        stop: threading.Event | None = None,
    ) -> SQLiteCounterStore:
        path = Path(database_url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise CounterStoreError(f"counter store {path}: cannot open ({error})") from None
        store = cls(connection, path, keyspace_size, stop)
        try:
            store._retry_while_locked(lambda: store._prepare(mapping))
        except BaseException:
            connection.close()
            raise
        return store

    def reserve(self, size: int) -> Range:
        return self._retry_while_locked(lambda: self._reserve_once(size))

    def position(self) -> int:
        return self._retry_while_locked(self._read_counter)

    def close(self) -> None:
        self._connection.close()

    def _prepare(self, mapping: dict[str, str]) -> None:
        """Create the schema in an empty file; check any other file before writing to it.

        Nothing is written to a file that already has content until its tables, key mapping
        and counter are known to be good (even switching to WAL rewrites the file header).
        The mapping is checked before the counter: after a KEY_LENGTH change the counter may
        lie outside the new keyspace, and the error must name the cause.
        """
        execute = self._connection.execute
        try:
            execute("BEGIN IMMEDIATE")
            try:
                tables = {row[0] for row in execute("SELECT name FROM sqlite_master")}
                if not tables:
                    execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
                    execute("CREATE TABLE mapping (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    execute("INSERT INTO counters VALUES (?, 0)", (COUNTER_NAME,))
                elif not {"counters", "mapping"} <= tables:
                    missing = ", ".join(sorted({"counters", "mapping"} - tables))
                    raise CounterStoreError(
                        f"counter store {self._path}: table {missing} is missing; the file "
                        "was not made by mini-forge or was damaged. It was left untouched."
                    )
                self._pin_mapping(mapping)
                self._read_counter()
                execute("COMMIT")
            except BaseException:
                execute("ROLLBACK")
                raise
            self._check_writable()
            if execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                execute("PRAGMA journal_mode=WAL")
            execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and _is_locked(error):
                raise
            raise self._unusable(error) from None

    def _check_writable(self) -> None:
        """Fail now, not at the first reservation, if the file cannot be written."""
        execute = self._connection.execute
        execute("BEGIN IMMEDIATE")
        try:
            execute("UPDATE counters SET value = value WHERE name = ?", (COUNTER_NAME,))
        finally:
            execute("ROLLBACK")

    def _pin_mapping(self, mapping: dict[str, str]) -> None:
        """Check the pinned mapping and pin what is new; inside the caller's transaction."""
        execute = self._connection.execute
        pinned = dict(execute("SELECT name, value FROM mapping").fetchall())
        check_mapping(pinned, mapping, f"counter store {self._path}")
        for name, value in mapping.items():
            if name not in pinned:
                execute("INSERT INTO mapping VALUES (?, ?)", (name, value))

    def _read_counter(self) -> int:
        try:
            row = self._connection.execute(
                "SELECT value FROM counters WHERE name = ?", (COUNTER_NAME,)
            ).fetchone()
        except sqlite3.OperationalError as error:
            if _is_locked(error):
                raise
            raise self._unusable(error) from None
        except sqlite3.DatabaseError as error:
            raise self._unusable(error) from None
        if row is None:
            raise CounterStoreError(
                f"counter store {self._path}: the counter row {COUNTER_NAME!r} is missing"
            )
        return check_counter_value(row[0], self._keyspace_size, f"counter store {self._path}")

    def _reserve_once(self, size: int) -> Range:
        execute = self._connection.execute
        try:
            execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and _is_locked(error):
                raise
            raise self._unusable(error) from None
        try:
            reserved = next_range(self._read_counter(), size, self._keyspace_size)
            execute("UPDATE counters SET value = ? WHERE name = ?", (reserved.end, COUNTER_NAME))
            execute("COMMIT")
        except BaseException:
            execute("ROLLBACK")
            raise
        return reserved

    def _retry_while_locked(self, operation: Callable[[], T]) -> T:
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as error:
                if not _is_locked(error):
                    raise self._unusable(error) from None
                log.debug("counter store busy, retrying", extra={"path": str(self._path)})
                if self._stop.wait(_LOCKED_RETRY_SECONDS):
                    raise StopRequestedError(f"counter store {self._path} is busy") from None

    def _unusable(self, error: sqlite3.Error) -> CounterStoreError:
        return CounterStoreError(
            f"counter store {self._path}: {error}; the file was left untouched"
        )


def read_sqlite_counter(database_url: str) -> CounterReading:
    """The counter's position and pinned key length, through a read-only connection."""
    path = Path(database_url.removeprefix("sqlite:///"))
    if not path.is_file():
        raise CounterStoreError(f"counter store {path}: no such file (no range reserved yet?)")
    try:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as error:
        raise CounterStoreError(f"counter store {path}: cannot open ({error})") from None
    try:
        row = connection.execute("SELECT value FROM mapping WHERE name = 'KEY_LENGTH'").fetchone()
        key_length = pinned_key_length(row and row[0], f"counter store {path}")
        store = SQLiteCounterStore(connection, path, KeyCodec(key_length).keyspace_size)
        return CounterReading(store.position(), key_length)
    except sqlite3.DatabaseError as error:
        raise CounterStoreError(f"counter store {path}: {error}") from None
    finally:
        connection.close()
