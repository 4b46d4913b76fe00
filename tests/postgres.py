"""PostgreSQL for the tests: a private database per test run, a private schema per test.

The server is the one at 127.0.0.1:5432 (user postgres, trust auth). Each run creates
`mf_test_<random>` and drops it at the end; each test gets its own schema in it, selected
through the URL's `options=-c search_path=...`, so tests never see each other's tables.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

HOST = "127.0.0.1"
PORT = 5432
# Trust auth ignores it; the tests check that it never shows up in an error or a log.
PASSWORD = "pg-test-Pa55word"
ADMIN_URL = f"postgresql://postgres@{HOST}:{PORT}/postgres?connect_timeout=3"


def postgres_reachable() -> bool:
    try:
        run_sql(ADMIN_URL, "SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def run_sql(url: str, statement: str) -> tuple[Any, ...] | None:
    """Run one statement on its own connection (outside any store); its first row, if any."""
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(statement)
        row: tuple[Any, ...] | None = cursor.fetchone() if cursor.description else None
        return row


class PostgresDatabase:
    """A database of this test run; `new_schema_url()` hands each test an empty schema."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def create(cls) -> PostgresDatabase:
        database = cls(f"mf_test_{secrets.token_hex(6)}")
        run_sql(ADMIN_URL, f'CREATE DATABASE "{database.name}"')
        return database

    def drop(self) -> None:
        run_sql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def new_schema_url(self) -> str:
        """A DATABASE_URL, with a password in it as users write them, on a new empty schema."""
        schema = f"t_{secrets.token_hex(6)}"
        base = f"postgresql://postgres:{PASSWORD}@{HOST}:{PORT}/{self.name}?sslmode=disable"
        run_sql(base, f'CREATE SCHEMA "{schema}"')
        return f"{base}&options=-c%20search_path%3D{schema}"
