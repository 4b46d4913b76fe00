"""Bad input to a running API and a wrong REDIS_URL: a clear error, nothing else harmed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.server import HEAD_TIMEOUT_SECONDS, MAX_HEAD_BYTES
from tests.support import ROOT, BackgroundThread, Processes, RedisServer, free_port, wait_until

pytestmark = pytest.mark.faults


@pytest.fixture
def api_port(processes: Processes) -> int:
    processes.refiller(POOL_TARGET="20000", POOL_LOW_WATERMARK="10000")
    port = free_port()
    processes.api(port)
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/get-key").status_code == 200, 20, "keys")
    return port


def _raw_exchange(port: int, request: bytes, wait: float = 10) -> tuple[bytes, float]:
    """Send raw bytes; everything the server answers until it closes, and how long it took.

    A server that answers and closes before reading the whole request resets the
    connection: the answer then ends with `<reset>` (it is only that if none arrived).
    """
    started = time.monotonic()
    answer = b""
    reset = False
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(wait)
        try:
            connection.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            reset = True  # what the server answered may still be waiting to be read
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            reset = True
    return answer + b"<reset>" if reset else answer, time.monotonic() - started


class _Bystander(BackgroundThread):
    """A well-behaved client fetching keys while a test misbehaves on other connections."""

    def __init__(self, port: int) -> None:
        self.statuses: list[int] = []
        self._port = port
        super().__init__()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stopping.is_set():
                self.statuses.append(
                    client.get(f"http://127.0.0.1:{self._port}/get-key").status_code
                )
                time.sleep(0.01)


def test_unknown_path_is_a_json_404(api_port: int) -> None:
    response = httpx.get(f"http://127.0.0.1:{api_port}/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": "not-found", "detail": "Not Found"}


def test_wrong_method_on_get_key_is_a_json_405(api_port: int) -> None:
    response = httpx.post(f"http://127.0.0.1:{api_port}/get-key")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json() == {"error": "method-not-allowed", "detail": "Method Not Allowed"}


def test_malformed_and_oversized_requests_are_refused_without_hurting_others(
    api_port: int,
) -> None:
    big_header = b"GET /get-key HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    many_headers = (
        b"GET /get-key HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: y\r\n" % n for n in range(2_000))
        + b"\r\n"
    )
    megabytes_of_head = b"GET /get-key HTTP/1.1\r\nX-Big: " + b"a" * 5_000_000
    huge_body = b"POST /get-key HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n" + (
        b"a" * 1_000_000
    )
    with _Bystander(api_port) as bystander:
        garbage, _ = _raw_exchange(api_port, b"NOT HTTP AT ALL\r\n\r\n")
        big, _ = _raw_exchange(api_port, big_header)
        many, _ = _raw_exchange(api_port, many_headers)
        flood, _ = _raw_exchange(api_port, megabytes_of_head)
        body, _ = _raw_exchange(api_port, huge_body)
        time.sleep(0.2)

    assert garbage.startswith(b"HTTP/1.1 400 ")
    for answer in (big, many):
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        assert str(MAX_HEAD_BYTES).encode() in answer
    assert flood.startswith((b"HTTP/1.1 431 ", b"<reset>")), flood[:80]
    assert body.startswith(b"HTTP/1.1 405 ")
    assert bystander.statuses
    assert set(bystander.statuses) == {200}


def test_slow_and_silent_clients_are_cut_off_without_hurting_others(api_port: int) -> None:
    def trickle() -> float:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", api_port)) as connection:
            connection.sendall(b"GET /get-key HTTP/1.1\r\nHost: x\r\n")
            try:
                for _ in range(int(HEAD_TIMEOUT_SECONDS * 4)):
                    connection.sendall(b"X")
                    time.sleep(0.5)
            except OSError:
                return time.monotonic() - started
        return time.monotonic() - started

    with _Bystander(api_port) as bystander:
        silent_answer, silent_took = _raw_exchange(api_port, b"", wait=HEAD_TIMEOUT_SECONDS * 3)
        trickle_took = trickle()

    assert silent_answer == b""
    assert silent_took < HEAD_TIMEOUT_SECONDS * 3
    assert trickle_took < HEAD_TIMEOUT_SECONDS * 4 * 0.5
    assert set(bystander.statuses) == {200}


def _start(command: str, redis_url: str, tmp_path: Path) -> subprocess.Popen[str]:
    args = [command] if command == "refiller" else [command, "--port", str(free_port())]
    return subprocess.Popen(
        [sys.executable, "-m", "mini_forge.cli", *args],
        cwd=ROOT,
        env={
            **os.environ,
            "CONFIG_PATH": str(ROOT / "config/config.yml"),
            "REDIS_URL": redis_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'counter.db'}",
            "KEY_SECRET": "bad-input-test-secret",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("command", ["refiller", "api"])
@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("redis://127.0.0.1:notaport/0", "has a port that is not a number"),
        ("redis://127.0.0.1:6379/zero", "has a database that is not a number"),
        ("http://127.0.0.1:6379/0", "must start with redis://"),
    ],
)
def test_a_malformed_redis_url_is_one_line_at_start(
    tmp_path: Path, command: str, url: str, words: str
) -> None:
    process = _start(command, url, tmp_path)
    output, _ = process.communicate(timeout=20)
    assert process.returncode == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"mini-forge: configuration error: REDIS_URL={url} ")
    assert words in lines[0]


@pytest.mark.parametrize("command", ["refiller", "api"])
def test_a_redis_url_that_leads_nowhere_is_one_line_at_start(
    tmp_path: Path, command: str, redis_server: RedisServer
) -> None:
    redis_server.kill()  # a free port nobody listens on
    process = _start(command, redis_server.url, tmp_path)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("WARNING" in line for line in lines), 30, "a warning")
        time.sleep(3)  # long enough for a retry loop to repeat it, if it did
        assert process.poll() is None  # it waits for redis rather than giving up
    finally:
        process.terminate()
        process.wait(20)
        reader.join(5)
    output = "".join(lines)
    assert "Traceback" not in output
    complaints = [line for line in output.splitlines() if "WARNING" in line]
    assert len(complaints) == 1, output
    assert f"127.0.0.1:{redis_server.port}" in complaints[0]


def test_a_redis_url_that_leads_to_something_else_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as not_redis:
        port = not_redis.getsockname()[1]

        def answer_like_a_web_server() -> None:
            with not_redis.accept()[0] as connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        threading.Thread(target=answer_like_a_web_server, daemon=True).start()
        process = _start("refiller", f"redis://127.0.0.1:{port}/0", tmp_path)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 1
    lines = output.strip().splitlines()
    assert "Traceback" not in output
    assert lines[-1].startswith("mini-forge: REDIS_URL does not lead to a usable redis"), output
