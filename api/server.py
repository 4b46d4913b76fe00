"""Run the API under uvicorn with the server limits every instance should have."""

from __future__ import annotations

import uvicorn

from shared.settings import Settings

# Slow or idle clients are dropped instead of holding a connection forever.
KEEP_ALIVE_SECONDS = 5
GRACEFUL_SHUTDOWN_SECONDS = 10


def run_api(settings: Settings, port: int, workers: int) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests finish before the process exits."""
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.HOST,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="debug" if settings.DEBUG_ENABLED else "warning",
        backlog=4096,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
