"""`mini-forge analyze FILE` (or `python -m mini_forge.analyze FILE`): were all keys unique?

FILE holds one key per line, as a load test wrote them (blank lines are ignored). Prints
the "KEY UNIQUENESS TEST RESULTS" block with the first duplicates and how often each
occurred. Exits 0 when every key is unique, 1 on any duplicate (or no key at all), 2 when
FILE cannot be read.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

DUPLICATES_SHOWN = 20
EXIT_UNIQUE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_RULE = "=" * 60


def count_keys(lines: Iterable[str]) -> Counter[str]:
    """How often each key occurs, in order of first occurrence."""
    return Counter(key for line in lines if (key := line.strip()))


def print_report(counts: Counter[str], out: TextIO) -> bool:
    """Print the results block; True when there is at least one key and no duplicate."""
    duplicates = [(key, count) for key, count in counts.items() if count > 1]
    total = counts.total()
    lines = [
        _RULE,
        "          KEY UNIQUENESS TEST RESULTS",
        _RULE,
        "",
        f"Total Keys Generated:  {total}",
        f"Unique Keys:           {len(counts)}",
        f"Duplicate Keys Found:  {len(duplicates)}",
        "",
    ]
    if duplicates:
        lines += [
            "❌ FAILURE: Duplicate keys detected!",
            "",
            "Duplicate Keys Details:",
            "-" * 60,
            *(f"  Key: {key} - Occurred {n} times" for key, n in duplicates[:DUPLICATES_SHOWN]),
        ]
        if len(duplicates) > DUPLICATES_SHOWN:
            lines.append(f"  ... and {len(duplicates) - DUPLICATES_SHOWN} more duplicate keys")
    elif total == 0:
        lines.append("❌ FAILURE: no keys to check (did the load test get any?)")
    else:
        lines.append("✅ SUCCESS: All keys are unique!")
    lines += ["", _RULE]
    out.write("\n".join(lines) + "\n")
    return total > 0 and not duplicates


def analyze_file(path: Path) -> int:
    """Check the keys in `path`; returns the exit status."""
    try:
        with path.open() as keys:
            counts = count_keys(keys)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not a text file"
        print(f"mini-forge analyze: cannot read {path}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_UNIQUE if print_report(counts, sys.stdout) else EXIT_FAILED


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m mini_forge.analyze FILE", file=sys.stderr)
        return EXIT_USAGE
    return analyze_file(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
