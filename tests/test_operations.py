"""Operations against real processes: /metrics, /readyz, the API token, `mini-forge status`.

Every test runs real refillers and uvicorn servers on a private redis-server and a fresh
SQLite counter file.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.pool import PoolNames
from tests.support import ROOT, Processes, RedisServer, free_port, pool_full, wait_until

pytestmark = pytest.mark.system

KEYSPACE_7 = 62**7
# Small pools so that everything fills at once and nothing refills behind the test's back.
# Fixed 1,000-number ranges (no adaptive growth), so the refiller's counts are exact.
SMALL_POOL = {
    "POOL_TARGET": "3000",
    "POOL_LOW_WATERMARK": "1000",
    "RANGE_SIZE": "1000",
    "RANGE_SIZE_MAX": "1000",
}


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Samples of a Prometheus text page as {'name{label="v"}': value}."""
    response = httpx.get(url, headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def ready(base: str, headers: dict[str, str] | None = None) -> bool:
    return httpx.get(f"{base}/readyz", headers=headers, timeout=5).status_code == 200


def readyz(base: str) -> tuple[int, str]:
    response = httpx.get(f"{base}/readyz", timeout=5)
    return response.status_code, response.json().get("error", "")


def test_api_metrics_count_keys_and_503s_across_workers(
    processes: Processes, redis_server: RedisServer
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.api(port, "--workers", "2", EMPTY_POOL_WAIT_MS="50")

    assert httpx.get(f"{base}/get-key", timeout=5).json()["error"] == "pool-empty"
    before = scrape(f"{base}/metrics")
    assert before['mini_forge_unavailable_responses_total{reason="pool-empty"}'] == 1
    assert before["mini_forge_redis_up"] == 1
    assert before["mini_forge_pool_length"] == 0

    metrics_port = free_port()
    processes.refiller(METRICS_PORT=str(metrics_port), **SMALL_POOL)
    wait_until(lambda: pool_full(base, 3000), 20, "a full pool")
    keys = {httpx.get(f"{base}/get-key", timeout=5).text for _ in range(20)}
    assert len(keys) == 20
    for _ in range(4):  # scrapes land on either worker; each one sees the sum of both
        after = scrape(f"{base}/metrics")
        assert after["mini_forge_keys_served_total"] == 20
        assert after["mini_forge_pool_length"] == 3000 - 20
        pops = after["mini_forge_pop_seconds_count"] - before["mini_forge_pop_seconds_count"]
        assert 1 <= pops <= 20

    refiller_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_until(
        lambda: scrape(refiller_metrics)["mini_forge_refiller_pool_length"] == 3000 - 20,
        10,
        "the refiller to see the pool length",
    )
    refiller = scrape(refiller_metrics)
    assert refiller["mini_forge_refiller_ranges_reserved_total"] == 3
    assert refiller["mini_forge_refiller_keys_pushed_total"] == 3000
    assert refiller["mini_forge_refiller_reservation_seconds_count"] == 3
    assert refiller["mini_forge_refiller_range_size"] == 1000
    assert refiller["mini_forge_refiller_keyspace_remaining"] == KEYSPACE_7 - 3000

    redis_server.kill()
    assert httpx.get(f"{base}/get-key", timeout=5).json()["error"] == "redis-unavailable"
    down = scrape(f"{base}/metrics")
    assert down['mini_forge_unavailable_responses_total{reason="redis-unavailable"}'] == 1
    assert down["mini_forge_redis_up"] == 0
    assert "mini_forge_pool_length" not in down


def test_readyz_follows_redis_and_the_pool(processes: Processes, redis_server: RedisServer) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.api(port)
    assert readyz(base) == (503, "pool-invalid")  # no refiller has stamped this pool yet

    refiller = processes.refiller(**SMALL_POOL)
    wait_until(lambda: ready(base), 20, "ready")
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200

    redis_server.kill()
    assert readyz(base) == (503, "redis-unavailable")
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200  # liveness only
    redis_server.start()
    wait_until(lambda: ready(base), 30, "ready again once the refiller refilled")

    refiller.send_signal(signal.SIGTERM)
    refiller.wait(15)
    redis_server.client().delete("mini-forge:pool")
    assert readyz(base) == (503, "pool-empty")


def test_api_token_guards_every_route_but_healthz(processes: Processes) -> None:
    token = "t0ken-for-tests"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.refiller(**SMALL_POOL)
    processes.api(port, API_TOKEN=token)
    good = {"Authorization": f"Bearer {token}"}
    wait_until(lambda: ready(base, good), 20, "ready")

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        for method, path in (("GET", "/get-key"), ("HEAD", "/get-key"), ("GET", "/readyz"),
                             ("GET", "/metrics"), ("GET", "/docs")):  # fmt: skip
            response = httpx.request(method, f"{base}{path}", headers=headers, timeout=5)
            assert response.status_code == 401, (method, path, headers)
            if method == "GET":
                assert response.json()["error"] == "unauthorized"
                assert token not in response.text

    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    response = httpx.get(f"{base}/get-key", headers=good, timeout=5)
    assert response.status_code == 200 and len(response.text) == 7
    assert scrape(f"{base}/metrics", good)["mini_forge_keys_served_total"] == 1  # one worker
    # ACCESS_LOG is off by default: no line per request.
    assert "/get-key" not in processes.log(f"api-{port}")


def run_status(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mini-forge status` with nothing but the given environment, outside the repository."""
    return subprocess.run(
        [sys.executable, "-m", "mini_forge.cli", "status", *args],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_reports_a_running_system(
    processes: Processes, redis_server: RedisServer, tmp_path: Path
) -> None:
    only_urls = {
        "REDIS_URL": processes.env["REDIS_URL"],
        "DATABASE_URL": processes.env["DATABASE_URL"],
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    refiller = processes.refiller(**SMALL_POOL)
    processes.api(port)
    wait_until(lambda: pool_full(base, 3000), 20, "a full pool")
    for _ in range(25):
        assert httpx.get(f"{base}/get-key", timeout=5).status_code == 200

    def rate_window_open() -> bool:
        """A rate needs a refiller's reading taken over a second before status reads."""
        with redis_server.client() as client:
            oldest = client.lindex(PoolNames("mini-forge:pool").issued_samples, -1)
        return oldest is not None and time.time() - float(oldest.split()[0]) > 1.5

    wait_until(rate_window_open, 20, "a refiller's issued-keys reading 1.5 s old")
    result = run_status(only_urls, tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["pool"]["length"] == 3000 - 25
    assert status["pool"]["valid"] is True
    assert (status["pool"]["low_watermark"], status["pool"]["target"]) == (1000, 3000)
    assert status["counter"]["position"] == 3000
    assert status["keys_issued"] == 25
    assert status["keyspace"]["size"] == KEYSPACE_7
    assert status["keyspace"]["remaining"] == KEYSPACE_7 - 3000
    assert status["keyspace"]["rate_per_second"] > 0
    assert status["keyspace"]["seconds_left"] > 0
    assert status["last_reservation"]["end"] == 3000
    assert len(status["refillers_alive"]) == 1

    text = run_status(only_urls, tmp_path)
    assert text.returncode == 0, text.stderr
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.stdout.splitlines())
    assert lines["pool mini-forge:pool"] == "2,975 keys"
    assert lines["counter position"].startswith("3,000 ")
    assert lines["keys issued"] == "25"
    assert lines["refillers alive"].startswith("1 ")

    refiller.send_signal(signal.SIGTERM)
    refiller.wait(15)
    assert json.loads(run_status(only_urls, tmp_path, "--json").stdout)["refillers_alive"] == []

    redis_server.kill()
    down = run_status(only_urls, tmp_path, "--json")
    assert down.returncode == 1
    assert json.loads(down.stdout)["redis"]["error"]
    assert json.loads(down.stdout)["counter"]["position"] == 3000
