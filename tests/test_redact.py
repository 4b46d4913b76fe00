"""Secrets stay out of output: URL redaction, settings errors, log formatters."""

from __future__ import annotations

import logging

import pytest

from shared.logs import JsonFormatter, TextFormatter, secrets_of
from shared.redact import redact_setting, redact_url
from shared.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:s3cret@cache:6380/1?ssl_cert_reqs=none",
         "rediss://user:***@cache:6380/1?ssl_cert_reqs=none"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("sqlite:///data/counter.db", "sqlite:///data/counter.db"),
        ("redis://:s3cret@[::1:6379", "redis://***"),
    ],
)  # fmt: skip
def test_redact_url_masks_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_secret_settings_are_never_shown() -> None:
    assert redact_setting("API_TOKEN", "tok") == "***"
    assert redact_setting("KEY_SECRET", "k") == "***"
    assert redact_setting("PORT", 80) == "80"


def test_a_bad_redis_url_error_does_not_echo_its_password() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"REDIS_URL": "http://:hunter2@host/0"}, dotenv_path=None)
    assert "hunter2" not in str(caught.value)
    assert "REDIS_URL=http://:***@host/0" in str(caught.value)


def test_metrics_port_is_validated() -> None:
    assert load_settings({"METRICS_PORT": "0"}, dotenv_path=None).METRICS_PORT == 0
    with pytest.raises(SettingsError, match="METRICS_PORT"):
        load_settings({"METRICS_PORT": "70000"}, dotenv_path=None)


def test_formatters_mask_every_secret_of_the_settings() -> None:
    settings = load_settings(
        {
            "API_TOKEN": "tok-123",
            "KEY_SECRET": "key-secret-9",
            "REDIS_URL": "redis://:p%40ss@127.0.0.1:1/0",
            "DATABASE_URL": "sqlite:///x.db",
        },
        dotenv_path=None,
    )
    assert set(secrets_of(settings)) == {"tok-123", "key-secret-9", "p%40ss", "p@ss"}
    record = logging.makeLogRecord(
        {"msg": "token %s url %s", "args": ("tok-123", settings.REDIS_URL), "levelno": 20}
    )
    record.__dict__["password"] = "p@ss"
    for formatter in (JsonFormatter(secrets_of(settings)), TextFormatter(secrets_of(settings))):
        line = formatter.format(record)
        assert "tok-123" not in line and "p@ss" not in line and "p%40ss" not in line
        assert "***" in line


def test_a_password_in_the_query_string_is_masked_and_known_as_a_secret() -> None:
    url = "postgresql://mf@db:5432/mf?sslmode=require&password=hunter%232"
    assert redact_url(url) == "postgresql://mf@db:5432/mf?sslmode=require&password=***"
    settings = load_settings(
        {"REDIS_URL": "redis://127.0.0.1:1/0?password=s3cret", "DATABASE_URL": url},
        dotenv_path=None,
    )
    assert {"hunter#2", "hunter%232", "s3cret"} <= set(secrets_of(settings))
