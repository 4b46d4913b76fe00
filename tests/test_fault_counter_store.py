"""Failure mode 3 and bad counter stores: one clear line, exit non-zero, the file untouched."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from refiller.mapping import make_codec, mapping_identity
from refiller.sqlite_store import SQLiteCounterStore
from shared.settings import Settings
from tests.support import ROOT, Processes, RedisServer, wait_until

pytestmark = pytest.mark.faults

POOL = "mini-forge:pool"
# The mapping a refiller started by these tests pins (the suite sets KEY_SECRET).
CODEC = make_codec(Settings(KEY_SECRET=os.environ["KEY_SECRET"]))
SMALL_POOL = {"POOL_TARGET": "5000", "POOL_LOW_WATERMARK": "1000", "RANGE_SIZE": "1000"}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _good_store(path: Path) -> None:
    SQLiteCounterStore.open(
        f"sqlite:///{path}", CODEC.keyspace_size, mapping_identity(CODEC)
    ).close()


def _edit(path: Path, sql: str, *args: object) -> None:
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(sql, args)
    connection.close()


def _random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(16384))


def _missing_table(path: Path) -> None:
    _edit(path, "CREATE TABLE notes (text TEXT)")


def _negative_counter(path: Path) -> None:
    _good_store(path)
    _edit(path, "UPDATE counters SET value = -5")


def _text_counter(path: Path) -> None:
    _good_store(path)
    _edit(path, "UPDATE counters SET value = 'lots'")


def _fractional_counter(path: Path) -> None:
    _good_store(path)
    _edit(path, "UPDATE counters SET value = 12.5")


def _missing_row(path: Path) -> None:
    _good_store(path)
    _edit(path, "DELETE FROM counters")


def _refiller(env: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mini_forge.cli", "refiller"],
        cwd=ROOT,
        env={**os.environ, "CONFIG_PATH": str(ROOT / "config/config.yml"), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_one_clear_line(output: str, *words: str) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    for word in words:
        assert word in lines[0], output


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        pytest.param(_random_bytes, ["not a database"], id="random-bytes"),
        pytest.param(_missing_table, ["table counters, mapping is missing"], id="missing-table"),
        pytest.param(_negative_counter, ["-5 is outside"], id="negative-counter"),
        pytest.param(_text_counter, ["'lots' is not an integer"], id="text-counter"),
        pytest.param(_fractional_counter, ["12.5 is not an integer"], id="fractional-counter"),
        pytest.param(_missing_row, ["counter row 'keys' is missing"], id="missing-row"),
    ],
)
def test_a_damaged_counter_store_stops_the_refiller_and_is_left_untouched(
    tmp_path: Path,
    redis_server: RedisServer,
    damage: Callable[[Path], None],
    words: list[str],
) -> None:
    store = tmp_path / "counter.db"
    damage(store)
    before = _digest(store)

    result = _refiller({"REDIS_URL": redis_server.url, "DATABASE_URL": f"sqlite:///{store}"})

    assert result.returncode == 2
    _assert_one_clear_line(result.stderr, "mini-forge: counter store", str(store), *words)
    assert _digest(store) == before
    assert redis_server.client().llen(POOL) == 0


@pytest.fixture
def immutable_store(tmp_path: Path) -> Iterator[Path]:
    """A good store that not even root can write: `chattr +i` (tests run as root)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    store = tmp_path / "counter.db"
    _good_store(store)
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem does not support chattr +i")
    yield store
    subprocess.run(["chattr", "-i", str(store)], check=True)


def test_a_read_only_counter_store_stops_the_refiller_at_start(
    immutable_store: Path, redis_server: RedisServer
) -> None:
    before = _digest(immutable_store)

    result = _refiller(
        {"REDIS_URL": redis_server.url, "DATABASE_URL": f"sqlite:///{immutable_store}"}
    )

    assert result.returncode == 2
    _assert_one_clear_line(result.stderr, str(immutable_store), "readonly database")
    assert _digest(immutable_store) == before


def _backup(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as original, sqlite3.connect(target) as copy:
        original.backup(copy)
    original.close()
    copy.close()


def test_a_counter_store_restored_from_an_old_copy_is_refused(
    tmp_path: Path, redis_server: RedisServer, processes: Processes
) -> None:
    store = tmp_path / "counter.db"
    client = redis_server.client()
    refiller = processes.refiller("refiller-1", **SMALL_POOL)
    wait_until(lambda: client.llen(POOL) >= 5000, 20, "the first fill")
    refiller.terminate()
    assert refiller.wait(15) == 0
    _backup(store, tmp_path / "old-copy.db")

    refiller = processes.refiller("refiller-2", **SMALL_POOL)
    client.delete(POOL)  # every key served: the refiller reserves new ranges
    wait_until(lambda: client.llen(POOL) >= 5000, 20, "the second fill")
    refiller.terminate()
    assert refiller.wait(15) == 0
    high = int(client.get(f"{POOL}:high") or 0)
    assert high >= 10000

    for leftover in tmp_path.glob("counter.db-*"):
        leftover.unlink()
    shutil.copyfile(tmp_path / "old-copy.db", store)
    client.delete(POOL)
    refiller = processes.refiller("refiller-3", **SMALL_POOL)

    assert refiller.wait(20) == 1
    output = processes.log("refiller-3")
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "went back in time" in line]
    assert len(errors) == 1, output
    assert f"numbers up to {high} were already pushed" in errors[0]
    assert client.llen(POOL) == 0
    assert int(client.get(f"{POOL}:high") or 0) == high
