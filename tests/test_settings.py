"""Settings: precedence (defaults < config file < environment), interpolation, bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings, SettingsError, load_settings
from tests.support import ROOT


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def test_defaults_without_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings == Settings()
    assert settings.PORT == 8080
    assert settings.RANGE_SIZE == 1000
    assert settings.DEBUG_ENABLED is False
    assert settings.REDIS_URL == "redis://127.0.0.1:6379/0"
    assert settings.DATABASE_URL == "sqlite:///data/counter.db"
    assert settings.POOL_KEY == "mini-forge:pool"
    assert settings.KEY_LENGTH == 7
    assert settings.EMPTY_POOL_WAIT_MS == 200


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    config = write_config(tmp_path, "RANGE_SIZE: 5000\nDEBUG_ENABLED: true\n")
    settings = load_settings({"CONFIG_PATH": str(config)})
    assert settings.RANGE_SIZE == 5000
    assert settings.DEBUG_ENABLED is True


def test_environment_overrides_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "RANGE_SIZE: 5000\n")
    settings = load_settings({"CONFIG_PATH": str(config), "RANGE_SIZE": "7000"})
    assert settings.RANGE_SIZE == 7000


def test_interpolation_with_and_without_default(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, "PORT: ${MY_PORT:-9000}\nPOOL_KEY: ${MY_POOL}\nKEY_LENGTH: ${UNSET:-8}\n"
    )
    settings = load_settings({"CONFIG_PATH": str(config), "MY_POOL": "custom:pool"})
    assert settings.PORT == 9000
    assert settings.POOL_KEY == "custom:pool"
    assert settings.KEY_LENGTH == 8
    assert load_settings({"CONFIG_PATH": str(config), "MY_PORT": "9100"}).PORT == 9100


def test_the_shipped_config_file_gives_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert load_settings({}) == Settings()


def test_dotenv_is_loaded_but_the_real_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("RANGE_SIZE=4321\nPORT=9001\n")
    monkeypatch.setenv("PORT", "9002")
    # Set first so monkeypatch records it: the .env load below writes RANGE_SIZE into
    # os.environ, and the undo must remove it, or every later test process inherits it.
    monkeypatch.setenv("RANGE_SIZE", "unset")
    monkeypatch.delenv("RANGE_SIZE")
    settings = load_settings()
    assert settings.RANGE_SIZE == 4321
    assert settings.PORT == 9002


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.PORT = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("RANGE_SIZE", "abc", "must be an integer"),
        ("RANGE_SIZE", "0", "must be a positive integer"),
        ("PORT", "70000", "between 1 and 65535"),
        ("KEY_LENGTH", "0", "between 1 and 20"),
        ("DATABASE_URL", "mysql://db/counter", "unknown scheme"),
        ("REDIS_URL", "http://localhost", "must start with redis://"),
        ("DEBUG_ENABLED", "maybe", "true or false"),
    ],
)
def test_bad_environment_value_names_key_value_and_source(
    tmp_path: Path, name: str, value: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"CONFIG_PATH": str(write_config(tmp_path, "")), name: value})
    message = str(caught.value)
    assert f"{name}={value}" in message
    assert f"environment variable {name}" in message
    assert problem in message


def test_bad_file_value_names_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "RANGE_SIZE: -5\n")
    with pytest.raises(SettingsError, match=rf"RANGE_SIZE=-5 from {config} key RANGE_SIZE"):
        load_settings({"CONFIG_PATH": str(config)})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings({"CONFIG_PATH": str(tmp_path / "nope.yml")})


def test_unparsable_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "PORT: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings({"CONFIG_PATH": str(config)})


def test_unknown_setting_in_config_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, "RANG_SIZE: 10\n")
    with pytest.raises(SettingsError, match="unknown setting 'RANG_SIZE'"):
        load_settings({"CONFIG_PATH": str(config)})


def test_low_watermark_above_target(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="POOL_LOW_WATERMARK"):
        load_settings(
            {
                "CONFIG_PATH": str(write_config(tmp_path, "")),
                "POOL_LOW_WATERMARK": "10",
                "POOL_TARGET": "5",
            }
        )


@pytest.mark.parametrize("command", ["refiller", "api"])
def test_a_bad_value_stops_the_process_with_one_line_and_status_2(
    tmp_path: Path, command: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mini_forge.cli", command],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "RANGE_SIZE": "abc", "CONFIG_PATH": "config/config.yml"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "RANGE_SIZE=abc" in lines[0]
    assert "environment variable RANGE_SIZE" in lines[0]
    assert "Traceback" not in result.stderr
