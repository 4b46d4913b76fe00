"""`mini-forge loadtest`: k6_load_test.js's scenario where k6 is not installed.

Virtual users (VUs) call `GET /get-key` in a loop, each spreading its requests over the
instances round-robin. Their number ramps linearly through stages like k6's ramping-VUs
executor: from the previous stage's target to this stage's target over its duration. A VU
that is no longer wanted finishes its request in flight and stops.

The final report has the same thresholds as the k6 script (failed requests < 1%, p95 of
the request duration < 200 ms); the exit status is 99 when one is crossed, as with k6.
"""

from __future__ import annotations

import asyncio
import math
import re
import resource
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp
import numpy
import uvloop
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

DEFAULT_URLS = ("http://127.0.0.1:8080", "http://127.0.0.1:8081", "http://127.0.0.1:8082")
DEFAULT_STAGES = "30s:50,30s:1000,30s:2000,30s:0"
MAX_FAILED_RATE = 0.01
MAX_P95_MS = 200.0
EXIT_THRESHOLDS_CROSSED = 99
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_CONTROL_TICK_SECONDS = 0.05
_PLAIN_PROGRESS_EVERY_SECONDS = 5.0
# Besides one socket per VU, the process needs a few descriptors of its own.
_SPARE_FILE_DESCRIPTORS = 100


class LoadTestError(Exception):
    """Bad input to the load test; the message is one line meant for the user."""


@dataclass(frozen=True)
class Stage:
    seconds: float
    target: int


def parse_stages(text: str) -> list[Stage]:
    """`30s:50,1m:1000` -> stages; durations in ms, s, m or h."""
    stages = []
    for part in text.split(","):
        duration, _, target = part.strip().partition(":")
        match = _DURATION.match(duration)
        if match is None or not target.isdigit():
            raise LoadTestError(
                f"--stages: {part.strip()!r} is not DURATION:VUS (like 30s:50 or 1m:1000)"
            )
        stages.append(Stage(float(match[1]) * _SECONDS_PER_UNIT[match[2]], int(target)))
    return stages


def scale_stages(stages: Sequence[Stage], scale: float) -> list[Stage]:
    """Shrink (or stretch) every duration and every target, as SCALE does in the k6 script."""
    if not scale > 0:
        raise LoadTestError(f"--scale={scale}: must be above 0")
    return [Stage(stage.seconds * scale, math.ceil(stage.target * scale)) for stage in stages]


def target_vus(stages: Sequence[Stage], elapsed: float) -> int:
    """How many VUs should run `elapsed` seconds into the test (0 after the last stage)."""
    previous_target = 0
    stage_start = 0.0
    for stage in stages:
        if elapsed < stage_start + stage.seconds:
            progress = (elapsed - stage_start) / stage.seconds
            return round(previous_target + (stage.target - previous_target) * progress)
        previous_target = stage.target
        stage_start += stage.seconds
    return 0


def stage_number(stages: Sequence[Stage], elapsed: float) -> int:
    """The 1-based stage running at `elapsed` seconds (the last one once all are over)."""
    stage_end = 0.0
    for number, stage in enumerate(stages, start=1):
        stage_end += stage.seconds
        if elapsed < stage_end:
            return number
    return len(stages)


def normalise_urls(urls: Sequence[str]) -> list[str]:
    normalised = []
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise LoadTestError(f"--url {url}: must start with http:// or https://")
        normalised.append(url.rstrip("/"))
    return normalised


@dataclass
class Results:
    """What the VUs observed; latencies in milliseconds of requests that got a response."""

    requests: int = 0
    keys: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def failed_rate(self) -> float:
        return self.failed / self.requests if self.requests else 1.0

    def percentiles_ms(self) -> tuple[float, float, float] | None:
        """p50, p95, p99 of the request duration; None when no request got a response."""
        if not self.latencies_ms:
            return None
        p50, p95, p99 = numpy.percentile(numpy.frombuffer(self.latencies_ms), [50, 95, 99])
        return float(p50), float(p95), float(p99)


class LoadTest:
    """Runs the stages against the instances and counts what happens."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: Sequence[str],
        stages: Sequence[Stage],
        keys_sink: TextIO | None,
    ) -> None:
        self.session = session
        self.urls = [f"{url}/get-key" for url in urls]
        self.stages = stages
        self.total_seconds = sum(stage.seconds for stage in stages)
        self.keys_sink = keys_sink
        self.results = Results()
        self.target = 0
        self.active = 0
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def run(self, drain_seconds: float) -> Results:
        """Ramp through the stages, then give the last requests `drain_seconds` to finish."""
        self.started = time.monotonic()
        users: dict[int, asyncio.Task[None]] = {}
        while (elapsed := self.elapsed) < self.total_seconds:
            self.target = target_vus(self.stages, elapsed)
            for index in range(self.target):
                user = users.get(index)
                if user is None or user.done():
                    users[index] = asyncio.create_task(self._virtual_user(index))
            await asyncio.sleep(_CONTROL_TICK_SECONDS)
        self.target = 0
        running = [user for user in users.values() if not user.done()]
        if running:
            _done, stuck = await asyncio.wait(running, timeout=drain_seconds)
            for user in stuck:
                user.cancel()
        self.results.seconds = self.elapsed
        return self.results

    async def _virtual_user(self, index: int) -> None:
        self.active += 1
        try:
            iteration = 0
            while index < self.target:
                await self._request(self.urls[(index + iteration) % len(self.urls)])
                iteration += 1
        finally:
            self.active -= 1

    async def _request(self, url: str) -> None:
        results = self.results
        started = time.perf_counter()
        try:
            async with self.session.get(url) as response:
                body = await response.read()
                status = response.status
        except TimeoutError:
            results.requests += 1
            results.failures["timeout"] += 1
            return
        except (aiohttp.ClientError, OSError) as error:
            results.requests += 1
            results.failures[type(error).__name__] += 1
            return
        results.requests += 1
        results.latencies_ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            results.failures[f"HTTP {status}"] += 1
            return
        results.keys += 1
        if self.keys_sink is not None:
            self.keys_sink.write(body.decode(errors="replace") + "\n")

    def progress_line(self) -> str:
        stage = stage_number(self.stages, self.elapsed)
        return (
            f"{min(self.elapsed, self.total_seconds):6.1f}s / {self.total_seconds:.1f}s"
            f"  stage {stage}/{len(self.stages)}  VUs {self.active:5d} (target {self.target})"
            f"  requests {self.results.requests}  failed {self.results.failed}"
        )


class ProgressView:
    """Live progress: a bar plus a status line on a terminal, a plain line every few seconds
    otherwise (a pipe into `tee` would otherwise get nothing until the end)."""

    def __init__(self, test: LoadTest, console: Console) -> None:
        self.test = test
        self.console = console
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0

    def _requests_per_second(self) -> float:
        when, requests = self._rate_mark
        now, requests_now = time.monotonic(), self.test.results.requests
        if now - when >= 1.0:
            self._rate = (requests_now - requests) / (now - when)
            self._rate_mark = (now, requests_now)
        return self._rate

    def status_line(self) -> str:
        return f"{self.test.progress_line()}  {self._requests_per_second():.0f} req/s"

    def render(self) -> RenderableType:
        bar = ProgressBar(total=self.test.total_seconds, completed=self.test.elapsed, width=60)
        return Group(bar, Text(self.status_line()))

    async def show_until(self, done: asyncio.Future[Results]) -> None:
        if self.console.is_terminal:
            with Live(get_renderable=self.render, console=self.console, refresh_per_second=2):
                await asyncio.wait([done])
            return
        while not done.done():
            await asyncio.wait([done], timeout=_PLAIN_PROGRESS_EVERY_SECONDS)
            self.console.print(self.status_line(), soft_wrap=True)


def thresholds(results: Results) -> list[tuple[str, bool]]:
    """Each threshold of the k6 script, described with the measured value, and whether met."""
    percentiles = results.percentiles_ms()
    p95 = f"{percentiles[1]:.1f}ms" if percentiles else "n/a"
    return [
        (
            f"http_req_failed rate<{MAX_FAILED_RATE:.0%} (measured {results.failed_rate:.2%})",
            results.requests > 0 and results.failed_rate < MAX_FAILED_RATE,
        ),
        (
            f"http_req_duration p(95)<{MAX_P95_MS:.0f}ms (measured {p95})",
            percentiles is not None and percentiles[1] < MAX_P95_MS,
        ),
    ]


def report(results: Results, keys_file: Path | None, console: Console) -> bool:
    """Print the final report; True when every threshold is met."""
    table = Table(title="mini-forge load test", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("requests", f"{results.requests} in {results.seconds:.1f}s")
    table.add_row("req/s", f"{results.requests / results.seconds:.1f}" if results.seconds else "-")
    table.add_row("keys received", str(results.keys))
    failures = ", ".join(f"{reason}: {count}" for reason, count in results.failures.most_common())
    table.add_row("failed", f"{results.failed}" + (f" ({failures})" if failures else ""))
    percentiles = results.percentiles_ms()
    if percentiles is not None:
        p50, p95, p99 = percentiles
        table.add_row("latency p50/p95/p99", f"{p50:.1f} / {p95:.1f} / {p99:.1f} ms")
    if keys_file is not None:
        table.add_row("keys saved to", str(keys_file))
    console.print(table)
    verdicts = thresholds(results)
    for description, met in verdicts:
        console.print(f"{'✓' if met else '✗'} {description}")
    all_met = all(met for _description, met in verdicts)
    if not all_met:
        console.print("thresholds crossed")
    return all_met


def _raise_open_file_limit(virtual_users: int, console: Console) -> None:
    """Every VU holds a socket: lift the soft limit to the hard one and warn if still short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    needed = virtual_users + _SPARE_FILE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < needed:
        console.print(
            f"warning: {virtual_users} VUs need about {needed} open files but `ulimit -n` "
            f"allows {soft}; raise it (see README, Load testing) or expect errors",
            soft_wrap=True,
        )


async def _run(
    urls: Sequence[str],
    stages: Sequence[Stage],
    keys_file: Path | None,
    timeout: float,
    console: Console,
) -> Results:
    connector = aiohttp.TCPConnector(limit=0)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    with ExitStack() as files:
        sink = files.enter_context(keys_file.open("w")) if keys_file is not None else None
        async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
            test = LoadTest(session, urls, stages, sink)
            running = asyncio.ensure_future(test.run(drain_seconds=timeout + 1))
            await ProgressView(test, console).show_until(running)
            return running.result()


def run_loadtest(
    urls: Sequence[str] | None,
    stages_text: str | None,
    scale: float,
    keys_file: Path | None,
    timeout: float,
) -> int:
    """The `mini-forge loadtest` command; returns its exit status."""
    console = Console()
    try:
        stages = scale_stages(parse_stages(stages_text or DEFAULT_STAGES), scale)
        base_urls = normalise_urls(urls or DEFAULT_URLS)
        if not timeout > 0:
            raise LoadTestError(f"--timeout={timeout}: must be above 0 seconds")
        if keys_file is not None and not keys_file.parent.is_dir():
            raise LoadTestError(f"--keys-file {keys_file}: its directory does not exist")
    except LoadTestError as error:
        print(f"mini-forge loadtest: {error}", file=sys.stderr)
        return EXIT_USAGE
    _raise_open_file_limit(max(stage.target for stage in stages), console)
    plan = ", ".join(f"{stage.seconds:g}s→{stage.target}" for stage in stages)
    console.print(f"load test: {plan} VUs against {', '.join(base_urls)}", soft_wrap=True)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(_run(base_urls, stages, keys_file, timeout, console))
    except KeyboardInterrupt:
        print("mini-forge loadtest: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if report(results, keys_file, console) else EXIT_THRESHOLDS_CROSSED
