"""What only the PostgreSQL counter store has: URL schemes, secrets, lost connections."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import psycopg
import pytest

from refiller import postgres_store
from refiller.counter import CounterStore, CounterStoreError, Range, open_counter_store
from shared.settings import SettingsError, load_settings
from tests.cutting_proxy import CuttingProxy
from tests.postgres import PASSWORD, PORT, run_sql
from tests.support import ROOT, free_port, wait_until

KEYSPACE = 1_000_000
MAPPING = {"KEY_LENGTH": "7", "KEY_ORDER": "sequential"}


def test_both_url_schemes_select_the_postgres_store(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    store = open_counter_store(postgres_url, KEYSPACE, MAPPING)
    assert isinstance(store, postgres_store.PostgresCounterStore)
    assert store.reserve(5) == Range(0, 5)
    store.close()
    alias = open_counter_store(
        postgres_url.replace("postgresql://", "postgres://"), KEYSPACE, MAPPING
    )
    assert alias.reserve(5) == Range(5, 10)
    alias.close()


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw@db.example:5432/keys", "postgres://db/keys", "postgresql:///keys"]
)
def test_settings_accept_postgres_urls(url: str) -> None:
    settings = load_settings({"DATABASE_URL": url}, dotenv_path=None)
    assert url == settings.DATABASE_URL


def test_settings_still_refuse_unknown_schemes() -> None:
    with pytest.raises(SettingsError, match="postgresql://"):
        load_settings({"DATABASE_URL": "mysql://db/keys"}, dotenv_path=None)


def test_the_password_never_shows_in_errors_or_logs(
    postgres_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_store, "STARTUP_WAIT_SECONDS", 0.3)
    database = urlsplit(postgres_url).path
    unused_port = free_port()
    bad_urls = [
        postgres_url.replace(database, "/no_such_database"),
        postgres_url.replace(f":{PORT}/", f":{unused_port}/"),
        postgres_url + "&no_such_option=1",
        f"postgresql://postgres@127.0.0.1:{unused_port}/x?password={PASSWORD}",
        f"postgresql://postgres:%zz{PASSWORD}@127.0.0.1/x",
        f"postgresql://postgres:{PASSWORD}x y@127.0.0.1/x",
    ]
    for url in bad_urls:
        with pytest.raises(CounterStoreError) as refused:
            open_counter_store(url, KEYSPACE, MAPPING)
        assert PASSWORD not in str(refused.value)
        assert str(refused.value).count("\n") == 0
    assert "no_such_database" in caplog.text
    assert PASSWORD not in caplog.text


def test_the_cli_reports_a_bad_url_in_one_line_without_the_password(postgres_url: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "mini_forge.cli", "refiller"],
        cwd=ROOT,
        env={
            "DATABASE_URL": postgres_url + "&no_such_option=1",
            "KEY_SECRET": "not-the-default",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert finished.stderr.startswith("mini-forge: DATABASE_URL is not a valid")
    assert finished.stderr.count("\n") == 1
    assert PASSWORD not in finished.stderr + finished.stdout


def _store_backend_waiting_for_a_lock(url: str) -> int | None:
    row = run_sql(
        url,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'mini-forge' AND wait_event_type = 'Lock'",
    )
    return None if row is None else int(row[0])


def test_a_connection_lost_mid_transaction_is_retried_from_a_fresh_read(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="refiller.postgres_store")
    store = open_counter_store(postgres_url, KEYSPACE, MAPPING)
    assert store.reserve(10) == Range(0, 10)
    reserved: list[Range] = []
    with psycopg.connect(postgres_url, autocommit=True) as other_refiller:
        with other_refiller.transaction():
            other_refiller.execute(
                "SELECT value FROM mini_forge_counter WHERE name = 'keys' FOR UPDATE"
            )
            waiter = threading.Thread(target=lambda: reserved.append(store.reserve(10)))
            waiter.start()
            wait_until(
                lambda: _store_backend_waiting_for_a_lock(postgres_url) is not None,
                10,
                "the store's transaction to wait for the row lock",
            )
            # Killed mid-transaction: it has begun and is blocked in SELECT ... FOR UPDATE.
            other_refiller.execute(
                "SELECT pg_terminate_backend(%s)",
                (_store_backend_waiting_for_a_lock(postgres_url),),
            )
            other_refiller.execute("UPDATE mini_forge_counter SET value = 15 WHERE name = 'keys'")
        waiter.join(30)
    assert reserved == [Range(15, 25)]
    assert "retrying with backoff" in caplog.text
    assert "reachable again" in caplog.text
    assert PASSWORD not in caplog.text
    store.close()


def _store_behind_a_cutting_proxy(postgres_url: str) -> tuple[CuttingProxy, CounterStore]:
    proxy = CuttingProxy(PORT)
    url = postgres_url.replace(f":{PORT}/", f":{proxy.port}/")
    return proxy, open_counter_store(url, KEYSPACE, MAPPING)


def test_a_commit_whose_reply_is_lost_never_leads_to_a_reused_range(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, store = _store_behind_a_cutting_proxy(postgres_url)
    assert store.reserve(10) == Range(0, 10)
    proxy.cut_after_commit()
    # [10, 20) was committed but the store never heard so: it is a gap, never handed out.
    assert store.reserve(10) == Range(20, 30)
    assert proxy.cuts == 1
    assert "retrying with backoff" in caplog.text
    assert store.position() == 30
    store.close()
    proxy.close()


def test_a_commit_that_never_arrived_is_retried_in_full(postgres_url: str) -> None:
    proxy, store = _store_behind_a_cutting_proxy(postgres_url)
    assert store.reserve(10) == Range(0, 10)
    proxy.cut_before_commit()
    # The server rolled [10, 20) back, so nobody holds it: taking it again is no reuse.
    assert store.reserve(10) == Range(10, 20)
    assert proxy.cuts == 1
    assert store.position() == 20
    store.close()
    proxy.close()


def test_the_store_works_beside_other_tables(postgres_url: str) -> None:
    run_sql(postgres_url, "CREATE TABLE counters (name TEXT, value TEXT)")
    run_sql(postgres_url, "INSERT INTO counters VALUES ('keys', 'not ours')")
    store = open_counter_store(postgres_url, KEYSPACE, MAPPING)
    assert store.reserve(3) == Range(0, 3)
    store.close()
    assert run_sql(postgres_url, "SELECT value FROM counters") == ("not ours",)


def test_logging_is_quiet_when_nothing_goes_wrong(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="refiller.postgres_store")
    store = open_counter_store(postgres_url, KEYSPACE, MAPPING)
    store.reserve(1)
    store.close()
    assert caplog.records == []
