"""The PostgreSQL counter store: one database, any number of refillers on any number of hosts.

Each reservation is one transaction that locks the counter row before reading it
(`SELECT ... FOR UPDATE`, then `UPDATE`), so concurrent refillers queue on the row and no two
ranges overlap. The schema is created under a transaction-scoped advisory lock, so refillers
starting together on an empty database all come up; tables that exist but are damaged are
refused and never rewritten.

A lost connection is retried with backoff on a fresh connection, and the whole reservation
runs again from a fresh read of the counter. A range is only returned once its COMMIT has
been acknowledged, so a commit whose outcome is unknown leaves at worst a gap, never a
range handed out twice. The password in DATABASE_URL never appears in an error or a log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from refiller.backoff import Backoff
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
from shared.redact import url_secrets

log = logging.getLogger(__name__)
T = TypeVar("T")
_Connection = psycopg.Connection[TupleRow]

_TABLES = frozenset({"mini_forge_counter", "mini_forge_mapping"})
_CREATE_SCHEMA = (
    "CREATE TABLE mini_forge_counter (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "CREATE TABLE mini_forge_mapping (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_SELECT_COUNTER = "SELECT value FROM mini_forge_counter WHERE name = %s"
_SELECT_COUNTER_FOR_UPDATE = _SELECT_COUNTER + " FOR UPDATE"
# Serialises schema creation between refillers starting at once (any constant would do).
SCHEMA_LOCK_ID = 7_351_042_017
# How long open() waits for an unreachable server before giving up with a clear error.
STARTUP_WAIT_SECONDS = 30.0
# Defaults for what DATABASE_URL leaves unsaid.
_CONNECT_DEFAULTS: dict[str, str | int] = {
    "application_name": "mini-forge",
    "connect_timeout": 5,
    # A silently dropped connection is noticed in about 20 s instead of hours.
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}


class _Target:
    """Where the store lives: how to connect, a description without the password, a scrubber."""

    def __init__(self, database_url: str) -> None:
        try:
            urlsplit(database_url).password  # noqa: B018 (raises on a malformed port or host)
        except ValueError:
            raise CounterStoreError("DATABASE_URL is not a valid postgresql:// URL") from None
        self._secrets = url_secrets(database_url)
        try:
            params = conninfo_to_dict(database_url)
            defaults = {key: value for key, value in _CONNECT_DEFAULTS.items() if key not in params}
            self.conninfo = make_conninfo(database_url, **defaults)
        except psycopg.Error as error:
            raise CounterStoreError(
                f"DATABASE_URL is not a valid postgresql:// URL ({self.explain(error)})"
            ) from None
        host = params.get("host") or "localhost"
        port = params.get("port") or 5432
        database = params.get("dbname") or params.get("user") or "(default database)"
        self.description = f"counter store postgresql://{host}:{port}/{database}"

    def scrub(self, text: str) -> str:
        """`text` with every form of the password masked."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def explain(self, error: psycopg.Error) -> str:
        """The first line of a driver error, scrubbed."""
        lines = str(error).strip().splitlines()
        return self.scrub(lines[0] if lines else type(error).__name__)


class PostgresCounterStore:
    """A counter row in a PostgreSQL table, reserved in ranges."""

    def __init__(
        self, target: _Target, keyspace_size: int, stop: threading.Event | None = None
    ) -> None:
        self._target = target
        self._keyspace_size = keyspace_size
        self._stop = stop or threading.Event()
        self._connection: _Connection | None = None

    @classmethod
    def open(
        cls,
        database_url: str,
        keyspace_size: int,
        mapping: dict[str, str],
        stop: threading.Event | None = None,
    ) -> PostgresCounterStore:
        store = cls(_Target(database_url), keyspace_size, stop)
        try:
            store._run(lambda c: store._prepare(c, mapping), give_up_after=STARTUP_WAIT_SECONDS)
        except BaseException:
            store.close()
            raise
        return store

    def reserve(self, size: int) -> Range:
        return self._run(lambda connection: self._reserve_once(connection, size))

    def position(self) -> int:
        return self._run(self._read_counter)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _prepare(self, connection: _Connection, mapping: dict[str, str]) -> None:
        """Create the schema if neither table exists, pin the mapping, check the counter."""
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
            present = {
                table
                for table in _TABLES
                if connection.execute("SELECT to_regclass(%s)", (table,)).fetchone() != (None,)
            }
            if not present:
                for statement in _CREATE_SCHEMA:
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO mini_forge_counter (name, value) VALUES (%s, 0)", (COUNTER_NAME,)
                )
            elif present != _TABLES:
                (missing,) = _TABLES - present
                raise CounterStoreError(
                    f"{self._target.description}: table {missing} is missing; the database "
                    "was damaged or not made by mini-forge. It was left untouched."
                )
            rows = connection.execute("SELECT name, value FROM mini_forge_mapping").fetchall()
            pinned = {str(name): str(value) for name, value in rows}
            check_mapping(pinned, mapping, self._target.description)
            for name, value in mapping.items():
                if name not in pinned:
                    connection.execute(
                        "INSERT INTO mini_forge_mapping (name, value) VALUES (%s, %s)",
                        (name, value),
                    )
            self._read_counter(connection)

    def _read_counter(self, connection: _Connection, *, for_update: bool = False) -> int:
        query = _SELECT_COUNTER_FOR_UPDATE if for_update else _SELECT_COUNTER
        row = connection.execute(query, (COUNTER_NAME,)).fetchone()
        if row is None:
            raise CounterStoreError(
                f"{self._target.description}: the counter row {COUNTER_NAME!r} is missing; "
                "it was left untouched"
            )
        return check_counter_value(row[0], self._keyspace_size, self._target.description)

    def _reserve_once(self, connection: _Connection, size: int) -> Range:
        with connection.transaction():
            start = self._read_counter(connection, for_update=True)
            reserved = next_range(start, size, self._keyspace_size)
            connection.execute(
                "UPDATE mini_forge_counter SET value = %s WHERE name = %s",
                (reserved.end, COUNTER_NAME),
            )
        # Only reached once the COMMIT was acknowledged.
        return reserved

    def _run(
        self,
        operation: Callable[[_Connection], T],
        give_up_after: float | None = None,
    ) -> T:
        """Run `operation` on a live connection, reconnecting with backoff when it is lost.

        Each attempt starts from scratch: nothing read or written by a failed attempt is used.
        """
        backoff = Backoff()
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        last_problem = ""
        while True:
            try:
                result = operation(self._connect())
            except psycopg.OperationalError as error:
                self.close()
                problem = self._target.explain(error)
                if deadline is not None and time.monotonic() > deadline:
                    raise CounterStoreError(
                        f"{self._target.description}: unreachable for {give_up_after:.0f} s "
                        f"({problem})"
                    ) from None
                if problem != last_problem:
                    log.warning(
                        "counter store connection failed, retrying with backoff: %s",
                        problem,
                        extra={"store": self._target.description},
                    )
                last_problem = problem
                if self._stop.wait(backoff.next_delay()):
                    raise StopRequestedError(f"{self._target.description} is unreachable") from None
                continue
            except psycopg.Error as error:
                raise CounterStoreError(
                    f"{self._target.description}: {self._target.explain(error)}; "
                    "the database was left untouched"
                ) from None
            if last_problem:
                log.info("counter store reachable again", extra={"store": self._target.description})
            return result

    def _connect(self) -> _Connection:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(self._target.conninfo, autocommit=True)
        return self._connection


def read_postgres_counter(database_url: str) -> CounterReading:
    """The counter's position and pinned key length, in a read-only transaction."""
    target = _Target(database_url)
    try:
        with psycopg.connect(target.conninfo) as connection:
            connection.read_only = True
            row = connection.execute(
                "SELECT value FROM mini_forge_mapping WHERE name = 'KEY_LENGTH'"
            ).fetchone()
            key_length = pinned_key_length(row and row[0], target.description)
            store = PostgresCounterStore(target, KeyCodec(key_length).keyspace_size)
            return CounterReading(store._read_counter(connection), key_length)
    except psycopg.Error as error:
        raise CounterStoreError(f"{target.description}: {target.explain(error)}") from None
