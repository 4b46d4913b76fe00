"""Real components for the tests: a private redis-server and mini-forge processes.

`RedisServer` runs a redis-server on a free loopback port in a temporary directory, so a
test can kill -9 it, restart it with its data, or give it persistence settings.
`Processes` starts refillers and API instances as real subprocesses and stops them all.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx
import redis

import mini_forge.up

ROOT = Path(__file__).resolve().parent.parent


_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before in this run: two bind(0) probes can get
    the same port when nothing has bound it in between."""
    port = mini_forge.up.free_port()
    while port in _ports_handed_out:
        port = mini_forge.up.free_port()
    _ports_handed_out.add(port)
    return port


def wait_until(condition: object, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition()` until true; fail the test after `timeout` seconds."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A private redis-server; `args` are extra config, e.g. ["--appendonly", "yes"]."""

    def __init__(self, directory: Path, args: Sequence[str] = (), port: int | None = None) -> None:
        self.directory = directory
        self.args = list(args)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.directory), "--save", "", "--appendonly", "no",
                   *self.args]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.answers, 10, f"redis-server on port {self.port}")
        return self

    def answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """kill -9: no shutdown save, exactly like a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Processes:
    """mini-forge processes started by one test; `stop_all()` ends every one of them."""

    def __init__(self, log_dir: Path, env: Mapping[str, str]) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: Sequence[str], **env: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "mini_forge.cli", *args],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append((name, process))
        return process

    def refiller(self, name: str = "refiller", **env: str) -> subprocess.Popen[bytes]:
        return self.start(name, ["refiller"], **env)

    def start_api(
        self, port: int, *args: str, name: str | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        """An API instance on `port` (extra CLI `args`, e.g. --workers), not waited for."""
        return self.start(name or f"api-{port}", ["api", "--port", str(port), *args], **env)

    def api(
        self, port: int, *args: str, name: str | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        """An API instance on `port`, once it answers /healthz."""
        process = self.start_api(port, *args, name=name, **env)
        wait_for_api(port)
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text()

    def stop_all(self) -> None:
        for _name, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process in self.started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_api(port: int) -> None:
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 20, f"api on port {port}")


def http_ok(url: str) -> bool:
    """Whether a GET of `url` answers 200. Plain http.client: cheap enough to poll from a
    process that also runs a load generator (building an httpx client costs ~25 ms of CPU)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=1)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def pool_full(base: str, target: int, headers: Mapping[str, str] | None = None) -> bool:
    """/readyz answers 200 with `target` keys in the pool: tests that count keys start here,
    not at the first key (the refiller may still be pushing)."""
    response = httpx.get(f"{base}/readyz", headers=headers, timeout=5)
    return response.status_code == 200 and response.json()["pool_length"] == target


def ci_is_set() -> bool:
    """True on CI, where a missing tool is an error rather than a reason to skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class BackgroundThread:
    """Runs `run()` in a daemon thread from `with` entry until exit; `run` polls `stopping`."""

    join_seconds = 30.0

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.halt()

    def halt(self) -> None:
        self.stopping.set()
        self._thread.join(self.join_seconds)
