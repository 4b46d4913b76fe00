"""Run the API under uvicorn with the server limits every instance should have.

uvicorn closes a connection that stays idle TIMEOUT_KEEP_ALIVE after a response, but with
httptools it has neither a deadline nor a size limit for the request head: a client that
connects and sends nothing, trickles its headers a byte at a time, or sends megabytes of
headers would hold its connection (and the memory) as long as it likes. `GuardedHttpProtocol`
adds both. Malformed requests get a 400 from the httptools parser and the connection is
closed; other connections never notice.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.logs import logging_config
from shared.settings import Settings

# Slow or idle clients are dropped instead of holding a connection forever.
KEEP_ALIVE_SECONDS = 5
BACKLOG = 4096
HEAD_TIMEOUT_SECONDS = 5
# The same bound uvicorn's h11 parser applies by default.
MAX_HEAD_BYTES = 16 * 1024
_HEAD_TOO_LARGE_BODY = (
    b'{"error":"request-header-fields-too-large",'
    b'"detail":"the request line and headers exceed %d bytes"}' % MAX_HEAD_BYTES
)
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_HEAD_TOO_LARGE_BODY)
) + _HEAD_TOO_LARGE_BODY
GRACEFUL_SHUTDOWN_SECONDS = 10
# prometheus-client reads it when first imported; api.metrics must not be imported before.
MULTIPROCESS_DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """The directory where every worker of this instance keeps its metric values.

    A configured PROMETHEUS_MULTIPROC_DIR (one per API instance) is emptied of old values;
    without one, a private directory is made and removed at exit.
    """
    configured = os.environ.get(MULTIPROCESS_DIRECTORY_VARIABLE)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix="mini-forge-metrics-"))
    os.environ[MULTIPROCESS_DIRECTORY_VARIABLE] = str(directory)
    try:
        yield directory
    finally:
        del os.environ[MULTIPROCESS_DIRECTORY_VARIABLE]
        shutil.rmtree(directory, ignore_errors=True)


class _HeadTooLargeError(Exception):
    """Raised inside a parser callback to stop parsing a head over MAX_HEAD_BYTES."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """httptools, closing a connection whose request head is too slow or too large.

    The deadline and the byte counts start when the connection opens and again after each
    response; they stop when the head is complete. A head is too large when its parsed
    parts (URL, headers) or the bytes received while it is still incomplete exceed
    MAX_HEAD_BYTES.
    """

    _head_deadline: asyncio.TimerHandle | None = None
    _head_received = 0
    _head_parsed = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_deadline is None:
            return
        self._head_received += len(data)
        if self._head_received > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse_head()

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_parsed(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        self._head_parsed = 0  # pipelined requests are counted one head at a time
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._start_head_deadline()

    def send_400_response(self, msg: str) -> None:
        if self._head_parsed > MAX_HEAD_BYTES:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _count_parsed(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > MAX_HEAD_BYTES:
            raise _HeadTooLargeError  # the parser fails; uvicorn calls send_400_response

    def _refuse_head(self) -> None:
        self._cancel_head_deadline()
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()

    def _start_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._head_received = self._head_parsed = 0
        self._head_deadline = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_too_slow)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def run_api(settings: Settings, port: int, workers: int) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests finish before the process exits."""
    with metrics_directory():
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=settings.HOST,
            port=port,
            workers=workers,
            loop="uvloop",
            http=GuardedHttpProtocol,
            access_log=settings.ACCESS_LOG,
            log_config=logging_config(settings),
            backlog=BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
