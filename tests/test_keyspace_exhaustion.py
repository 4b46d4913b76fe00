"""Keyspace exhaustion: the last range is cut, every key is served once, then 503 for good."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from refiller.counter import KeyspaceExhaustedError, Range
from refiller.sqlite_store import SQLiteCounterStore
from shared.codec import ALPHABET
from tests.support import Processes, free_port


def test_the_last_range_is_cut_and_nothing_is_reserved_after_it(tmp_path: Path) -> None:
    store = SQLiteCounterStore.open(f"sqlite:///{tmp_path / 'c.db'}", 3844, {"KEY_LENGTH": "2"})
    assert [store.reserve(1000) for _ in range(4)][-1] == Range(3000, 3844)
    with pytest.raises(KeyspaceExhaustedError):
        store.reserve(1)
    assert store.position() == 3844
    store.close()


def drain(base_url: str) -> tuple[list[str], httpx.Response]:
    """GET /get-key until a 503 that is not a momentarily empty pool."""
    keys: list[str] = []
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while True:
            response = client.get("/get-key")
            if response.status_code == 200:
                keys.append(response.text)
            elif response.json()["error"] != "pool-empty":
                return keys, response


@pytest.mark.system
def test_drain_the_whole_keyspace_of_length_2(processes: Processes, tmp_path: Path) -> None:
    env = {"KEY_LENGTH": "2", "KEY_SECRET": "exhaustion-test", "RANGE_SIZE": "1000"}
    refiller = processes.refiller(**env)
    port = free_port()
    processes.api(port, **env)

    keys, final = drain(f"http://127.0.0.1:{port}")

    assert len(keys) == 3844 and len(set(keys)) == 3844
    assert all(len(key) == 2 and set(key) <= set(ALPHABET) for key in keys)
    assert keys[:10] != sorted(keys[:10])  # scrambled, not 00, 01, 02, ...
    assert final.status_code == 503
    assert final.json()["error"] == "keyspace-exhausted"
    assert final.headers["Retry-After"] == "3600"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        assert client.get("/get-key").json()["error"] == "keyspace-exhausted"
    assert refiller.poll() is None, "the refiller must keep running after exhaustion"
    log = processes.log("refiller")
    assert log.count("keyspace exhausted") == 1
    assert "less than 1% of the keyspace is left" in log
    assert "exhaustion-test" not in log  # the secret is never logged
    with sqlite3.connect(tmp_path / "counter.db") as connection:
        assert connection.execute("SELECT value FROM counters").fetchone() == (3844,)
    connection.close()
