"""Benchmark: scrambled vs sequential `encode_range` throughput on one core.

Run: `.venv/bin/python bench/codec_bench.py [--length 7] [--chunk 10000] [--seconds 2]`

Both codecs encode consecutive chunks (the refiller encodes PUSH_CHUNK_SIZE numbers at a
time) for the same wall-clock time, alternating so that both see the same machine load.
It prints keys/s for each, the ratio, and whether scrambled reaches the 1,000,000 keys/s
target of issue 3.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from shared.codec import KeyCodec
from shared.scramble import KeyedPermutation

TARGET_KEYS_PER_SECOND = 1_000_000


def keys_per_second(codec: KeyCodec, chunk: int, seconds: float) -> float:
    """Encode consecutive chunks for `seconds`; the rate achieved."""
    start = 0
    began = time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        if start + chunk > codec.keyspace_size:
            start = 0
        codec.encode_range(start, start + chunk)
        start += chunk
    return start / (time.perf_counter() - began) if start else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=7, help="KEY_LENGTH (default 7)")
    parser.add_argument("--chunk", type=int, default=10_000, help="numbers per encode_range")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements")
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sequential = KeyCodec(args.length)
    scrambled = KeyCodec(args.length, KeyedPermutation(62**args.length, "bench-secret"))
    rates: dict[str, list[float]] = {"sequential": [], "scrambled": []}
    for _ in range(args.repeats):
        for codec in (sequential, scrambled):
            rates[codec.order].append(keys_per_second(codec, args.chunk, args.seconds))

    median = {order: statistics.median(values) for order, values in rates.items()}
    print(f"KEY_LENGTH={args.length} chunk={args.chunk} one core, median of {args.repeats}:")
    for order, rate in median.items():
        print(f"  {order:<10} {rate:>14,.0f} keys/s")
    print(f"  ratio scrambled/sequential: {median['scrambled'] / median['sequential']:.2f}")
    verdict = "meets" if median["scrambled"] >= TARGET_KEYS_PER_SECOND else "MISSES"
    print(f"  scrambled {verdict} the target of {TARGET_KEYS_PER_SECOND:,} keys/s")


if __name__ == "__main__":
    main()
