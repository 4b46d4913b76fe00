"""The chaos test: kill -9 a random component every few seconds under constant load.

3 API instances, 2 refillers and a private redis-server with AOF (appendfsync everysec)
serve 200 concurrent clients for CHAOS_SECONDS (longer, up to CHAOS_MAX_SECONDS, while
fewer than MIN_KEYS have been served on a slow machine) while a driver kills one of them (in random
order, every one in each round) with SIGKILL, waits a moment, restarts it and waits for
service to come back. The first round always completes (on a slow machine past
CHAOS_SECONDS, but no kill starts after CHAOS_LIMIT_SECONDS - CALM_END_SECONDS). When Redis
dies, the last 64 KiB of its AOF go with it, as in a machine crash, so it comes back with
keys that were already served. Zero keys may be served twice; every restart must be
followed by 200s within RECOVERY_BOUND_SECONDS of the restarted part answering again.
Run it alone with `.venv/bin/pytest -m chaos -s`.
"""

from __future__ import annotations

import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults import (
    KeyLoad,
    LoadResult,
    lose_unsynced_aof_tail,
    start_apis,
    system_processes,
)
from tests.support import Processes, RedisServer, wait_until

pytestmark = pytest.mark.chaos

CHAOS_SECONDS = 60
CHAOS_MAX_SECONDS = 78
CHAOS_LIMIT_SECONDS = 90  # bounds a first round of restarts that takes longer than usual
CALM_END_SECONDS = 6  # no kill in the last seconds, so the last restart can recover
CLIENTS = 200
MIN_KEYS = 100_000
RECOVERY_BOUND_SECONDS = 5
REFILLERS = ("refiller-0", "refiller-1")


@dataclass
class Restart:
    component: str
    back: float  # when the restarted part answered again (monotonic)
    recovery: float | None = None  # seconds from `back` to the first 200 it should give


class ChaosDriver:
    """Kills and restarts components; knows the live process of each one."""

    def __init__(self, redis_server: RedisServer, processes: Processes, ports: list[int]):
        self.redis_server = redis_server
        self.processes = processes
        self.ports = ports
        self.live: dict[str, subprocess.Popen[bytes]] = {
            name: process for name, process in processes.started
        }
        self.restarts: list[Restart] = []

    @property
    def components(self) -> list[str]:
        return ["redis", *REFILLERS, *(f"api-{port}" for port in self.ports)]

    def kill_and_restart(self, component: str, down_seconds: float) -> Restart:
        if component == "redis":
            self.redis_server.kill()
            lose_unsynced_aof_tail(self.redis_server.directory)  # as if the machine crashed
            time.sleep(down_seconds)
            self.redis_server.start()  # returns once it answers PING
        else:
            process = self.live[component]
            process.kill()
            process.wait()
            time.sleep(down_seconds)
            if component.startswith("api-"):
                port = int(component.removeprefix("api-"))
                self.processes.api(port, name=component)  # returns once it answers
                self.live[component] = self.processes.started[-1][1]
            else:
                starts = self.processes.log(component).count("refiller started")
                self.live[component] = self.processes.refiller(component)
                wait_until(
                    lambda: self.processes.log(component).count("refiller started") > starts,
                    20,
                    f"{component} to start",
                )
        restart = Restart(component, time.monotonic())
        self.restarts.append(restart)
        return restart

    def port_of(self, component: str) -> int | None:
        return int(component.removeprefix("api-")) if component.startswith("api-") else None


def _wait_for_recovery(load: KeyLoad, restart: Restart, port: int | None) -> None:
    """Wait (bounded) until a 200 arrives after the restart, from `port` if given."""
    deadline = time.monotonic() + RECOVERY_BOUND_SECONDS * 3
    while time.monotonic() < deadline:
        times = load.ok_times(port)
        if times and times[-1] > restart.back:
            return
        time.sleep(0.05)


def _report(result: LoadResult, restarts: list[Restart]) -> str:
    lines = [f"chaos totals: {result.summary()}"]
    lines += [
        f"  restart {r.component:>16}: first 200 after "
        + ("never" if r.recovery is None else f"{r.recovery:.2f}s")
        for r in restarts
    ]
    return "\n".join(lines)


def test_no_key_is_served_twice_while_components_die_and_come_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_server = RedisServer(
        tmp_path / "redis", ["--appendonly", "yes", "--appendfsync", "everysec"]
    ).start()
    processes = system_processes(
        tmp_path, redis_server.url, POOL_TARGET="100000", POOL_LOW_WATERMARK="50000"
    )
    randomness = random.Random()
    try:
        for name in REFILLERS:
            processes.refiller(name)
        ports = start_apis(processes, 3)
        driver = ChaosDriver(redis_server, processes, ports)
        with KeyLoad(ports, CLIENTS) as load:
            started = time.monotonic()
            schedule: list[str] = []

            def another_kill() -> bool:
                elapsed = time.monotonic() - started
                if elapsed < CHAOS_SECONDS - CALM_END_SECONDS:
                    return True
                # Every component must die at least once: the first round always completes.
                first_round_done = {r.component for r in driver.restarts} == set(driver.components)
                return not first_round_done and elapsed < CHAOS_LIMIT_SECONDS - CALM_END_SECONDS

            while another_kill():
                if not schedule:  # random order, but every component dies in each round
                    schedule = randomness.sample(driver.components, len(driver.components))
                time.sleep(randomness.uniform(1.5, 3))
                component = schedule.pop()
                restart = driver.kill_and_restart(component, randomness.uniform(0.2, 1.0))
                _wait_for_recovery(load, restart, driver.port_of(component))
            wait_until(
                lambda: (
                    time.monotonic() - started >= CHAOS_SECONDS
                    and (load.served >= MIN_KEYS or time.monotonic() - started >= CHAOS_MAX_SECONDS)
                ),
                CHAOS_MAX_SECONDS,
                "the end of the chaos run",
                interval=0.2,
            )
            result = load.stop()
        for restart in driver.restarts:
            restart.recovery = result.first_ok_after(
                restart.back, driver.port_of(restart.component)
            )
        with capsys.disabled():  # the totals belong in every test run's output
            print("\n" + _report(result, driver.restarts))

        assert result.duplicates == 0
        assert len(result.keys) >= MIN_KEYS
        assert {r.component for r in driver.restarts} == set(driver.components)
        slow = [r for r in driver.restarts if r.recovery is None or r.recovery > 5]
        assert not slow, _report(result, driver.restarts)
        assert all(process.poll() is None for process in driver.live.values())
    finally:
        processes.stop_all()
        redis_server.kill()
