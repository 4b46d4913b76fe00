"""Several processes on one PostgreSQL counter: no overlaps, no deaths, no reuse after a loss."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import PASSWORD, run_sql
from tests.support import ROOT, Processes, RedisServer, wait_until

pytestmark = pytest.mark.system

RANGE_SIZE = 10


def start_worker(url: str, count: int, output: Path) -> subprocess.Popen[bytes]:
    with output.open("wb") as stdout, output.with_suffix(".err").open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.counter_worker", url, str(count), str(RANGE_SIZE)],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
        )


def read_ranges(output: Path) -> list[tuple[int, int]]:
    ranges = []
    for line in output.read_text().splitlines():
        start, end = line.split()
        ranges.append((int(start), int(end)))
    return ranges


def assert_disjoint(ranges: list[tuple[int, int]]) -> None:
    ordered = sorted(ranges)
    for (_, previous_end), (start, end) in itertools.pairwise(ordered):
        assert start >= previous_end, f"[{start}, {end}) overlaps a range ending at {previous_end}"


def test_four_processes_reserve_10000_ranges_without_overlap(
    postgres_url: str, tmp_path: Path
) -> None:
    outputs = [tmp_path / f"worker-{index}.out" for index in range(4)]
    workers = [start_worker(postgres_url, 2_500, output) for output in outputs]
    for worker in workers:
        assert worker.wait(240) == 0
    ranges = [taken for output in outputs for taken in read_ranges(output)]
    assert len(ranges) == 10_000
    assert_disjoint(ranges)
    # Nothing failed, so nothing was lost either: the ranges tile [0, 100000) exactly.
    assert sorted(ranges) == [(start, start + RANGE_SIZE) for start in range(0, 100_000, 10)]
    assert run_sql(postgres_url, "SELECT value FROM mini_forge_counter") == (100_000,)


def _kill_store_backend(url: str) -> bool:
    row = run_sql(
        url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'mini-forge'",
    )
    return row is not None and row[0] > 0


def test_a_process_whose_connection_is_killed_retries_and_reuses_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "worker.out"
    # Far more ranges than the last kill waits for, so the worker is still at work for it.
    worker = start_worker(postgres_url, 3_000, output)
    kills = 0
    for progress in (200, 400, 600, 800, 1_000):
        wait_until(lambda p=progress: len(read_ranges(output)) >= p, 60, f"{progress} ranges")
        wait_until(lambda: _kill_store_backend(postgres_url), 30, "a backend to terminate")
        kills += 1
    assert worker.wait(120) == 0
    ranges = read_ranges(output)
    assert len(ranges) == 3_000
    assert_disjoint(ranges)
    assert ranges == sorted(ranges), "a range went back in time"
    (position,) = run_sql(postgres_url, "SELECT value FROM mini_forge_counter") or (None,)
    assert position >= ranges[-1][1]
    errors = output.with_suffix(".err").read_text()
    assert errors.count("retrying with backoff") >= kills
    assert PASSWORD not in errors


def test_real_refillers_fill_the_pool_from_postgres(
    postgres_url: str, processes: Processes, redis_server: RedisServer
) -> None:
    settings = {
        "DATABASE_URL": postgres_url,
        "RANGE_SIZE": "500",
        "POOL_LOW_WATERMARK": "2000",
        "POOL_TARGET": "5000",
    }
    refillers = [processes.refiller(f"refiller-{index}", **settings) for index in range(2)]
    client = redis_server.client()
    wait_until(lambda: client.llen("mini-forge:pool") >= 5_000, 60, "the pool to fill")
    # One refiller may fill the pool alone while the other is still importing; SIGTERM must
    # reach both after they installed their handlers.
    names = [f"refiller-{index}" for index in range(2)]
    wait_until(
        lambda: all("refiller started" in processes.log(name) for name in names), 30, "starts"
    )
    for refiller in refillers:
        assert refiller.poll() is None
    keys = client.lrange("mini-forge:pool", 0, -1)
    assert len(keys) == len(set(keys))
    (position,) = run_sql(postgres_url, "SELECT value FROM mini_forge_counter") or (None,)
    assert position >= len(keys)
    processes.stop_all()
    assert [refiller.returncode for refiller in refillers] == [0, 0]
    for index in range(2):
        assert PASSWORD not in processes.log(f"refiller-{index}")
