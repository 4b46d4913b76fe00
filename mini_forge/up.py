"""`mini-forge up`: the whole system on one machine, for a first run or a demo.

Uses the Redis at REDIS_URL if it answers, else starts a private `redis-server`
(persistence off) on a free port; then one refiller and N API instances on PORT, PORT+1, ...
Ctrl-C (or SIGTERM) stops everything it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import redis

from shared.redact import redact_url
from shared.settings import Settings

STOP_TIMEOUT_SECONDS = 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_taken(host: str, port: int) -> bool:
    """Whether a listening socket could not be bound to (host, port) right now."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError:
            return True
        return False


class RedisRefusedError(Exception):
    """Something listens at REDIS_URL but does not answer as a Redis that lets us in."""


def redis_answers(url: str) -> bool:
    """True when a Redis answers PING at `url`, False when nothing listens there.

    Raises RedisRefusedError when something listens but refuses (a wrong password, or not
    a Redis at all): starting a private Redis then would silently hide the mistake.
    """
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        with client:
            return bool(client.ping())
    except (redis.RedisError, ValueError, OSError) as error:
        if _something_listens(url):
            raise RedisRefusedError(str(error) or type(error).__name__) from None
        return False


def _something_listens(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return Path(parts.path).exists()
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or 6379), 0.5):
            return True
    except (OSError, ValueError):
        return False


def start_private_redis(api_ports: list[int]) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server that keeps nothing on disk, on a free loopback port not among `api_ports`."""
    port = free_port()
    while port in api_ports:
        port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not redis_answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server on port {port} did not start")
        time.sleep(0.05)
    return process, url


def run_up(settings: Settings, api_instances: int) -> int:
    ports = [settings.PORT + index for index in range(api_instances)]
    unusable = [port for port in ports if port > 65535 or port_taken(settings.HOST, port)]
    if unusable:
        print(
            f"mini-forge: cannot listen on {settings.HOST} port {unusable[0]} (in use or out of"
            f" range); the API instances need ports {ports[0]}-{ports[-1]}: set PORT to another"
            " base port",
            file=sys.stderr,
        )
        return 1
    env = dict(os.environ)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    redis_url = settings.REDIS_URL
    try:
        redis_found = redis_answers(redis_url)
    except RedisRefusedError as refusal:
        print(
            f"mini-forge: something listens at {redact_url(redis_url)} but does not let us in"
            f" as a Redis ({refusal}): fix REDIS_URL, or point it where nothing listens to get"
            " a private redis-server",
            file=sys.stderr,
        )
        return 1
    private_redis = not redis_found
    if private_redis:
        if shutil.which("redis-server") is None:
            print(
                f"mini-forge: no Redis answers at {redact_url(redis_url)} and redis-server is"
                " not installed:"
                " install it (apt-get install redis-server) or set REDIS_URL",
                file=sys.stderr,
            )
            return 1
        redis_process, redis_url = start_private_redis(ports)
        children.append(("redis-server", redis_process))
        env["REDIS_URL"] = redis_url

    def stop_everything(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_everything)
    try:
        children.append(("refiller", subprocess.Popen([sys.executable, "-m", "refiller"], env=env)))
        for port in ports:
            command = [sys.executable, "-m", "api", "--port", str(port)]
            children.append((f"api :{port}", subprocess.Popen(command, env=env)))
        redis_port = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs.get(
            "port", 6379
        )
        redis_origin = (
            f"a private redis-server (nothing answered at {redact_url(settings.REDIS_URL)})"
            if private_redis
            else redact_url(redis_url)
        )
        print(
            f"mini-forge is up, with {redis_origin}:\n"
            + "".join(f"  curl http://{settings.HOST}:{port}/get-key\n" for port in ports)
            + f"  watch the pool: redis-cli -p {redis_port} LLEN {settings.POOL_KEY}\n"
            + f"  status: REDIS_URL={redact_url(redis_url)} {_own_command()} status --watch\n"
            "  Ctrl-C stops everything (and so does any part exiting).",
            flush=True,
        )
        while True:
            for name, child in children:
                if child.poll() is not None:
                    print(f"mini-forge: {name} exited with status {child.returncode}",
                          file=sys.stderr)  # fmt: skip
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        _stop(children)


def _stop(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    """Stop the services first and Redis last."""
    for _name, child in reversed(children):
        stop_process(child)


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _own_command() -> str:
    """How to call `mini-forge` from here: `.venv/bin/` is not on a `make run` user's PATH."""
    script = Path(sys.executable).parent / "mini-forge"
    if not script.exists():
        return "mini-forge"
    relative = os.path.relpath(script)
    return str(script) if relative.startswith("..") else relative
