"""A refiller-like process for the tests: reserves ranges and prints each on its own line.

`python -m tests.counter_worker DATABASE_URL COUNT SIZE` opens the counter store as the
refiller does, reserves COUNT ranges of SIZE numbers and prints `start end` for each, then
exits 0. Warnings (such as a lost connection being retried) go to stderr.
"""

from __future__ import annotations

import logging
import sys

from refiller.counter import open_counter_store

KEYSPACE = 62**7
MAPPING = {"KEY_LENGTH": "7", "KEY_ORDER": "sequential"}


def main(argv: list[str]) -> int:
    database_url, count, size = argv[0], int(argv[1]), int(argv[2])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    store = open_counter_store(database_url, KEYSPACE, MAPPING)
    try:
        for _ in range(count):
            reserved = store.reserve(size)
            print(reserved.start, reserved.end, flush=True)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
