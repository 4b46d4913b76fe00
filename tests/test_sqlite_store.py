"""SQLite-specific store behaviour: files and folders, damaged files, many processes at once.

The behaviour every store shares is in test_counter_stores.py.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refiller.counter import (
    CounterStoreError,
    open_counter_store,
)
from tests.support import ROOT

MAPPING = {"KEY_LENGTH": "7", "KEY_ORDER": "sequential"}
KEYSPACE = 62**7

# Opens the store and reserves ranges; prints them as JSON. Started many times at once.
_RESERVER = """
import json, sys, time
from refiller.counter import open_counter_store
url, count, size, start_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start_at - time.time()))
store = open_counter_store(url, 62**7, {"KEY_LENGTH": "7", "KEY_ORDER": "sequential"})
print(json.dumps([[r.start, r.end] for r in (store.reserve(size) for _ in range(count))]))
"""


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def test_file_and_folder_are_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "counter.db"
    store = open_counter_store(url_of(path), KEYSPACE, MAPPING)
    assert path.is_file()
    assert store.position() == 0
    store.close()


def test_a_file_that_is_not_a_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"this is not a sqlite database at all" * 100)
    before = path.read_bytes()
    with pytest.raises(CounterStoreError, match="left untouched"):
        open_counter_store(url_of(path), KEYSPACE, MAPPING)
    assert path.read_bytes() == before


def test_processes_starting_together_on_a_fresh_file_never_overlap(tmp_path: Path) -> None:
    """8 processes race on schema creation, then reserve 50 ranges each, all at once."""
    url = url_of(tmp_path / "fresh" / "counter.db")
    start_at = time.time() + 2.0
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _RESERVER, url, "50", "100", str(start_at)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    ranges: list[tuple[int, int]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        ranges.extend((start, end) for start, end in json.loads(out))
    ranges.sort()
    assert len(ranges) == 400
    assert ranges[0][0] == 0
    for (_, previous_end), (start, end) in itertools.pairwise(ranges):
        assert start == previous_end, "ranges overlap or leave a hole"
        assert end - start == 100
