"""Logging set-up: one line per event, plain text or JSON lines (LOG_FORMAT=json).

The same configuration serves every process, including each uvicorn worker (uvicorn applies
`logging_config()` itself), so all lines share one format. Both formatters mask every secret
of the settings (API token, URL passwords, key secret) wherever it would appear in a line.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from collections.abc import Iterable
from typing import Any

from shared.redact import MASK, SECRET_SETTINGS, URL_SETTINGS, url_secrets
from shared.settings import Settings

# Attributes every LogRecord has; anything else was passed with `extra=` and is printed,
# except uvicorn's `color_message` (the message again, with terminal colour codes).
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in `settings`, as it may appear in text (raw and URL-decoded)."""
    found: set[str] = set()
    for name in SECRET_SETTINGS:
        found.add(str(getattr(settings, name, "")))
    for name in URL_SETTINGS:
        found.update(url_secrets(str(getattr(settings, name))))
    found.discard("")
    return sorted(found, key=len, reverse=True)


class _Masking:
    """Replaces each secret in a formatted line by ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(secrets)

    def mask(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, MASK)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra=` fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._masking = _Masking(secrets)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extra_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._masking.mask(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` on one line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._masking = _Masking(secrets)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extra_fields(record).items())
        return self._masking.mask(f"{line} {extras}" if extras else line)


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` document: every line to stderr, in the chosen format.

    uvicorn's own lines stay at WARNING unless DEBUG_ENABLED; its access log lines pass
    only when uvicorn runs with `access_log=True` (ACCESS_LOG).
    """
    formatter = "JsonFormatter" if settings.LOG_FORMAT == "json" else "TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "mini_forge": {"()": f"shared.logs.{formatter}", "secrets": secrets_of(settings)}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "mini_forge",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "DEBUG" if settings.DEBUG_ENABLED else "INFO"},
        "loggers": {
            "uvicorn": {"level": "DEBUG" if settings.DEBUG_ENABLED else "WARNING"},
            "uvicorn.access": {"level": "INFO"},
        },
    }


def setup_logging(settings: Settings) -> None:
    """Send every log line to stderr in the configured format and level."""
    logging.config.dictConfig(logging_config(settings))
