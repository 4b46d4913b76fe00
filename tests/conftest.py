"""Fixtures shared by the test suite: private Redis servers, PostgreSQL databases, processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest

from tests.postgres import HOST, PORT, PostgresDatabase, postgres_reachable
from tests.support import Processes, RedisServer, ci_is_set


def pytest_configure(config: pytest.Config) -> None:
    """Processes the tests start use a secret of their own, not the documented default
    (which makes every refiller log a warning); tests of that warning unset it."""
    os.environ.setdefault("KEY_SECRET", "mini-forge-test-suite-secret")
    # No per-example deadline: one scheduler stall on a busy CI machine must not fail a
    # property test (or make hypothesis call it flaky); the properties are what count.
    hypothesis.settings.register_profile("mini-forge", deadline=None)
    hypothesis.settings.load_profile("mini-forge")


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


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    """This run's private PostgreSQL database, dropped at the end.

    Skipped when PostgreSQL is unreachable, unless CI is set: then it is an error.
    """
    if not postgres_reachable():
        message = f"PostgreSQL at {HOST}:{PORT} is unreachable"
        if ci_is_set():
            pytest.fail(f"{message} (CI is set, so PostgreSQL tests must run)")
        pytest.skip(message)
    database = PostgresDatabase.create()
    yield database
    database.drop()


@pytest.fixture
def postgres_url(postgres_database: PostgresDatabase) -> str:
    """A DATABASE_URL (with a password in it) pointing at an empty schema of its own."""
    return postgres_database.new_schema_url()
