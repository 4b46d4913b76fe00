"""A counter store pins its key mapping; a changed KEY_SECRET or KEY_LENGTH is refused.

The store-level tests open the SQLite file directly; the system tests start real refiller
processes and check the exit status, the one-line error and that the file is unchanged.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from refiller.counter import MappingChangedError
from refiller.mapping import make_codec, mapping_identity
from refiller.sqlite_store import SQLiteCounterStore
from shared.settings import Settings
from tests.support import Processes, RedisServer, wait_until


def open_store(path: Path, settings: Settings) -> SQLiteCounterStore:
    codec = make_codec(settings)
    return SQLiteCounterStore.open(
        f"sqlite:///{path}", codec.keyspace_size, mapping_identity(codec)
    )


def contents(path: Path) -> tuple[str, list[str]]:
    """The file's bytes (as a hash) and its logical content."""
    with sqlite3.connect(path) as connection:
        dump = list(connection.iterdump())
    connection.close()
    return hashlib.sha256(path.read_bytes()).hexdigest(), dump


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (Settings(KEY_LENGTH=3, KEY_SECRET="hunter-two"), "KEY_SECRET (its fingerprint differs)"),
        (
            Settings(KEY_LENGTH=2, KEY_SECRET="hunter-one"),
            "KEY_LENGTH (pinned '3', configured '2')",
        ),
        (Settings(KEY_LENGTH=3, KEY_ORDER="sequential"), "KEY_ORDER (pinned 'scrambled', "),
    ],
)
def test_store_refuses_a_changed_mapping_and_changes_nothing(
    tmp_path: Path, changed: Settings, named: str
) -> None:
    path = tmp_path / "counter.db"
    store = open_store(path, Settings(KEY_LENGTH=3, KEY_SECRET="hunter-one"))
    for _ in range(5):
        store.reserve(1000)  # 5000 > 62^2: the counter is outside the shorter keyspace
    store.close()
    before = contents(path)

    with pytest.raises(MappingChangedError) as error:
        open_store(path, changed)

    assert named in str(error.value)
    assert "hunter" not in str(error.value)
    assert contents(path) == before
    reopened = open_store(path, Settings(KEY_LENGTH=3, KEY_SECRET="hunter-one"))
    assert reopened.position() == 5000
    reopened.close()


def fill_once(processes: Processes, redis_server: RedisServer, **env: str) -> None:
    """Run a refiller until it pushed keys, then stop it cleanly."""
    refiller = processes.refiller("first-refiller", **env)
    with redis_server.client() as client:
        wait_until(lambda: client.llen("mini-forge:pool") >= 5000, 30, "the first refill")
    refiller.terminate()
    assert refiller.wait(15) == 0


@pytest.mark.system
@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"KEY_SECRET": "hunter-two"}, "KEY_SECRET (its fingerprint differs)"),
        ({"KEY_LENGTH": "2"}, "KEY_LENGTH (pinned '3', configured '2')"),
    ],
)
def test_refiller_with_a_changed_mapping_exits_2_and_changes_nothing(
    processes: Processes,
    redis_server: RedisServer,
    tmp_path: Path,
    changed: dict[str, str],
    named: str,
) -> None:
    first = {
        "KEY_LENGTH": "3",
        "KEY_SECRET": "hunter-one",
        "POOL_LOW_WATERMARK": "5000",
        "POOL_TARGET": "5000",
    }
    fill_once(processes, redis_server, **first)
    counter_file = tmp_path / "counter.db"
    before = contents(counter_file)

    refused = processes.refiller("second-refiller", **{**first, **changed})

    assert refused.wait(30) == 2
    output = processes.log("second-refiller")
    assert named in output
    assert "the key mapping changed since this counter was first used" in output
    assert "Traceback" not in output and "hunter" not in output
    assert contents(counter_file) == before
