"""`GET /keys?count=N`: exactly N keys, 422 for a bad count, 503 with nothing served twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from api.app import App
from shared.settings import load_settings
from tests.support import Processes, RedisServer, free_port, http_ok, wait_until
from tests.test_key_source import fill_pool

MAX_BATCH = 50
Check = Callable[[httpx.AsyncClient], Awaitable[None]]


def serve(server: RedisServer, check: Check) -> None:
    """Run `check` against the app (lifespan included), in process, on the real Redis."""
    settings = load_settings(
        {
            "REDIS_URL": server.url,
            "POOL_KEY": "test:pool",
            "MAX_BATCH": str(MAX_BATCH),
            "EMPTY_POOL_WAIT_MS": "100",
        },
        dotenv_path=None,
    )
    app = App(settings)

    async def run() -> None:
        async with app.service.lifespan(app.fastapi):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                await check(client)

    asyncio.run(run())


def keys_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"keys"}
    keys: list[str] = body["keys"]
    return keys


def test_count_keys_are_served_each_once(redis_server: RedisServer) -> None:
    pool = [key.decode() for key in fill_pool(redis_server, 200)]

    async def check(client: httpx.AsyncClient) -> None:
        one = keys_of(await client.get("/keys", params={"count": 1}))
        batches = await asyncio.gather(*(client.get("/keys?count=7") for _ in range(10)))
        most = keys_of(await client.get(f"/keys?count={MAX_BATCH}"))
        # Any other query shape goes through FastAPI's validation and serves the same way.
        extra = keys_of(await client.get("/keys?count=3&trace=1"))
        served = one + [key for batch in batches for key in keys_of(batch)] + most + extra
        assert [len(keys_of(batch)) for batch in batches] == [7] * 10
        assert len(most) == MAX_BATCH and len(extra) == 3
        assert sorted(served) == pool[: 1 + 70 + MAX_BATCH + 3]

    serve(redis_server, check)


@pytest.mark.parametrize(
    "query",
    ["", "?count=", "?count=0", "?count=-1", f"?count={MAX_BATCH + 1}", "?count=abc",
     "?count=1.5", "?count=99999999999999999999", "?cnt=5"],
)  # fmt: skip
def test_a_bad_count_is_a_422_json_error_that_takes_no_key(
    redis_server: RedisServer, query: str
) -> None:
    fill_pool(redis_server, 10)

    async def check(client: httpx.AsyncClient) -> None:
        response = await client.get("/keys" + query)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"]

    serve(redis_server, check)
    assert redis_server.client().llen("test:pool") == 10


def test_a_short_pool_is_a_503_and_its_keys_are_never_served(redis_server: RedisServer) -> None:
    short = [key.decode() for key in fill_pool(redis_server, 3)]

    async def check(client: httpx.AsyncClient) -> None:
        response = await client.get("/keys?count=5")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "pool-empty"
        redis_server.client().rpush("test:pool", *[f"r{n:06d}" for n in range(10)])
        later = keys_of(await client.get("/keys?count=10"))
        assert not set(later) & set(short)

    serve(redis_server, check)


def test_openapi_documents_both_key_routes(redis_server: RedisServer) -> None:
    async def check(client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "/get-key" in paths
        (count,) = paths["/keys"]["get"]["parameters"]
        assert count["name"] == "count" and count["required"] is True
        assert count["schema"]["minimum"] == 1
        assert count["schema"]["maximum"] == MAX_BATCH
        assert set(paths["/keys"]["get"]["responses"]) >= {"200", "422", "503"}

    serve(redis_server, check)


@pytest.mark.system
def test_keys_over_http_from_a_real_api_server(processes: Processes) -> None:
    processes.refiller()
    port = free_port()
    processes.api(port, MAX_BATCH=str(MAX_BATCH))
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{base}/readyz"), 30, "keys in the pool")
    keys: list[str] = []
    for _ in range(5):
        response = httpx.get(f"{base}/keys?count={MAX_BATCH}", timeout=5)
        if response.status_code == 200:
            keys += response.json()["keys"]
    assert len(keys) >= MAX_BATCH and len(set(keys)) == len(keys)
    assert httpx.get(f"{base}/keys?count={MAX_BATCH + 1}", timeout=5).status_code == 422
