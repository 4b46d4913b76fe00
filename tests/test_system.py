"""The whole path over real processes: refillers -> redis-server -> uvicorn APIs -> HTTP."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.faults import KeyLoad
from tests.support import Processes, RedisServer, free_port, wait_for_api, wait_until

pytestmark = pytest.mark.system

KEY = re.compile(r"[0-9A-Za-z]{7}")


def test_two_refillers_three_apis_a_thousand_clients_no_duplicates(
    processes: Processes, redis_server: RedisServer
) -> None:
    ports = [free_port() for _ in range(3)]
    refillers = [processes.refiller(f"refiller-{index}") for index in range(2)]
    apis = [processes.start_api(port) for port in ports]
    for port in ports:
        wait_for_api(port)
    wait_until(lambda: redis_server.client().llen("mini-forge:pool") > 0, 20, "a filled pool")

    with KeyLoad(ports, clients=1000) as load:
        wait_until(lambda: load.served >= 100_000, 240, "100,000 keys", interval=0.5)
        result = load.stop()

    seconds = result.stopped - result.started
    print(
        f"\nsystem test: {len(result.keys)} keys, 1000 clients, {seconds:.1f} s, "
        f"{len(result.keys) / seconds:,.0f} keys/s, statuses {dict(result.statuses)}, "
        f"connection errors {result.connection_errors}"
    )
    assert len(result.keys) >= 100_000
    assert set(result.statuses) == {200}
    assert result.connection_errors == 0
    assert result.duplicates == 0
    assert all(KEY.fullmatch(key) for key in result.keys)
    assert all(process.poll() is None for process in [*refillers, *apis])


def timed_get_key(port: int) -> tuple[httpx.Response, float]:
    """GET /get-key and the seconds the server took, on a connection opened beforehand
    (building a client and connecting are the test's own costs, not the server's)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        assert client.get("/healthz").status_code == 200
        started = time.monotonic()
        response = client.get("/get-key")
        return response, time.monotonic() - started


def test_empty_pool_answers_503_with_retry_after_in_time(processes: Processes) -> None:
    port = free_port()
    processes.api(port, EMPTY_POOL_WAIT_MS="300")
    response, elapsed = timed_get_key(port)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "pool-empty"
    assert response.json()["detail"]
    assert 0.3 <= elapsed < 0.3 + 0.5


def test_redis_down_answers_503_within_a_second_and_a_half(
    processes: Processes, redis_server: RedisServer
) -> None:
    port = free_port()
    processes.api(port)
    redis_server.kill()
    response, elapsed = timed_get_key(port)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "redis-unavailable"
    assert str(redis_server.port) not in response.text  # where Redis lives is not the client's
    assert elapsed < 1.5


def test_healthz(processes: Processes) -> None:
    port = free_port()
    processes.api(port)
    response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert response.status_code == 200


def test_get_key_body_is_exactly_the_key(processes: Processes) -> None:
    port = free_port()
    processes.refiller()
    processes.api(port)
    url = f"http://127.0.0.1:{port}/get-key"
    wait_until(lambda: httpx.get(url, timeout=5).status_code == 200, 20, "a first key")
    response = httpx.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert KEY.fullmatch(response.text)
