"""The processes of one benchmark run: a private redis-server, servers, refillers.

Everything listens on a free loopback port, writes its log under the run's directory and is
stopped (SIGTERM, then SIGKILL) when the stack closes, whatever happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import redis

from api.server import BACKLOG, KEEP_ALIVE_SECONDS, GuardedHttpProtocol
from mini_forge.up import stop_process
from tests.support import ROOT, RedisServer, free_port, http_ok, wait_until

POOL_KEY = "bench:pool"
# The flags api/server.py gives uvicorn, so that the ceiling runs under the same server.
UVICORN_FLAGS = [
    "--loop", "uvloop", "--http", f"{GuardedHttpProtocol.__module__}:GuardedHttpProtocol",
    "--no-access-log", "--log-level", "warning",
    "--backlog", str(BACKLOG), "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS),
]  # fmt: skip
WORKERS = 2


class Stack:
    """Starts processes for a benchmark and stops all of them on close."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.redis = RedisServer(directory / "redis")
        self._processes: list[subprocess.Popen[bytes]] = []
        self._latest: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Stack:
        self.redis.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        for process in reversed(self._processes):
            stop_process(process)
        self.redis.stop()

    def client(self) -> redis.Redis:
        return self.redis.client()

    def env(self, **settings: str) -> dict[str, str]:
        """mini-forge settings for a process of this stack."""
        return {
            "REDIS_URL": self.redis.url,
            "POOL_KEY": POOL_KEY,
            "CONFIG_PATH": str(ROOT / "config/config.yml"),
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            **settings,
        }

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.directory / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        self._processes.append(process)
        self._latest[name] = process
        return process

    def refiller(self, name: str, **settings: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "mini_forge.cli", "refiller"]
        return self.start(name, command, self.env(**settings))

    def api(self) -> str:
        """`mini-forge api` with 2 workers; its base URL once it answers."""
        port = free_port()
        command = [sys.executable, "-m", "mini_forge.cli", "api", "--port", str(port),
                   "--workers", str(WORKERS)]  # fmt: skip
        self.start("api", command, self.env(EMPTY_POOL_WAIT_MS="200"))
        return self._wait_for(f"http://127.0.0.1:{port}", "/healthz")

    def ceiling(self) -> str:
        """The bare ASGI app under the API's uvicorn flags; its base URL once it answers."""
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--port", str(port),
                   "--workers", str(WORKERS), *UVICORN_FLAGS]  # fmt: skip
        self.start("ceiling", command, self.env())
        return self._wait_for(f"http://127.0.0.1:{port}", "/")

    @property
    def redis_pid(self) -> int:
        assert self.redis.process is not None, "the stack is not open"
        return self.redis.process.pid

    def pid(self, name: str) -> int:
        """The process id of the process started as `name` (the latest one of that name)."""
        return self._latest[name].pid

    def log_path(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    @staticmethod
    def _wait_for(base_url: str, probe: str) -> str:
        wait_until(lambda: http_ok(base_url + probe), 30, f"{base_url}{probe}", interval=0.1)
        return base_url

    def fill_pool(self, keys: int, database: Path) -> None:
        """Run a refiller until the pool holds at least `keys`, then stop it."""
        client = self.client()
        if int(client.llen(POOL_KEY)) >= keys:
            return
        refiller = self.refiller(
            "top-up",
            DATABASE_URL=f"sqlite:///{database}",
            POOL_TARGET=str(keys),
            POOL_LOW_WATERMARK=str(keys),
        )
        deadline = time.monotonic() + 300
        try:
            while int(client.llen(POOL_KEY)) < keys:
                if refiller.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the top-up refiller failed; see {self.log_path('top-up')}")
                time.sleep(0.05)
        finally:
            stop_process(refiller)
