"""Routes for operators: `/readyz` (may this instance take traffic?) and `/metrics`.

Both read the pool with one INSPECT_SCRIPT call, which changes nothing in Redis.
"""

from __future__ import annotations

from typing import Protocol

import redis.asyncio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError

from api.metrics import exposition
from shared.pool import INSPECT_SCRIPT, PoolNames, PoolReading


class HasRedisClient(Protocol):
    @property
    def client(self) -> redis.asyncio.Redis: ...


def not_ready_reason(reading: PoolReading) -> tuple[str, str] | None:
    """(reason, detail) why keys cannot be served from this pool, or None when they can."""
    if not reading.valid:
        return (
            "pool-invalid",
            "the pool was not filled in this redis process; waiting for a refiller",
        )
    if reading.length > 0:
        return None
    if reading.exhausted:
        return "keyspace-exhausted", "every key has been issued"
    return "pool-empty", "the key pool is empty"


def operations_router(service: HasRedisClient, names: PoolNames) -> APIRouter:
    router = APIRouter()

    async def read_pool() -> PoolReading:
        reply = await service.client.eval(
            INSPECT_SCRIPT, 3, names.pool, names.stamp, names.exhausted
        )
        return PoolReading.from_reply(reply)

    @router.get(
        "/readyz",
        summary="Readiness",
        responses={503: {"description": "Redis down, or the pool invalid or empty"}},
    )
    async def readyz() -> JSONResponse:
        """200 when Redis answers and the pool is valid and not empty; else 503 and why."""
        try:
            reading = await read_pool()
        except RedisError as error:
            return JSONResponse(
                {"error": "redis-unavailable", "detail": f"redis error: {error}"}, 503
            )
        problem = not_ready_reason(reading)
        if problem is not None:
            reason, detail = problem
            return JSONResponse({"error": reason, "detail": detail}, 503)
        return JSONResponse({"status": "ready", "pool_length": reading.length})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        try:
            pool_length: int | None = (await read_pool()).length
        except RedisError:
            pool_length = None
        return Response(exposition(pool_length), media_type=CONTENT_TYPE_LATEST)

    return router
