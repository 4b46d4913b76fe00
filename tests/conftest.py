"""Fixtures shared by the test suite: private Redis servers and process groups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Processes, RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (persistence off) on a free port, stopped after the test."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture
def processes(tmp_path: Path, redis_server: RedisServer) -> Iterator[Processes]:
    """mini-forge processes wired to the test's Redis and a fresh SQLite counter file."""
    group = Processes(
        tmp_path,
        {
            "REDIS_URL": redis_server.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'counter.db'}",
            "CONFIG_PATH": str(Path(__file__).resolve().parent.parent / "config/config.yml"),
        },
    )
    yield group
    group.stop_all()
