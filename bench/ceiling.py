"""The ceiling: a bare ASGI app answering every request with a constant 7-byte body.

It does what the /get-key fast path does minus getting a key, so its rate under the same
uvicorn flags and workers is the most the API could reach on this machine.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

_BODY = b"0000000"
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"7"),
    ],
}
_END = {"type": "http.response.body", "body": _BODY}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(_START)
    await send(_END)
