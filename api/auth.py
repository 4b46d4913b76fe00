"""Bearer-token access control for every route but /healthz.

`TokenGuard` wraps the whole ASGI app, so the /get-key fast path is guarded exactly like
the FastAPI routes. The header is compared in constant time; a missing or wrong token gets
401 with a JSON body that never echoes what was sent.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})
_UNAUTHORIZED_BODY = json.dumps(
    {"error": "unauthorized", "detail": "send the API token as 'Authorization: Bearer <token>'"}
).encode()
_UNAUTHORIZED_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_UNAUTHORIZED_BODY)).encode()),
    (b"www-authenticate", b'Bearer realm="mini-forge"'),
]


class TokenGuard:
    """Lets a request through only with `Authorization: Bearer <token>` (or to /healthz)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = b"Bearer " + token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope["path"] in OPEN_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 401, "headers": _UNAUTHORIZED_HEADERS})
        await send({"type": "http.response.body", "body": _UNAUTHORIZED_BODY})

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False
