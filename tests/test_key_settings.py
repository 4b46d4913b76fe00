"""KEY_ORDER and KEY_SECRET: defaults, validation, and a secret that is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import DEFAULT_KEY_SECRET, SettingsError, load_settings

CONFIG = str(Path(__file__).resolve().parent.parent / "config/config.yml")


def test_defaults_from_the_config_file_are_scrambled_with_the_documented_secret() -> None:
    settings = load_settings({"CONFIG_PATH": CONFIG})
    assert settings.KEY_ORDER == "scrambled"
    assert settings.KEY_SECRET == DEFAULT_KEY_SECRET


def test_environment_sets_order_and_secret() -> None:
    settings = load_settings({"CONFIG_PATH": CONFIG, "KEY_ORDER": "sequential", "KEY_SECRET": "s"})
    assert (settings.KEY_ORDER, settings.KEY_SECRET) == ("sequential", "s")


def test_a_bad_key_order_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"KEY_ORDER=random .*'sequential' or 'scrambled'"):
        load_settings({"CONFIG_PATH": CONFIG, "KEY_ORDER": "random"})


def test_an_empty_secret_is_refused_without_showing_the_value(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("KEY_SECRET: ''\n")
    with pytest.raises(SettingsError) as error:
        load_settings({"CONFIG_PATH": str(config)})
    expected = f"KEY_SECRET=*** from {config} key KEY_SECRET: must not be empty"
    assert str(error.value) == expected


def test_the_secret_is_not_in_the_settings_repr() -> None:
    settings = load_settings({"CONFIG_PATH": CONFIG, "KEY_SECRET": "hunter2-very-secret"})
    assert "hunter2-very-secret" not in repr(settings)
