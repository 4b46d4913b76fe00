"""`make bench`: measure mini-forge against its targets, side by side, in one run.

1. the ceiling: a bare ASGI app answering a constant 7-byte body (bench/ceiling.py) under
   the API's uvicorn flags and 2 workers;
2. `GET /get-key`: req/s, p50, p99 and the ratio to the ceiling (runs interleaved with the
   ceiling's, so both see the same machine load);
3. `GET /keys?count=100`: keys/s;
4. the refiller's fill rate from an empty pool to 1,000,000 keys, per KEY_ORDER;
5. Redis memory per pooled key (INFO memory before and after those 1,000,000 keys);
6. counter transactions per second while something pops a steady 20,000 keys/s;
and, for the ceiling and /get-key, the CPU each request costs the server, Redis and wrk
(on a small machine they share the cores, so these costs set the rates).

Load comes from wrk (-t2 -c64). The pool is filled before each HTTP run and no refiller runs
during one, so the HTTP figures are the API's alone. Every figure is the median of --runs
runs. Prints a table and writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import redis

from bench.cpu import cpu_seconds, process_tree, waited_children_cpu_seconds
from bench.report import Row, machine_report, render_markdown, render_table
from bench.stack import POOL_KEY, Stack
from bench.wrk import WrkResult, run_wrk
from mini_forge.up import stop_process
from shared.settings import Settings

FILL_KEYS = 1_000_000
KEYS_PER_REQUEST = 100
STEADY_KEYS_PER_SECOND = 20_000
STEADY_TICK_SECONDS = 0.05
STEADY_WARMUP_SECONDS = 10
RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass
class Sample:
    at: float
    length: int


def wait_for_length(client: redis.Redis, length: int, timeout: float = 120) -> Sample:
    """Poll LLEN until the pool holds `length` keys; when and how many it first saw."""
    deadline = time.monotonic() + timeout
    while True:
        now = time.perf_counter()
        seen = int(client.llen(POOL_KEY))
        if seen >= length:
            return Sample(now, seen)
        if time.monotonic() > deadline:
            raise RuntimeError(f"the pool reached only {seen} of {length} keys in {timeout}s")
        time.sleep(0.005)


def key_orders() -> list[str]:
    """The KEY_ORDER values to measure; only sequential where the setting does not exist."""
    known = {field.name for field in fields(Settings)}
    return ["sequential", "scrambled"] if "KEY_ORDER" in known else ["sequential"]


def measure_fill(stack: Stack, order: str, runs: int) -> tuple[list[float], list[float]]:
    """Fill rates (keys/s, from the first key to FILL_KEYS) and Redis bytes per key."""
    client = stack.client()
    rates: list[float] = []
    bytes_per_key: list[float] = []
    for run in range(runs):
        client.flushall()
        before = int(client.info("memory")["used_memory"])
        name = f"fill-{order}-{run}"
        refiller = stack.refiller(
            name,
            DATABASE_URL=f"sqlite:///{stack.directory / (name + '.db')}",
            KEY_ORDER=order,
            POOL_TARGET=str(FILL_KEYS),
            POOL_LOW_WATERMARK=str(FILL_KEYS),
        )
        try:
            first = wait_for_length(client, 1)
            last = wait_for_length(client, FILL_KEYS)
        finally:
            stop_process(refiller)
        rates.append((last.length - first.length) / (last.at - first.at))
        pooled = int(client.llen(POOL_KEY))
        bytes_per_key.append((int(client.info("memory")["used_memory"]) - before) / pooled)
    return rates, bytes_per_key


@dataclass(frozen=True)
class CpuPerRequest:
    """Microseconds of CPU per successful request, by process, during one wrk run."""

    server: float
    redis: float
    wrk: float


def metered_wrk(
    stack: Stack, url: str, seconds: int, server: str
) -> tuple[WrkResult, CpuPerRequest]:
    """A wrk run, and the CPU that the server `server`, Redis and wrk spent per request."""
    processes = [process_tree(stack.pid(server)), [stack.redis_pid]]
    before = [cpu_seconds(pids) for pids in processes] + [waited_children_cpu_seconds()]
    result = run_wrk(url, seconds)
    after = [cpu_seconds(pids) for pids in processes] + [waited_children_cpu_seconds()]
    served = max(result.requests - result.failed, 1)
    server_cpu, redis_cpu, wrk_cpu = (
        (end - start) / served * 1e6 for start, end in zip(before, after, strict=True)
    )
    return result, CpuPerRequest(server_cpu, redis_cpu, wrk_cpu)


@dataclass
class HttpRuns:
    ceiling: list[WrkResult]
    get_key: list[WrkResult]
    keys: list[WrkResult]
    ceiling_cpu: list[CpuPerRequest]
    get_key_cpu: list[CpuPerRequest]
    pops_per_second: list[float]
    keys_per_pop: list[float]
    redis_usec_per_pop: list[float]
    guard_usec_per_pop: list[float]


def measure_http(stack: Stack, runs: int, seconds: int, keys_seconds: int) -> HttpRuns:
    """Interleaved wrk runs: ceiling, /get-key, /keys?count=100, with the pool filled first."""
    client = stack.client()
    client.flushall()
    database = stack.directory / "http.db"
    # Twice the fastest rate seen here, so that no run drains the pool and measures 503s.
    get_key_pool = 80_000 * seconds
    keys_pool = 5_000_000 * keys_seconds
    ceiling_url = stack.ceiling() + "/"
    api = stack.api()
    get_key_url = api + "/get-key"
    keys_url = f"{api}/keys?count={KEYS_PER_REQUEST}"
    stack.fill_pool(get_key_pool, database)
    for url in (ceiling_url, get_key_url, keys_url):  # warm-up: connections, caches
        run_wrk(url, 2)
    result = HttpRuns([], [], [], [], [], [], [], [], [])
    for _ in range(runs):
        ceiling, ceiling_cpu = metered_wrk(stack, ceiling_url, seconds, "ceiling")
        result.ceiling.append(ceiling)
        result.ceiling_cpu.append(ceiling_cpu)
        stack.fill_pool(get_key_pool, database)
        client.config_resetstat()
        get_key, get_key_cpu = metered_wrk(stack, get_key_url, seconds, "api")
        stats = client.info("commandstats")
        result.get_key.append(get_key)
        result.get_key_cpu.append(get_key_cpu)
        # A pop is one MULTI/EXEC: EXEC's time includes the stamp check and the LPOP.
        pops = max(int(stats.get("cmdstat_exec", {"calls": 0})["calls"]), 1)
        result.pops_per_second.append(pops / get_key.seconds)
        result.keys_per_pop.append((get_key.requests - get_key.failed) / pops)
        result.redis_usec_per_pop.append(int(stats["cmdstat_exec"]["usec"]) / pops)
        result.guard_usec_per_pop.append(int(stats["cmdstat_eval"]["usec"]) / pops)
        stack.fill_pool(keys_pool, database)
        result.keys.append(run_wrk(keys_url, keys_seconds))
    return result


@dataclass
class SteadyRuns:
    transactions_per_second: list[float]
    keys_short: int
    min_pool_length: int


def measure_steady_demand(stack: Stack, windows: int, window_seconds: int) -> SteadyRuns:
    """A refiller with default pool and range settings under a steady 20k keys/s of pops."""
    client = stack.client()
    client.flushall()
    stack.refiller("steady", DATABASE_URL=f"sqlite:///{stack.directory / 'steady.db'}")
    log = stack.log_path("steady")
    per_tick = int(STEADY_KEYS_PER_SECOND * STEADY_TICK_SECONDS)
    result = SteadyRuns([], 0, sys.maxsize)

    def pop_steadily(seconds: float, measured: bool) -> None:
        next_tick = time.monotonic()
        end = next_tick + seconds
        while next_tick < end:
            popped = client.lpop(POOL_KEY, per_tick) or []
            if measured:
                result.keys_short += per_tick - len(popped)
                result.min_pool_length = min(result.min_pool_length, int(client.llen(POOL_KEY)))
            next_tick += STEADY_TICK_SECONDS
            time.sleep(max(0.0, next_tick - time.monotonic()))

    pop_steadily(STEADY_WARMUP_SECONDS, measured=False)
    for _ in range(windows):
        before = log.read_text().count("reserved range")
        pop_steadily(window_seconds, measured=True)
        after = log.read_text().count("reserved range")
        result.transactions_per_second.append((after - before) / window_seconds)
    return result


def at_least(bound: float) -> Callable[[float], bool]:
    return lambda value: value >= bound


def at_most(bound: float) -> Callable[[float], bool]:
    return lambda value: value <= bound


def rows(
    fills: dict[str, tuple[list[float], list[float]]],
    http: HttpRuns,
    steady: SteadyRuns,
) -> list[Row]:
    ceiling = [run.ok_per_second for run in http.ceiling]
    get_key = [run.ok_per_second for run in http.get_key]
    ratios = [key / top for key, top in zip(get_key, ceiling, strict=True)]
    keys = f"GET /keys?count={KEYS_PER_REQUEST}"
    table = [
        Row("ceiling: bare ASGI, 7-byte body", "req/s", ceiling),
        Row("GET /get-key", "req/s", get_key),
        Row("GET /get-key / ceiling", "ratio", ratios, ">= 0.85", at_least(0.85)),
        Row("GET /get-key p50", "ms", [run.p50_ms for run in http.get_key]),
        Row("GET /get-key p99", "ms", [run.p99_ms for run in http.get_key], "<= 10", at_most(10)),
        Row("GET /get-key failed", "resp.", [run.failed for run in http.get_key], "0", at_most(0)),
        Row(keys, "keys/s", [run.ok_per_second * KEYS_PER_REQUEST for run in http.keys],
            ">= 1,000,000", at_least(1_000_000)),
        Row(f"{keys} p99", "ms", [run.p99_ms for run in http.keys]),
        Row(f"{keys} failed", "resp.", [run.failed for run in http.keys], "0", at_most(0)),
        Row("  CPU per request, ceiling: server", "us", [cpu.server for cpu in http.ceiling_cpu]),
        Row("  CPU per request, ceiling: wrk", "us", [cpu.wrk for cpu in http.ceiling_cpu]),
        Row("  CPU per request, /get-key: API", "us", [cpu.server for cpu in http.get_key_cpu]),
        Row("  CPU per request, /get-key: redis", "us", [cpu.redis for cpu in http.get_key_cpu]),
        Row("  CPU per request, /get-key: wrk", "us", [cpu.wrk for cpu in http.get_key_cpu]),
        Row("  pops per second during /get-key", "pops/s", http.pops_per_second),
        Row("  keys per pop during /get-key", "keys", http.keys_per_pop),
        Row("  redis time per pop (MULTI: stamp check + LPOP)", "us", http.redis_usec_per_pop),
        Row("  of which the stamp check (INFO server in Lua)", "us", http.guard_usec_per_pop),
    ]  # fmt: skip
    for order in ("sequential", "scrambled"):
        name = f"refiller fill rate, {order}"
        if order in fills:
            table.append(Row(name, "keys/s", fills[order][0], ">= 1,000,000", at_least(1_000_000)))
        else:
            table.append(Row(name, "skipped: no KEY_ORDER setting on this branch", []))
    steady_name = f"counter transactions at {STEADY_KEYS_PER_SECOND:,} keys/s"
    table += [
        Row("redis memory per pooled key", "bytes", fills["sequential"][1], "<= 16", at_most(16)),
        Row(steady_name, "txn/s", steady.transactions_per_second, "<= 1", at_most(1)),
        Row("  keys short of the steady demand", "keys", [steady.keys_short], "0", at_most(0)),
        Row("  lowest pool length under steady demand", "keys", [steady.min_pool_length],
            "> 0", at_least(1)),
    ]  # fmt: skip
    return table


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds per /get-key run")
    parser.add_argument("--keys-seconds", type=int, default=4, help="seconds per /keys run")
    parser.add_argument("--window-seconds", type=int, default=10, help="steady-demand window")
    args = parser.parse_args()
    if args.runs < 1 or args.seconds < 1 or args.keys_seconds < 1 or args.window_seconds < 1:
        parser.error("--runs and every duration must be at least 1")
    machine_before = machine_report()
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="mini-forge-bench-") as directory,
        Stack(Path(directory)) as stack,
    ):
        print("refiller fill rate and memory ...", flush=True)
        fills = {order: measure_fill(stack, order, args.runs) for order in key_orders()}
        print("HTTP: ceiling, /get-key, /keys (wrk) ...", flush=True)
        http = measure_http(stack, args.runs, args.seconds, args.keys_seconds)
        print("steady demand of 20k keys/s ...", flush=True)
        steady = measure_steady_demand(stack, args.runs, args.window_seconds)
    table = rows(fills, http, steady)
    print(render_table(table))
    RESULTS_PATH.write_text(
        render_markdown(table, machine_before, machine_report(), time.monotonic() - started)
    )
    print(f"written to {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
