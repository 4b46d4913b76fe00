"""CPU time the benchmark's processes spend, read from /proc, to split a run's cost per request.

On a small machine the server, Redis and wrk share the cores, so a rate is set by the CPU
each request costs all of them together; these readings show where that CPU goes.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (uvicorn's workers are children of its supervisor)."""
    tree = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # the task ended
            continue
        for child in children:
            tree += process_tree(int(child))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far (ended ones count as 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS_PER_SECOND


def waited_children_cpu_seconds() -> float:
    """CPU time of this process's children that have been waited for (wrk, once it ended)."""
    times = os.times()
    return times.children_user + times.children_system
