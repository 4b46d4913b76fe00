"""How many numbers the next counter reservation takes, sized to the demand.

Each reservation is one counter-store transaction, so a range should last a few seconds of
demand: long enough that a busy pool costs well under one transaction per second, short
enough that a quiet one does not reserve (and risk losing in a crash) far more numbers than
it uses. The sizer watches how long the previous range lasted, from its reservation to the
next one: under GROW_BELOW_SECONDS the size doubles, over SHRINK_ABOVE_SECONDS it halves,
always within [minimum, maximum].
"""

from __future__ import annotations

import time
from collections.abc import Callable

GROW_BELOW_SECONDS = 2.0
SHRINK_ABOVE_SECONDS = 30.0


class RangeSizer:
    """The size of each reservation, adapted to how fast the previous one was used up."""

    def __init__(
        self,
        initial: int,
        minimum: int,
        maximum: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(f"need 1 <= minimum {minimum} <= initial {initial} <= max {maximum}")
        self.size = initial
        self._minimum = minimum
        self._maximum = maximum
        self._clock = clock
        self._last_reserved_at: float | None = None

    def next_size(self) -> int:
        """The size for a reservation made now; call it once per reservation."""
        now = self._clock()
        if self._last_reserved_at is not None:
            lasted = now - self._last_reserved_at
            if lasted < GROW_BELOW_SECONDS:
                self.size = min(self.size * 2, self._maximum)
            elif lasted > SHRINK_ABOVE_SECONDS:
                self.size = max(self.size // 2, self._minimum)
        self._last_reserved_at = now
        return self.size

    def abandoned(self) -> None:
        """The current range was given up before it was used: it says nothing about demand."""
        self._last_reserved_at = None
