"""The uniqueness analyzer: planted duplicates are reported exactly, unique keys pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mini_forge.analyze import DUPLICATES_SHOWN
from mini_forge.cli import main
from tests.support import ROOT


def write_keys(path: Path, keys: list[str]) -> Path:
    path.write_text("".join(f"{key}\n" for key in keys))
    return path


def duplicate_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("Key: ")]


def test_planted_duplicates_are_reported_with_their_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unique = [f"{number:07d}" for number in range(1000)]
    planted = [*unique, "0000007", "0000500", "0000007", "0000999", "0000007"]
    keys = write_keys(tmp_path / "results.log", planted)

    status = main(["analyze", str(keys)])

    output = capsys.readouterr().out
    assert status == 1
    assert "KEY UNIQUENESS TEST RESULTS" in output
    assert "Total Keys Generated:  1005" in output
    assert "Unique Keys:           1000" in output
    assert "Duplicate Keys Found:  3" in output
    assert "❌ FAILURE: Duplicate keys detected!" in output
    assert duplicate_lines(output) == [
        "Key: 0000007 - Occurred 4 times",
        "Key: 0000500 - Occurred 2 times",
        "Key: 0000999 - Occurred 2 times",
    ]


def test_unique_keys_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = write_keys(tmp_path / "results.log", [f"k{number:06d}" for number in range(5000)])

    status = main(["analyze", str(keys)])

    output = capsys.readouterr().out
    assert status == 0
    assert "Total Keys Generated:  5000" in output
    assert "Unique Keys:           5000" in output
    assert "Duplicate Keys Found:  0" in output
    assert "✅ SUCCESS: All keys are unique!" in output
    assert duplicate_lines(output) == []


def test_only_the_first_twenty_duplicates_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doubled = [f"d{number:06d}" for number in range(25)]
    keys = write_keys(tmp_path / "results.log", doubled + doubled)

    assert main(["analyze", str(keys)]) == 1

    output = capsys.readouterr().out
    assert "Duplicate Keys Found:  25" in output
    assert duplicate_lines(output) == [
        f"Key: {key} - Occurred 2 times" for key in doubled[:DUPLICATES_SHOWN]
    ]
    assert "... and 5 more duplicate keys" in output


def test_a_file_without_keys_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = write_keys(tmp_path / "results.log", ["", "  "])
    assert main(["analyze", str(keys)]) == 1
    assert "Total Keys Generated:  0" in capsys.readouterr().out


def test_a_missing_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(tmp_path / "absent.log")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"mini-forge analyze: cannot read {tmp_path / 'absent.log'}: No such file or directory"
    ]


def test_python_dash_m_runs_the_analyzer(tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "results.log", ["aaaaaaa", "bbbbbbb", "aaaaaaa"])
    completed = subprocess.run(
        [sys.executable, "-m", "mini_forge.analyze", str(keys)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 1
    assert "Key: aaaaaaa - Occurred 2 times" in completed.stdout
