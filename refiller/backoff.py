"""Exponential backoff with jitter, for every retry loop of the refiller."""

from __future__ import annotations

import random

_BACKOFF_FIRST_SECONDS = 0.05
_BACKOFF_MAX_SECONDS = 2.0


class Backoff:
    """Exponential backoff with jitter, reset after a success."""

    def __init__(self) -> None:
        self._delay = _BACKOFF_FIRST_SECONDS

    def next_delay(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, _BACKOFF_MAX_SECONDS)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._delay = _BACKOFF_FIRST_SECONDS
