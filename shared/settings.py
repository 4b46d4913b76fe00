"""Settings: built-in defaults < config/config.yml < environment, validated once.

A `.env` file in the working directory is loaded first (it never overrides the real
environment). The YAML file may use `${VAR}` and `${VAR:-default}` in its values. Every
value is checked once, here, and a bad one raises `SettingsError` naming the key, the value
and where it came from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from dotenv import load_dotenv

from shared.redact import redact_setting

DEFAULT_CONFIG_PATH = Path("config/config.yml")
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# Documented in README.md and config/config.yml; using it is allowed but logged as a warning.
DEFAULT_KEY_SECRET = "mini-forge-default-key-secret"


class SettingsError(Exception):
    """A setting has a bad value; the message is one line meant for the user."""


@dataclass(frozen=True)
class Settings:
    """Every setting of both processes. Build it with `load_settings()`."""

    PORT: int = 8080
    HOST: str = "127.0.0.1"
    RANGE_SIZE: int = 1000
    DEBUG_ENABLED: bool = False
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    DATABASE_URL: str = "sqlite:///data/counter.db"
    POOL_KEY: str = "mini-forge:pool"
    POOL_LOW_WATERMARK: int = 50_000
    POOL_TARGET: int = 100_000
    KEY_LENGTH: int = 7
    KEY_ORDER: str = "scrambled"
    KEY_SECRET: str = dataclass_field(default=DEFAULT_KEY_SECRET, repr=False)
    EMPTY_POOL_WAIT_MS: int = 200
    REDIS_TIMEOUT_MS: int = 1000
    REFILL_POLL_MS: int = 50
    PUSH_CHUNK_SIZE: int = 10_000
    LOG_FORMAT: str = "text"
    ACCESS_LOG: bool = False
    API_TOKEN: str = dataclass_field(default="", repr=False)
    METRICS_PORT: int = 0
    MAX_BATCH: int = 1000
    RANGE_SIZE_MIN: int = 100
    RANGE_SIZE_MAX: int = 1_000_000


def _positive(value: int) -> str | None:
    return None if value > 0 else "must be a positive integer"


def check_port(value: int) -> str | None:
    """Why `value` is not a TCP port number, or None."""
    return None if 1 <= value <= 65535 else "must be a port number between 1 and 65535"


def _key_length(value: int) -> str | None:
    return None if 1 <= value <= 20 else "must be between 1 and 20"


def _key_order(value: str) -> str | None:
    return None if value in ("sequential", "scrambled") else "must be 'sequential' or 'scrambled'"


def _key_secret(value: str) -> str | None:
    return None if value else "must not be empty"


def _metrics_port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be 0 (off) or a port number up to 65535"


def _non_negative(value: int) -> str | None:
    return None if value >= 0 else "must be zero or a positive integer"


def _redis_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "must start with redis://, rediss:// or unix://"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "has a port that is not a number between 0 and 65535"
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        return "has a database that is not a number (redis://host:port/0)"
    return None


def _database_url(value: str) -> str | None:
    scheme = urlsplit(value).scheme
    if scheme == "sqlite":
        ok = value.startswith("sqlite:///") and len(value) > len("sqlite:///")
        return None if ok else "must look like sqlite:///relative/path.db or sqlite:////abs.db"
    if scheme in ("postgresql", "postgres"):
        return None
    return "has an unknown scheme (expected sqlite:///path or postgresql://...)"


def _log_format(value: str) -> str | None:
    return None if value in ("text", "json") else "must be 'text' or 'json'"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "PORT": check_port,
    "RANGE_SIZE": _positive,
    "POOL_LOW_WATERMARK": _non_negative,
    "POOL_TARGET": _positive,
    "KEY_LENGTH": _key_length,
    "KEY_ORDER": _key_order,
    "KEY_SECRET": _key_secret,
    "EMPTY_POOL_WAIT_MS": _non_negative,
    "REDIS_TIMEOUT_MS": _positive,
    "REFILL_POLL_MS": _positive,
    "PUSH_CHUNK_SIZE": _positive,
    "REDIS_URL": _redis_url,
    "DATABASE_URL": _database_url,
    "LOG_FORMAT": _log_format,
    "METRICS_PORT": _metrics_port,
    "MAX_BATCH": _positive,
    "RANGE_SIZE_MIN": _positive,
    "RANGE_SIZE_MAX": _positive,
}


def _convert(kind: type, raw: object) -> object:
    """Turn a raw value from YAML or the environment into the setting's type."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("must be true or false")
    if kind is int:
        if isinstance(raw, bool):
            raise ValueError("must be an integer")
        try:
            return int(str(raw).strip().replace("_", ""))
        except ValueError:
            raise ValueError("must be an integer") from None
    return str(raw)


def _interpolate(text: str, environ: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            return default if default is not None else ""
        return value

    return _INTERPOLATION.sub(substitute, text)


def _read_config_file(path: Path, environ: Mapping[str, str]) -> dict[str, object]:
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SettingsError(f"config file {path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise SettingsError(f"config file {path}: not valid YAML{line}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SettingsError(f"config file {path}: expected a mapping of SETTING: value")
    known = {field.name for field in fields(Settings)}
    values: dict[str, object] = {}
    for key, value in document.items():
        if key not in known:
            raise SettingsError(f"config file {path}: unknown setting {key!r}")
        values[key] = _interpolate(value, environ) if isinstance(value, str) else value
    return values


def load_settings(
    environ: Mapping[str, str] | None = None, *, dotenv_path: Path | None = Path(".env")
) -> Settings:
    """Build the one `Settings` object from defaults, the config file and the environment.

    `environ` defaults to `os.environ` after loading `.env` (which never overrides it).
    """
    if environ is None:
        if dotenv_path is not None and dotenv_path.is_file():
            load_dotenv(dotenv_path, override=False)
        environ = os.environ

    explicit_path = environ.get("CONFIG_PATH")
    config_path = Path(explicit_path) if explicit_path else DEFAULT_CONFIG_PATH
    from_file: dict[str, object] = {}
    if explicit_path or config_path.is_file():
        from_file = _read_config_file(config_path, environ)

    values: dict[str, object] = {}
    for field in fields(Settings):
        name = field.name
        kind = {"int": int, "bool": bool, "str": str}[str(field.type)]
        raw: object
        if name in environ:
            raw, source = environ[name], f"environment variable {name}"
        elif name in from_file:
            raw, source = from_file[name], f"{config_path} key {name}"
        else:
            continue
        try:
            value = _convert(kind, raw)
            problem = _CHECKS[name](value) if name in _CHECKS else None
        except ValueError as error:
            problem = str(error)
        if problem:
            shown = redact_setting(name, raw)
            raise SettingsError(f"{name}={shown:.60} from {source}: {problem}")
        values[name] = value

    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.POOL_LOW_WATERMARK > settings.POOL_TARGET:
        raise SettingsError(
            f"POOL_LOW_WATERMARK={settings.POOL_LOW_WATERMARK} is above "
            f"POOL_TARGET={settings.POOL_TARGET}: the low watermark must not exceed the target"
        )
    if not settings.RANGE_SIZE_MIN <= settings.RANGE_SIZE <= settings.RANGE_SIZE_MAX:
        raise SettingsError(
            f"RANGE_SIZE={settings.RANGE_SIZE} must lie between RANGE_SIZE_MIN="
            f"{settings.RANGE_SIZE_MIN} and RANGE_SIZE_MAX={settings.RANGE_SIZE_MAX}"
        )
    return settings
