"""The benchmark's table, the machine it ran on, and bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

_PACKAGES = ("uvicorn", "uvloop", "httptools", "fastapi", "starlette", "redis", "hiredis", "numpy")


@dataclass(frozen=True)
class Row:
    """One measured figure: its runs, and the target it is checked against, if any."""

    name: str
    unit: str
    runs: list[float]
    target: str = ""
    check: Callable[[float], bool] | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None

    @property
    def verdict(self) -> str:
        median = self.median
        if self.check is None or median is None:
            return ""
        return "met" if self.check(median) else "MISSED"


def _number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"


def _cells(row: Row) -> list[str]:
    median = row.median
    return [
        row.name,
        "" if median is None else _number(median),
        row.unit,
        " / ".join(_number(run) for run in row.runs) if len(row.runs) > 1 else "",
        row.target,
        row.verdict,
    ]


_HEADER = ["measure", "median", "unit", "runs", "target", ""]


def render_table(rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    lines = [_HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(_HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _command_version(command: list[str]) -> str:
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except OSError:
        return "not installed"
    return (output.stdout or output.stderr).splitlines()[0].strip()


def machine_report() -> dict[str, str]:
    """Where and with what the benchmark ran; taken before and after the run."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "load average (1, 5, 15 min)": ", ".join(f"{value:.2f}" for value in load),
        "python": platform.python_version(),
        "packages": ", ".join(f"{name} {version(name)}" for name in _PACKAGES),
        "redis-server": _command_version(["redis-server", "--version"]),
        "wrk": _command_version(["wrk", "--version"]),
    }


def render_markdown(
    rows: list[Row], before: dict[str, str], after: dict[str, str], elapsed: float
) -> str:
    table = [
        "| " + " | ".join(_HEADER) + " |",
        "|" + "---|" * len(_HEADER),
        *("| " + " | ".join(cell.strip() for cell in _cells(row)) + " |" for row in rows),
    ]
    facts = [
        f"- {name}: {value}"
        for name, value in before.items()
        if name != "load average (1, 5, 15 min)"
    ]
    load = "load average (1, 5, 15 min)"
    return "\n".join(
        [
            "# Benchmark results",
            "",
            "Written by `make bench` (bench/run.py); every figure is the median of the runs",
            "shown. The ceiling and /get-key runs alternate, so both see the same load.",
            "",
            *facts,
            f"- {load}: {before[load]} before, {after[load]} after",
            f"- took {elapsed:.0f} s",
            "",
            *table,
            "",
        ]
    )
