"""`mini-forge up`: the one-command start for a new user."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_port, wait_until

pytestmark = pytest.mark.system


def up_command(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mini_forge.cli", "up", "--api-instances", "2"],
        cwd=ROOT,
        env={
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing answers there
            "DATABASE_URL": f"sqlite:///{tmp_path / 'counter.db'}",
            "PORT": str(two_free_ports()),  # not 8080: a user's `make run` may hold it
            "PYTHONUNBUFFERED": "1",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def two_free_ports() -> int:
    """A port P such that P and P+1 are both free, below the ephemeral range, so that no
    outgoing connection (they take ports from that range) can take one of them meanwhile."""
    low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(low_ephemeral // 2, low_ephemeral - 2)
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def read_banner(up: subprocess.Popen[str]) -> tuple[str, list[str]]:
    """The start banner; then the rest of the output keeps being read into the list,
    so the children, which share the pipe, never block on a full one."""
    assert up.stdout is not None
    banner = ""
    while "Ctrl-C" not in banner:
        line = up.stdout.readline()
        assert line, f"mini-forge up ended early:\n{banner}"
        banner += line
    rest: list[str] = []
    threading.Thread(target=lambda: rest.extend(up.stdout or ()), daemon=True).start()
    return banner, rest


def test_up_starts_a_private_redis_a_refiller_and_apis_and_stops_them(tmp_path: Path) -> None:
    port = two_free_ports()
    up = up_command(tmp_path, PORT=str(port))
    try:
        banner, output = read_banner(up)
        assert "with a private redis-server (nothing answered at redis://127.0.0.1:" in banner
        assert f"curl http://127.0.0.1:{port}/get-key" in banner
        assert " .venv/bin/mini-forge status --watch" in banner  # not on a user's PATH
        assert f"curl http://127.0.0.1:{port + 1}/get-key" in banner
        redis_port = re.search(r"redis-cli -p (\d+) LLEN mini-forge:pool", banner)
        assert redis_port is not None

        def key_served() -> bool:
            try:
                url = f"http://127.0.0.1:{port + 1}/get-key"
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(key_served, 30, "a key from the second instance")
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}; mini-forge up printed:\n{''.join(output)}") from None
    finally:
        up.send_signal(signal.SIGINT)  # Ctrl-C; on a failure, so nothing is left running
        returncode = up.wait(30)
    assert returncode == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/get-key", timeout=2)
    result = subprocess.run(
        ["redis-cli", "-p", redis_port.group(1), "PING"], capture_output=True, text=True
    )
    assert "PONG" not in result.stdout, "the private redis-server was left running"


def test_up_without_redis_says_how_to_get_one(tmp_path: Path) -> None:
    up = up_command(tmp_path, PATH="/nonexistent")
    output, _ = up.communicate(timeout=30)
    assert up.returncode == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1
    assert "redis-server is not installed" in lines[0]
    assert "apt-get install redis-server" in lines[0]


def test_up_with_a_port_in_use_says_so_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        up = up_command(tmp_path, PORT=str(taken))
        output, _ = up.communicate(timeout=30)
    assert up.returncode == 1
    assert output.strip().splitlines() == [
        f"mini-forge: cannot listen on 127.0.0.1 port {taken} (in use or out of range);"
        f" the API instances need ports {taken}-{taken + 1}: set PORT to another base port"
    ]


def test_up_with_something_else_at_redis_url_says_so_and_starts_nothing(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as not_redis:
        url = f"redis://127.0.0.1:{not_redis.getsockname()[1]}/0"

        def answer_like_a_web_server() -> None:
            while True:
                try:
                    connection, _ = not_redis.accept()
                except OSError:  # closed at the end of the test
                    return
                with connection:
                    connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=answer_like_a_web_server, daemon=True).start()
        up = up_command(tmp_path, REDIS_URL=url)
        output, _ = up.communicate(timeout=30)
    assert up.returncode == 1
    (line,) = output.strip().splitlines()
    assert line.startswith(f"mini-forge: something listens at {url} but does not let us in")
