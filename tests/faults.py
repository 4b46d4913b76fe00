"""Tools for fault tests: a TCP proxy that cuts replies or switches targets, and a key load.

`TcpProxy` sits between a client and a redis-server on loopback. It can lose the reply to
one chosen request (the request reaches Redis and runs, the answer never comes back), drop
every open connection, and point new connections at another server (a failover).
`KeyLoad` runs many concurrent HTTP clients against API instances in a background thread
and records every key, every status and when each 200 arrived, so a test can count
duplicates and measure how long service was out.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import os
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.support import ROOT, BackgroundThread, Processes, RedisServer, free_port

_BUFFER = 65536
# A small pool refills often, so pushes and pops interleave all through a fault test.
SMALL_POOL = {"POOL_TARGET": "20000", "POOL_LOW_WATERMARK": "10000", "RANGE_SIZE": "1000"}


def system_processes(directory: Path, redis_url: str, **env: str) -> Processes:
    """A process group on `redis_url` with a fresh SQLite counter and a small pool."""
    return Processes(
        directory,
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{directory / 'counter.db'}",
            "CONFIG_PATH": str(ROOT / "config/config.yml"),
            **SMALL_POOL,
            **env,
        },
    )


def start_apis(processes: Processes, count: int) -> list[int]:
    """Start `count` API instances on free ports; their ports."""
    ports = [free_port() for _ in range(count)]
    for port in ports:
        processes.api(port)
    return ports


def lose_unsynced_aof_tail(directory: Path) -> None:
    """What a machine crash does to an `everysec` AOF: the last unsynced writes are gone.

    (A kill -9 of redis-server alone loses nothing: its writes are already in the page
    cache.) Redis loads the truncated file (aof-load-truncated is on by default).
    """
    newest = max((directory / "appendonlydir").glob("*.incr.aof"), key=lambda p: p.stat().st_mtime)
    os.truncate(newest, max(0, newest.stat().st_size - 64 * 1024))


def pool_keys_in_copy(server: RedisServer, directory: Path, pool: str) -> set[str]:
    """The pool a restart of `server` would load: read from a copy of its data directory."""
    shutil.copytree(server.directory, directory)
    copy = RedisServer(directory, server.args).start()
    try:
        return pool_keys(copy, pool)
    finally:
        copy.kill()


def pool_keys(server: RedisServer, pool: str) -> set[str]:
    with server.client() as client:
        keys: list[bytes] = client.lrange(pool, 0, -1)
        return {key.decode() for key in keys}


class _Pipe:
    """One proxied connection: the client socket and the server socket."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.cut_reply = False

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class TcpProxy:
    """A loopback TCP proxy to `target_port`; `url` is the Redis URL through it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cuts = 0
        self._cut_pattern: bytes | None = None
        self._pipes: set[_Pipe] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut_reply_to(self, pattern: bytes) -> None:
        """Lose the reply to the next request containing `pattern`, then close its connection."""
        with self._lock:
            self._cut_pattern = pattern

    def switch_target(self, port: int) -> None:
        """Send new connections to `port` and drop the open ones (what a failover looks like)."""
        self.target_port = port
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            pipes, self._pipes = self._pipes, set()
        for pipe in pipes:
            pipe.close()

    def close(self) -> None:
        self._listener.close()
        self.drop_connections()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            pipe = _Pipe(client, server)
            with self._lock:
                self._pipes.add(pipe)
            threading.Thread(target=self._requests, args=(pipe,), daemon=True).start()
            threading.Thread(target=self._replies, args=(pipe,), daemon=True).start()

    def _requests(self, pipe: _Pipe) -> None:
        try:
            while data := pipe.client.recv(_BUFFER):
                with self._lock:
                    if self._cut_pattern is not None and self._cut_pattern in data:
                        self._cut_pattern = None
                        pipe.cut_reply = True
                pipe.server.sendall(data)
        except OSError:
            pass
        self._forget(pipe)

    def _replies(self, pipe: _Pipe) -> None:
        try:
            while data := pipe.server.recv(_BUFFER):
                if pipe.cut_reply:
                    with self._lock:
                        self.cuts += 1
                    break
                pipe.client.sendall(data)
        except OSError:
            pass
        self._forget(pipe)

    def _forget(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)
        pipe.close()


@dataclass
class LoadResult:
    """What the clients of one `KeyLoad` saw."""

    keys: list[str]
    statuses: Counter[int]
    connection_errors: int
    ok_times: list[float]
    started: float
    stopped: float
    ok_times_by_port: dict[int, list[float]] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return len(self.keys) - len(set(self.keys))

    def first_ok_after(self, moment: float, port: int | None = None) -> float | None:
        """Seconds from `moment` to the first 200 after it (from `port` if given)."""
        times = self.ok_times if port is None else self.ok_times_by_port.get(port, [])
        index = bisect.bisect_right(times, moment)
        return times[index] - moment if index < len(times) else None

    def longest_outage(self) -> float:
        """The longest time without any 200, from the first 200 to the end of the load."""
        times = [*self.ok_times, self.stopped]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def summary(self) -> str:
        return (
            f"keys={len(self.keys)} unique={len(set(self.keys))} duplicates={self.duplicates} "
            f"503s={self.statuses[503]} other_statuses="
            f"{ {s: n for s, n in self.statuses.items() if s not in (200, 503)} } "
            f"connection_errors={self.connection_errors} "
            f"longest_outage={self.longest_outage():.2f}s "
            f"duration={self.stopped - self.started:.1f}s"
        )


class KeyLoad(BackgroundThread):
    """`clients` concurrent HTTP clients fetching keys round-robin from `ports` until stopped.

    A client that gets a 503 or a connection error waits `pause` seconds and moves on to the
    next port, like a client behind a load balancer.
    """

    def __init__(self, ports: Sequence[int], clients: int, pause: float = 0.05) -> None:
        self.ports = list(ports)
        self.clients = clients
        self.pause = pause
        self._keys: list[str] = []
        self._statuses: Counter[int] = Counter()
        self._connection_errors = 0
        self._ok_times: list[float] = []
        self._ok_by_port: dict[int, list[float]] = {port: [] for port in self.ports}
        self._started = 0.0
        super().__init__()

    def __enter__(self) -> KeyLoad:
        self._started = time.monotonic()
        return super().__enter__()

    def stop(self) -> LoadResult:
        self.halt()
        return LoadResult(
            self._keys,
            self._statuses,
            self._connection_errors,
            self._ok_times,
            self._started,
            time.monotonic(),
            self._ok_by_port,
        )

    @property
    def served(self) -> int:
        return len(self._keys)

    def keys_so_far(self) -> list[str]:
        return list(self._keys)

    def ok_times(self, port: int | None = None) -> list[float]:
        """When each 200 so far arrived (from `port` if given); the list grows while running."""
        return self._ok_times if port is None else self._ok_by_port[port]

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        # Idle connections are dropped before the server's keep-alive timeout ends them, so a
        # request never races the server closing its connection.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=2)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._client(session, index) for index in range(self.clients)))

    async def _client(self, session: aiohttp.ClientSession, index: int) -> None:
        turn = index
        while not self.stopping.is_set():
            port = self.ports[turn % len(self.ports)]
            turn += 1
            try:
                async with session.get(f"http://127.0.0.1:{port}/get-key") as response:
                    body = await response.text()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError):
                self._connection_errors += 1
                await asyncio.sleep(self.pause)
                continue
            self._statuses[status] += 1
            if status == 200:
                now = time.monotonic()
                self._keys.append(body)
                self._ok_times.append(now)
                self._ok_by_port[port].append(now)
            else:
                await asyncio.sleep(self.pause)
