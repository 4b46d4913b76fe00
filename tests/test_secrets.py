"""Secrets against real processes: a password-protected Redis (plain and TLS) works, and
neither the API token nor the Redis password ever shows up in a log line or in status."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis

from tests.support import ROOT, Processes, RedisServer, free_port, http_ok, pool_full, wait_until

pytestmark = pytest.mark.system

# Characters that must be quoted in a URL, so both spellings are looked for in the logs.
PASSWORD = "pa:ss@w0rd/42"
TOKEN = "api-t0ken-never-logged"
SMALL_POOL = {"POOL_TARGET": "3000", "POOL_LOW_WATERMARK": "1000", "RANGE_SIZE": "1000"}


class PasswordRedis(RedisServer):
    """A redis-server with `requirepass`, optionally TLS-only with the given CA file."""

    def __init__(self, directory: Path, args: Sequence[str] = (), ca_file: Path | None = None):
        super().__init__(directory, ["--requirepass", PASSWORD, *args])
        self.ca_file = ca_file

    @property
    def url(self) -> str:
        scheme = "rediss" if self.ca_file else "redis"
        query = f"?ssl_ca_certs={quote(str(self.ca_file))}" if self.ca_file else ""
        return f"{scheme}://:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/0{query}"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)


def system(tmp_path: Path, server: RedisServer, **env: str) -> Processes:
    return Processes(
        tmp_path,
        {
            "REDIS_URL": server.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'counter.db'}",
            "CONFIG_PATH": str(ROOT / "config/config.yml"),
            **SMALL_POOL,
            **env,
        },
    )


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[PasswordRedis]:
    server = PasswordRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


def status_output(processes: Processes, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mini_forge.cli", "status", *args],
        env=processes.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout + result.stderr


def test_no_secret_in_any_log_line_or_status(tmp_path: Path, password_redis: PasswordRedis) -> None:
    processes = system(
        tmp_path,
        password_redis,
        API_TOKEN=TOKEN,
        LOG_FORMAT="json",
        DEBUG_ENABLED="true",
        ACCESS_LOG="true",
        EMPTY_POOL_WAIT_MS="50",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    good = {"Authorization": f"Bearer {TOKEN}"}
    try:
        processes.refiller()
        processes.api(port)
        wait_until(lambda: pool_full(base, 3000, good), 20, "a full pool")
        assert httpx.get(f"{base}/get-key", headers=good, timeout=5).status_code == 200
        assert httpx.get(f"{base}/get-key", timeout=5).status_code == 401
        assert httpx.get(f"{base}/metrics", headers=good, timeout=5).status_code == 200
        outputs = [status_output(processes), status_output(processes, "--json")]
        assert "2,999 keys" in outputs[0]

        password_redis.kill()  # errors get logged; none may carry a secret
        response = httpx.get(f"{base}/get-key", headers=good, timeout=5)
        assert response.json()["error"] == "redis-unavailable"
        outputs.append(response.text)
        wait_until(lambda: "redis unavailable" in processes.log("refiller"), 10, "a warning")
        outputs.append(status_output(processes, "--json"))
    finally:
        processes.stop_all()

    logs = processes.log("refiller") + processes.log(f"api-{port}")
    assert "/get-key HTTP/1.1" in logs  # ACCESS_LOG=true gives access lines
    assert '"redis": "redis://:***@127.0.0.1:' in logs  # the URL is logged, masked
    for line in logs.splitlines():
        json.loads(line)  # LOG_FORMAT=json: every line is one JSON object
    for text in (logs, *outputs):
        for secret in (TOKEN, PASSWORD, quote(PASSWORD, safe="")):
            assert secret not in text


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a cert")
def test_rediss_with_a_password_serves_keys(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls_port = free_port()
    server = PasswordRedis(
        tmp_path / "redis",
        ["--port", "0", "--tls-port", str(tls_port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"],
        ca_file=cert,
    )  # fmt: skip
    server.port = tls_port
    server.start()
    processes = system(tmp_path, server)
    port = free_port()
    try:
        processes.refiller()
        processes.api(port)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 20, "ready over TLS")
        wait_until(lambda: server.client().llen("mini-forge:pool") == 3000, 20, "a full pool")
        response = httpx.get(f"http://127.0.0.1:{port}/get-key", timeout=5)
        assert response.status_code == 200 and len(response.text) == 7
        assert server.client().llen("mini-forge:pool") == 2999
    finally:
        processes.stop_all()
        server.kill()
