"""The HTTP surface: `GET /get-key` and `GET /keys` on a lean ASGI path, the rest on FastAPI.

`create_app()` returns an ASGI callable for uvicorn. A plain GET of /get-key, and a GET of
/keys whose query is exactly a valid `count=N`, are answered directly (no validation or
serialisation layers: they are the hot path). Every other request, including HEAD, a wrong
method or a /keys query that needs an error, goes to the FastAPI app, which documents both
routes in the OpenAPI schema and answers a bad `count` with its standard 422.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus

import redis.asyncio
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
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


def keys_body(keys: list[bytes]) -> bytes:
    """`{"keys": [...]}` without a JSON encoder: base62 keys never need escaping."""
    return b'{"keys":["' + b'","'.join(keys) + b'"]}'


def fast_count(query_string: bytes, max_batch: int) -> int | None:
    """N when the query is exactly `count=N` with 1 <= N <= max_batch, else None."""
    name, _, value = query_string.partition(b"=")
    if name != b"count" or not value.isdigit() or len(value) > 9:
        return None
    count = int(value)
    return count if 1 <= count <= max_batch else None


class KeysResponse(BaseModel):
    """The body of a successful `GET /keys`."""

    keys: list[str]


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
            await self._source.close()
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

    async def keys_response(count: int, render: Callable[[list[bytes]], Response]) -> Response:
        try:
            keys = await service.source.take(count)
        except KeysUnavailableError as error:
            return Response(
                unavailable_body(error), 503, unavailable_headers(error), "application/json"
            )
        return render(keys)

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
        return await keys_response(1, lambda keys: PlainTextResponse(keys[0]))

    @app.get(
        "/keys",
        response_model=KeysResponse,
        summary="A batch of new keys",
        responses={
            422: {"description": "`count` is missing, not an integer or out of range"},
            503: {"description": "Not `count` keys within EMPTY_POOL_WAIT_MS; none are served"},
        },
    )
    async def get_keys(
        count: int = Query(ge=1, le=service.settings.MAX_BATCH),
    ) -> Response:
        """Exactly `count` keys, each never issued before. On 503 the keys popped for this
        request are dropped (never served to anyone)."""
        return await keys_response(
            count, lambda keys: Response(keys_body(keys), media_type="application/json")
        )

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app.include_router(operations_router(service, PoolNames(service.settings.POOL_KEY)))
    return app


class App:
    """The ASGI entry point: the /get-key and /keys fast paths in front of FastAPI."""

    def __init__(self, settings: Settings) -> None:
        self.service = KeyService(settings)
        self.fastapi = build_fastapi(self.service)
        self._max_batch = settings.MAX_BATCH

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            if path == "/get-key":
                await self._serve(1, send, as_json=False)
                return
            if path == "/keys":
                count = fast_count(scope["query_string"], self._max_batch)
                if count is not None:
                    await self._serve(count, send, as_json=True)
                    return
        await self.fastapi(scope, receive, send)

    async def _serve(self, count: int, send: Send, *, as_json: bool) -> None:
        try:
            keys = await self.service.source.take(count)
        except KeysUnavailableError as error:
            extra = [
                (k.lower().encode(), v.encode()) for k, v in unavailable_headers(error).items()
            ]
            await _respond(send, 503, _JSON, unavailable_body(error), extra)
            return
        if as_json:
            await _respond(send, 200, _JSON, keys_body(keys))
        else:
            await _respond(send, 200, _TEXT, keys[0])


_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"


async def _respond(
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if extra_headers:
        headers += extra_headers
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> ASGIApp:
    """uvicorn's factory: settings come from the environment of each worker process."""
    settings = load_settings()
    app = App(settings)
    return TokenGuard(app, settings.API_TOKEN) if settings.API_TOKEN else app
