"""Run wrk against one URL and read its summary: rate, latency percentiles, failures."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

CONNECTIONS = 64
THREADS = 2

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class WrkError(Exception):
    """wrk failed or printed something this module cannot read."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    failed: int  # non-2xx answers plus socket errors
    p50_ms: float
    p99_ms: float

    @property
    def ok_per_second(self) -> float:
        return (self.requests - self.failed) / self.seconds


def run_wrk(url: str, seconds: int) -> WrkResult:
    """`wrk -t2 -c64 -d<seconds>s --latency <url>`, parsed."""
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if completed.returncode != 0:
        raise WrkError(f"{' '.join(command)} exited {completed.returncode}: {completed.stderr}")
    return parse_wrk(completed.stdout)


def parse_wrk(output: str) -> WrkResult:
    total = _TOTAL.search(output)
    percentiles = {
        match[0]: float(match[1]) * _UNITS[match[2]] for match in _PERCENTILE.findall(output)
    }
    if total is None or set(percentiles) != {"50", "99"}:
        raise WrkError(f"cannot read wrk output:\n{output}")
    duration_units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
    seconds = float(total[2]) * duration_units[total[3]]
    failed = 0
    if non_2xx := _NON_2XX.search(output):
        failed += int(non_2xx[1])
    if socket_errors := _SOCKET_ERRORS.search(output):
        failed += sum(int(count) for count in socket_errors.groups())
    return WrkResult(int(total[1]), seconds, failed, percentiles["50"], percentiles["99"])
