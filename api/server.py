"""Run the API under uvicorn with the server limits every instance should have."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from shared.logs import logging_config
from shared.settings import Settings

# Slow or idle clients are dropped instead of holding a connection forever.
KEEP_ALIVE_SECONDS = 5
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
            http="httptools",
            access_log=settings.ACCESS_LOG,
            log_config=logging_config(settings),
            backlog=4096,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
