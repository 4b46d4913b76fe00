"""Failure modes 4-6: processes killed (-9) or stopped (SIGTERM), several refillers at once.

Each test runs real refillers and API instances against a private redis-server, checks that
no key is ever handed out twice, and that service comes back by itself.
"""

from __future__ import annotations

import re
import signal
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from refiller.pool_writer import LOCK_TTL_MS, PoolWriter
from shared.codec import KeyCodec
from shared.pool import PoolNames
from tests.faults import SMALL_POOL, KeyLoad, start_apis
from tests.support import BackgroundThread, Processes, RedisServer, free_port, http_ok, wait_until

pytestmark = pytest.mark.faults

POOL = "mini-forge:pool"
LOCK = f"{POOL}:lock"
CODEC = KeyCodec(7)
RECOVERY_BOUND_SECONDS = 5
# One range of 5,000 small chunks: a refiller is "in the middle of a push" for a long while
# (about 1 s on a quiet 2-core machine; 1,000-key chunks took only 40 ms, a window that a
# loaded machine can miss between seeing the first keys and the signal landing).
LONG_CHUNK = 20
LONG_RANGES = {
    "RANGE_SIZE": "100000",
    "PUSH_CHUNK_SIZE": str(LONG_CHUNK),
    "POOL_TARGET": "200000",
    "POOL_LOW_WATERMARK": "200000",
    "KEY_ORDER": "sequential",  # the pool can then be compared with the numbers reserved
}


def _llen(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.llen(POOL))


class _PoolWatcher(BackgroundThread):
    """Samples the pool length every few milliseconds and keeps the largest value."""

    def __init__(self, server: RedisServer) -> None:
        self.largest = 0
        self._server = server
        super().__init__()

    def run(self) -> None:
        with self._server.client() as client:
            while not self.stopping.is_set():
                self.largest = max(self.largest, int(client.llen(POOL)))
                time.sleep(0.005)


def _get(client: redis.Redis, key: str) -> str:
    value = client.get(key)
    return value.decode() if isinstance(value, bytes) else ""


def _wait_for_a_pop_of(server: RedisServer, count: int, timeout: float) -> None:
    """Until an API pops `count` keys at once: `count` requests then wait inside it."""
    wanted = f"LPOP {POOL} {count}"
    deadline = time.monotonic() + timeout
    with server.client() as client, client.monitor() as monitor:
        while time.monotonic() < deadline:
            try:
                if monitor.next_command()["command"] == wanted:
                    return
            except redis.TimeoutError:
                continue
    raise AssertionError(f"timed out after {timeout}s waiting for {wanted!r}")


def _lock_token(processes: Processes, name: str) -> str:
    match = re.search(r"lock_token=(\w+)", processes.log(name))
    assert match, processes.log(name)
    return match.group(1)


def test_a_refiller_killed_in_the_middle_of_a_push_is_replaced_without_duplicates(
    redis_server: RedisServer, processes: Processes
) -> None:
    first = processes.refiller("refiller-1", **LONG_RANGES)
    wait_until(lambda: _llen(redis_server) > 0, 20, "the first chunks", interval=0.002)
    first.kill()
    first.wait()
    partly_pushed = _llen(redis_server)
    assert 0 < partly_pushed < 100000  # it died inside its first range

    processes.refiller("refiller-2", **LONG_RANGES)
    wait_until(lambda: _llen(redis_server) >= 200000, 60, "the replacement to fill the pool")

    keys = redis_server.client().lrange(POOL, 0, -1)
    assert len(keys) == len(set(keys))
    # The dead refiller's range is abandoned (a gap); the replacement starts after it.
    assert keys[:partly_pushed] == CODEC.encode_range(0, partly_pushed)
    assert keys[partly_pushed:] == CODEC.encode_range(100000, 100000 + len(keys) - partly_pushed)


@pytest.mark.parametrize("victim", ["api", "redis"])
def test_service_resumes_after_a_kill_9_once_the_dead_part_is_back(
    redis_server: RedisServer, processes: Processes, victim: str
) -> None:
    processes.refiller(**SMALL_POOL)
    ports = start_apis(processes, 2)
    with KeyLoad(ports, 50) as load:
        wait_until(lambda: load.served >= 3000, 30, "keys served")
        if victim == "api":
            name, process = next((n, p) for n, p in processes.started if n == f"api-{ports[0]}")
            process.kill()
            process.wait()
            time.sleep(0.5)
            processes.api(ports[0], name=f"{name}-again")
            back = time.monotonic()
        else:
            redis_server.kill()
            time.sleep(1)
            redis_server.start()
            back = time.monotonic()
        served_before = load.served
        wait_until(lambda: load.served >= served_before + 3000, 30, "keys served again")
        time.sleep(1)
        result = load.stop()
    print(f"\nkill -9 {victim}: {result.summary()}")
    assert result.duplicates == 0
    recovery = result.first_ok_after(back, ports[0] if victim == "api" else None)
    assert recovery is not None and recovery <= RECOVERY_BOUND_SECONDS


def test_sigterm_lets_an_api_finish_its_in_flight_requests(
    redis_server: RedisServer, processes: Processes
) -> None:
    port = free_port()
    api = processes.api(port, EMPTY_POOL_WAIT_MS="8000")
    # The pool is empty: each request waits in the API for keys (up to EMPTY_POOL_WAIT_MS).
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    for connection in connections:
        connection.settimeout(15)
        connection.sendall(b"GET /get-key HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    _wait_for_a_pop_of(redis_server, 20, 5)  # all 20 requests are in flight
    api.send_signal(signal.SIGTERM)
    wait_until(lambda: not http_ok(f"http://127.0.0.1:{port}/healthz"), 5, "no new connections")
    # Keys arrive only now, while the API shuts down. They are pushed from here rather than
    # by a refiller process, whose start could outlast the requests' wait on a slow machine.
    keys = CODEC.encode_range(0, 20)
    with redis_server.client() as client:
        PoolWriter(client, PoolNames(POOL)).check()  # stamp the pool for this redis process
        client.rpush(POOL, *keys)

    answers = []
    for connection in connections:
        with connection:
            answer = b""
            while chunk := connection.recv(4096):
                answer += chunk
            answers.append(answer)
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers), answers
    served = [answer.rsplit(b"\r\n\r\n", 1)[1] for answer in answers]
    assert len(set(served)) == 20
    assert sorted(served) == sorted(keys)
    # uvicorn re-raises the signal once it has shut down cleanly (the Unix convention).
    assert api.wait(15) in (0, -signal.SIGTERM)


def test_sigterm_stops_a_refiller_after_the_chunk_it_is_pushing(
    redis_server: RedisServer, processes: Processes
) -> None:
    refiller = processes.refiller(**LONG_RANGES)
    wait_until(lambda: _llen(redis_server) > 0, 20, "the first chunks", interval=0.002)
    refiller.send_signal(signal.SIGTERM)

    assert refiller.wait(15) == 0
    length = _llen(redis_server)
    assert length < 100000  # it stopped inside its first range, not at its end
    assert length % LONG_CHUNK == 0  # whole chunks only
    assert redis_server.client().lrange(POOL, 0, -1) == CODEC.encode_range(0, length)
    log = processes.log("refiller")
    assert "stopping after the current chunk" in log
    assert "refiller stopped" in log
    assert redis_server.client().get(LOCK) is None  # released for the next refiller


def test_several_refillers_stay_bounded_and_take_over_from_a_dead_lock_holder(
    redis_server: RedisServer, processes: Processes
) -> None:
    settings = {"POOL_TARGET": "100000", "POOL_LOW_WATERMARK": "50000", "PUSH_CHUNK_SIZE": "1000"}
    names = [f"refiller-{n}" for n in range(3)]
    refillers = {name: processes.refiller(name, **settings) for name in names}
    wait_until(lambda: all("lock_token=" in processes.log(n) for n in names), 20, "starts")
    tokens = {_lock_token(processes, name): name for name in names}
    client = redis_server.client()

    seen: list[str] = []  # the holder's token, as read by the wait (the refill may end after)

    def a_refiller_holds_the_lock() -> bool:
        if token := _get(client, LOCK):
            seen.append(token)
            return True
        if _llen(redis_server) >= 50000:
            client.delete(POOL)  # as if every key was served: a refill starts
        return False

    with _PoolWatcher(redis_server) as watcher:
        wait_until(a_refiller_holds_the_lock, 20, "a refiller to take the lock", interval=0.002)
        holder = tokens[seen[-1]]
        refillers[holder].kill()
        killed = time.monotonic()
        refillers[holder].wait()
        client.delete(POOL)  # another refill is needed, whether or not it died holding the lock

        def someone_else_holds_the_lock() -> bool:
            return tokens.get(_get(client, LOCK)) not in (None, holder)

        wait_until(someone_else_holds_the_lock, 15, "another refiller to take over", 0.002)
        takeover = time.monotonic() - killed
        wait_until(lambda: _llen(redis_server) >= 100000, 30, "the pool to be refilled")
        with ThreadPoolExecutor(1) as drain:  # serve half the pool: another refill
            drain.submit(client.lpop, POOL, 60000).result()
        wait_until(lambda: _llen(redis_server) >= 100000, 30, "a second refill")
        time.sleep(0.5)

    print(f"\nlock holder killed; another refiller took over after {takeover:.2f}s")
    assert takeover <= LOCK_TTL_MS / 1000 + 3
    assert watcher.largest <= 100000 + 1000  # at most one push chunk over the target
    keys = client.lrange(POOL, 0, -1)
    assert len(keys) == len(set(keys))
    for name in names:
        if name != holder:
            assert refillers[name].poll() is None, processes.log(name)


def test_sigterm_stops_a_refiller_waiting_on_a_locked_counter_store(
    processes: Processes, tmp_path: Path
) -> None:
    """A refiller that waits for the counter store still stops on SIGTERM, with status 0."""
    path = tmp_path / "counter.db"
    first = processes.refiller("first")
    wait_until(path.is_file, 20, "the counter store")
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # every other connection now waits
    try:
        # The busy line is logged once its busy timeout has passed: by then its SIGTERM
        # handler is in place (a fixed sleep could signal a child still importing).
        waiting = processes.refiller("waiting", DEBUG_ENABLED="true")
        wait_until(
            lambda: "counter store busy, retrying" in processes.log("waiting"),
            30,
            "the refiller to wait for the counter store",
            interval=0.2,
        )
        assert waiting.poll() is None, "it waits for the lock rather than giving up"
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(15) == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
