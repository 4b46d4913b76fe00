"""Failure mode 2: Redis comes back with older data (restart from AOF or RDB, or a failover).

Each test serves keys under load, brings back a Redis whose pool may contain keys already
served, and checks that none is served twice. Each also reads what the returning Redis held,
so the test shows whether it really brought back served keys (the case the run-id stamp is
there for).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import (
    KeyLoad,
    LoadResult,
    TcpProxy,
    lose_unsynced_aof_tail,
    pool_keys,
    pool_keys_in_copy,
    start_apis,
    system_processes,
)
from tests.support import Processes, RedisServer, wait_until

pytestmark = pytest.mark.faults

POOL = "mini-forge:pool"
CLIENTS = 50
RECOVERY_BOUND_SECONDS = 5


@pytest.fixture
def group(tmp_path: Path) -> Iterator[list[Processes]]:
    """Holds the test's process group so it is stopped even when the test fails."""
    holder: list[Processes] = []
    yield holder
    for processes in holder:
        processes.stop_all()


def _serve_then(load: KeyLoad, keys: int) -> None:
    wait_until(lambda: load.served >= keys, 30, f"{keys} keys served")


def _assert_recovered_without_duplicates(
    result: LoadResult, back: float, processes: Processes
) -> None:
    """No key served twice; 200s again within the bound; the old pool was discarded."""
    assert result.duplicates == 0
    recovery = result.first_ok_after(back)
    assert recovery is not None and recovery <= RECOVERY_BOUND_SECONDS
    assert "discarded a pool filled in another redis process" in processes.log("refiller")


@pytest.mark.parametrize(
    "persistence",
    [
        pytest.param(["--appendonly", "yes", "--appendfsync", "everysec"], id="aof-everysec"),
        pytest.param(["--save", "1 1"], id="rdb-save-1-1"),
    ],
)
def test_a_redis_restarted_from_its_files_serves_no_key_twice(
    tmp_path: Path, group: list[Processes], persistence: list[str]
) -> None:
    server = RedisServer(tmp_path / "redis", persistence).start()
    try:
        processes = system_processes(tmp_path, server.url)
        group.append(processes)
        processes.refiller()
        ports = start_apis(processes, 2)
        with KeyLoad(ports, CLIENTS) as load:
            _serve_then(load, 5000)
            time.sleep(1)
            server.kill()
            if "--appendonly" in persistence:
                lose_unsynced_aof_tail(server.directory)
            served_before = set(load.keys_so_far())
            restored = pool_keys_in_copy(server, tmp_path / "inspect", POOL)
            server.start()
            back = time.monotonic()
            _serve_then(load, len(served_before) + 5000)
            result = load.stop()
        print(
            f"\n{persistence}: restored pool {len(restored)} keys, of which "
            f"{len(restored & served_before)} were already served; {result.summary()}"
        )
        assert restored & served_before, "the restarted redis should hold keys already served"
        _assert_recovered_without_duplicates(result, back, processes)
    finally:
        server.kill()


def test_a_promoted_replica_that_missed_pops_serves_no_key_twice(
    tmp_path: Path, group: list[Processes]
) -> None:
    primary = RedisServer(tmp_path / "primary", ["--repl-diskless-sync-delay", "0"]).start()
    replica = RedisServer(
        tmp_path / "replica", ["--replicaof", "127.0.0.1", str(primary.port)]
    ).start()
    proxy = TcpProxy(primary.port)
    try:
        processes = system_processes(tmp_path, proxy.url)
        group.append(processes)
        processes.refiller()
        ports = start_apis(processes, 2)
        wait_until(lambda: len(pool_keys(replica, POOL)) >= 10000, 20, "the replica to sync")
        with KeyLoad(ports, CLIENTS) as load:
            _serve_then(load, 5000)
            # Promote the replica while clients still pop from the primary: the replica
            # never sees those pops, as after an asynchronous failover.
            replica.client().replicaof("NO", "ONE")
            promoted_pool = pool_keys(replica, POOL)
            time.sleep(0.5)
            served_before = set(load.keys_so_far())
            proxy.switch_target(replica.port)
            primary.kill()
            back = time.monotonic()
            _serve_then(load, len(served_before) + 5000)
            result = load.stop()
        resurrected = promoted_pool & served_before
        print(
            f"\nfailover: promoted pool {len(promoted_pool)} keys, of which "
            f"{len(resurrected)} were already served; {result.summary()}"
        )
        assert resurrected, "the promoted replica should hold keys already served"
        _assert_recovered_without_duplicates(result, back, processes)
    finally:
        proxy.close()
        primary.kill()
        replica.kill()
