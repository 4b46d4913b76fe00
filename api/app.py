"""The HTTP surface: `GET /get-key` on a lean ASGI path, every other route on FastAPI.

`create_app()` returns an ASGI callable for uvicorn. A plain GET of /get-key is answered
directly (no validation or serialisation layers: it is the hot path); every other request,
including HEAD or a wrong method on /get-key, goes to the FastAPI app, which also documents
/get-key in the OpenAPI schema.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

import redis.asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import TokenGuard
from api.key_source import KeySource, KeysUnavailableError
from api.operations import operations_router
from shared.connections import async_redis_client
from shared.pool import PoolNames
from shared.settings import Settings, load_settings

log = logging.getLogger("mini_forge.api")

_RETRY_AFTER_SECONDS = {"keyspace-exhausted": "3600"}


def unavailable_body(error: KeysUnavailableError) -> bytes:
    return json.dumps({"error": error.reason, "detail": error.detail}).encode()


def unavailable_headers(error: KeysUnavailableError) -> dict[str, str]:
    return {"Retry-After": _RETRY_AFTER_SECONDS.get(error.reason, "1")}


class KeyService:
    """The per-process state: one Redis client and one KeySource, opened by the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._source: KeySource | None = None
        self._client: redis.asyncio.Redis | None = None

    @property
    def source(self) -> KeySource:
        if self._source is None:
            raise RuntimeError("the key service is used before the app started")
        return self._source

    @property
    def client(self) -> redis.asyncio.Redis:
        if self._client is None:
            raise RuntimeError("the key service is used before the app started")
        return self._client

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        client = self._client = async_redis_client(self.settings)
        try:
            await client.ping()
        except RedisError as error:
            log.warning("redis does not answer; /get-key answers 503 until it does: %s", error)
        self._source = KeySource(
            client,
            PoolNames(self.settings.POOL_KEY),
            self.settings.EMPTY_POOL_WAIT_MS / 1000,
        )
        try:
            yield
        finally:
            await client.aclose()


def build_fastapi(service: KeyService) -> FastAPI:
    app = FastAPI(title="mini-forge", lifespan=service.lifespan)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        """Every HTTP error (404, 405, ...) as JSON with a machine-readable `error` word."""
        return JSONResponse(
            {
                "error": HTTPStatus(error.status_code).phrase.lower().replace(" ", "-"),
                "detail": error.detail,
            },
            error.status_code,
            error.headers,
        )

    @app.get(
        "/get-key",
        response_class=PlainTextResponse,
        summary="One new key",
        responses={
            200: {"content": {"text/plain": {"example": "000001a"}}},
            503: {"description": "No key within EMPTY_POOL_WAIT_MS; retry after Retry-After"},
        },
    )
    async def get_key() -> Response:
        """One key, never issued before, as plain text with no newline."""
        try:
            keys = await service.source.take(1)
        except KeysUnavailableError as error:
            return Response(
                unavailable_body(error), 503, unavailable_headers(error), "application/json"
            )
        return PlainTextResponse(keys[0])

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app.include_router(operations_router(service, PoolNames(service.settings.POOL_KEY)))
    return app


class App:
    """The ASGI entry point: the /get-key fast path in front of FastAPI."""

    def __init__(self, settings: Settings) -> None:
        self.service = KeyService(settings)
        self.fastapi = build_fastapi(self.service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/get-key" and scope["method"] == "GET":
            await self._get_key(send)
        else:
            await self.fastapi(scope, receive, send)

    async def _get_key(self, send: Send) -> None:
        try:
            keys = await self.service.source.take(1)
        except KeysUnavailableError as error:
            body = unavailable_body(error)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in unavailable_headers(error).items()),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        body = keys[0].encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app() -> ASGIApp:
    """uvicorn's factory: settings come from the environment of each worker process."""
    settings = load_settings()
    app = App(settings)
    return TokenGuard(app, settings.API_TOKEN) if settings.API_TOKEN else app
