"""The counter store contract, run against every store: SQLite and PostgreSQL.

Each test gets a fresh, empty store (a new SQLite file, or a new PostgreSQL schema) and a
way to reach its tables behind the store's back, to damage or inspect them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from refiller.counter import (
    CounterReading,
    CounterStore,
    CounterStoreError,
    KeyspaceExhaustedError,
    MappingChangedError,
    Range,
    open_counter_store,
    read_counter,
)
from tests.postgres import run_sql

KEYSPACE = 1_000_000
MAPPING = {"KEY_LENGTH": "7", "KEY_ORDER": "sequential"}


@dataclass(frozen=True)
class Backend:
    """One kind of counter store under test, with raw access to its tables."""

    url: str
    counter_table: str
    mapping_table: str
    sql: Callable[[str], tuple[Any, ...] | None]
    # Turns the counter column into one that can hold any value, if the engine needs it.
    untype_counter: str | None

    def open(
        self, keyspace_size: int = KEYSPACE, mapping: dict[str, str] = MAPPING
    ) -> CounterStore:
        return open_counter_store(self.url, keyspace_size, mapping)

    def stored_counter(self) -> object:
        row = self.sql(f"SELECT value FROM {self.counter_table} WHERE name = 'keys'")
        return None if row is None else row[0]

    def set_counter(self, value: object) -> None:
        if not isinstance(value, int) and self.untype_counter:
            self.sql(self.untype_counter)
        self.sql(f"UPDATE {self.counter_table} SET value = {value!r} WHERE name = 'keys'")


def _sqlite_sql(path: Path) -> Callable[[str], tuple[Any, ...] | None]:
    def run(statement: str) -> tuple[Any, ...] | None:
        connection = sqlite3.connect(path)
        try:
            row: tuple[Any, ...] | None = connection.execute(statement).fetchone()
            connection.commit()
            return row
        finally:
            connection.close()

    return run


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        path = tmp_path / "counter.db"
        return Backend(f"sqlite:///{path}", "counters", "mapping", _sqlite_sql(path), None)
    url: str = request.getfixturevalue("postgres_url")
    return Backend(
        url,
        "mini_forge_counter",
        "mini_forge_mapping",
        lambda statement: run_sql(url, statement),
        "ALTER TABLE mini_forge_counter ALTER COLUMN value TYPE TEXT",
    )


def test_a_fresh_store_hands_out_consecutive_ranges(backend: Backend) -> None:
    store = backend.open()
    assert store.position() == 0
    assert store.reserve(10) == Range(0, 10)
    assert store.reserve(5) == Range(10, 15)
    assert store.position() == 15
    store.close()


def test_reservations_survive_reopening(backend: Backend) -> None:
    store = backend.open()
    store.reserve(100)
    store.close()
    reopened = backend.open()
    assert reopened.reserve(1) == Range(100, 101)
    reopened.close()


def test_read_counter_reads_position_and_key_length_without_changing_anything(
    backend: Backend,
) -> None:
    store = backend.open()
    store.reserve(123)
    store.close()
    assert read_counter(backend.url) == CounterReading(position=123, key_length=7)
    assert backend.stored_counter() == 123


def test_an_empty_reservation_is_refused_and_changes_nothing(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(ValueError):
        store.reserve(0)
    assert store.position() == 0
    store.close()


def test_the_last_range_is_cut_at_the_keyspace_end_and_then_it_is_exhausted(
    backend: Backend,
) -> None:
    store = backend.open(keyspace_size=25)
    assert [store.reserve(10) for _ in range(3)] == [Range(0, 10), Range(10, 20), Range(20, 25)]
    with pytest.raises(KeyspaceExhaustedError):
        store.reserve(10)
    store.close()
    reopened = backend.open(keyspace_size=25)
    with pytest.raises(KeyspaceExhaustedError):
        reopened.reserve(1)
    assert reopened.position() == 25
    reopened.close()


def test_a_changed_key_mapping_is_refused(backend: Backend) -> None:
    backend.open().close()
    with pytest.raises(MappingChangedError, match="KEY_LENGTH \\(pinned '7', configured '8'\\)"):
        backend.open(mapping={**MAPPING, "KEY_LENGTH": "8"})
    store = backend.open()
    assert store.position() == 0
    store.close()


def test_a_setting_new_to_the_mapping_is_pinned_on_the_next_open(backend: Backend) -> None:
    backend.open().close()
    backend.open(mapping={**MAPPING, "KEY_SECRET": "fingerprint-a"}).close()
    with pytest.raises(MappingChangedError) as refused:
        backend.open(mapping={**MAPPING, "KEY_SECRET": "fingerprint-b"})
    assert "KEY_SECRET (its fingerprint differs)" in str(refused.value)
    assert "fingerprint-a" not in str(refused.value)


@pytest.mark.parametrize("tampered", [-1, KEYSPACE + 1, "12abc"])
def test_a_tampered_counter_is_refused_and_left_as_it_is(
    backend: Backend, tampered: object
) -> None:
    store = backend.open()
    store.reserve(10)
    backend.set_counter(tampered)
    with pytest.raises(CounterStoreError, match="counter value"):
        store.reserve(10)
    with pytest.raises(CounterStoreError, match="counter value"):
        backend.open()
    store.close()
    assert str(backend.stored_counter()) == str(tampered)


def test_a_missing_table_is_refused_and_nothing_is_recreated(backend: Backend) -> None:
    store = backend.open()
    store.reserve(10)
    store.close()
    backend.sql(f"DROP TABLE {backend.mapping_table}")
    with pytest.raises(CounterStoreError, match="missing"):
        backend.open()
    assert backend.stored_counter() == 10
    with pytest.raises(Exception, match="mapping"):
        backend.sql(f"SELECT * FROM {backend.mapping_table}")


def test_a_missing_counter_row_is_refused_and_not_recreated(backend: Backend) -> None:
    backend.open().close()
    backend.sql(f"DELETE FROM {backend.counter_table}")
    with pytest.raises(CounterStoreError, match="counter row 'keys' is missing"):
        backend.open()
    assert backend.stored_counter() is None


def test_a_counter_table_of_another_shape_is_refused_and_left_untouched(backend: Backend) -> None:
    backend.open().close()
    backend.sql(f"ALTER TABLE {backend.counter_table} RENAME COLUMN value TO amount")
    with pytest.raises(CounterStoreError, match="left untouched"):
        backend.open()
    assert backend.sql(f"SELECT amount FROM {backend.counter_table}") == (0,)


def test_stores_opened_at_once_on_an_empty_store_all_come_up(backend: Backend) -> None:
    reserved: list[Range] = []
    failures: list[BaseException] = []
    start_together = threading.Barrier(6)

    def open_and_reserve() -> None:
        start_together.wait()
        try:
            store = backend.open()
            reserved.append(store.reserve(7))
            store.close()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=open_and_reserve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert sorted(reserved, key=lambda r: r.start) == [Range(7 * i, 7 * i + 7) for i in range(6)]


def test_concurrent_reservations_never_overlap(backend: Backend) -> None:
    backend.open().close()
    reserved: list[Range] = []

    def reserve_many() -> None:
        store = backend.open()
        reserved.extend(store.reserve(3) for _ in range(50))
        store.close()

    threads = [threading.Thread(target=reserve_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(reserved, key=lambda r: r.start) == [Range(3 * i, 3 * i + 3) for i in range(200)]
