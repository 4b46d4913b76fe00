"""Adaptive range sizes under a simulated demand: they grow and shrink within their bounds."""

from __future__ import annotations

import pytest

from refiller.range_sizer import RangeSizer
from shared.settings import Settings, SettingsError, load_settings


class SimulatedDemand:
    """A clock that advances by however long each range lasts at `keys_per_second`."""

    def __init__(self, keys_per_second: float) -> None:
        self.keys_per_second = keys_per_second
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def reserve(self, sizer: RangeSizer, times: int) -> list[int]:
        """Reserve `times` ranges in a row, each used up by the demand; their sizes."""
        sizes = []
        for _ in range(times):
            size = sizer.next_size()
            sizes.append(size)
            self.now += size / self.keys_per_second
        return sizes


def test_grows_to_a_steady_size_that_costs_under_one_transaction_per_second() -> None:
    defaults = Settings()
    demand = SimulatedDemand(20_000)
    sizer = RangeSizer(
        defaults.RANGE_SIZE, defaults.RANGE_SIZE_MIN, defaults.RANGE_SIZE_MAX, demand.clock
    )

    sizes = demand.reserve(sizer, 40)

    assert sizes[0] == defaults.RANGE_SIZE
    assert sizes == sorted(sizes)  # only grew while ranges ran out in under a few seconds
    steady = sizes[-10:]
    assert len(set(steady)) == 1
    assert demand.keys_per_second / steady[0] <= 1  # transactions per second
    assert steady[0] <= defaults.RANGE_SIZE_MAX


def test_shrinks_when_demand_falls_and_stops_at_the_minimum() -> None:
    demand = SimulatedDemand(50_000)
    sizer = RangeSizer(1000, 1000, 1_000_000, demand.clock)
    busy = demand.reserve(sizer, 20)

    demand.keys_per_second = 10
    quiet = demand.reserve(sizer, 20)

    assert quiet[0] == busy[-1] // 2 or quiet[0] == busy[-1]
    assert quiet == sorted(quiet, reverse=True)
    assert quiet[-1] == 1000
    assert min(quiet) == 1000


def test_never_exceeds_the_maximum_under_any_demand() -> None:
    demand = SimulatedDemand(100_000_000)
    sizer = RangeSizer(1000, 500, 64_000, demand.clock)

    sizes = demand.reserve(sizer, 30)

    assert max(sizes) == 64_000
    assert all(500 <= size <= 64_000 for size in sizes)


def test_a_demand_inside_the_band_keeps_the_size() -> None:
    demand = SimulatedDemand(1000)  # 10,000 keys last 10 s: neither too short nor too long
    sizer = RangeSizer(10_000, 1000, 100_000, demand.clock)

    assert demand.reserve(sizer, 10) == [10_000] * 10


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"RANGE_SIZE": "50"}, "RANGE_SIZE_MIN=100"),
        ({"RANGE_SIZE": "2000000"}, "RANGE_SIZE_MAX=1000000"),
        ({"RANGE_SIZE_MIN": "0"}, "RANGE_SIZE_MIN"),
        ({"RANGE_SIZE_MIN": "5000", "RANGE_SIZE_MAX": "4000", "RANGE_SIZE": "4500"}, "RANGE_SIZE"),
    ],
)
def test_range_bounds_that_do_not_fit_are_refused(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ, dotenv_path=None)


def test_an_abandoned_range_does_not_grow_the_next_one() -> None:
    now = [0.0]
    sizer = RangeSizer(1000, 100, 1_000_000, clock=lambda: now[0])
    sizer.next_size()
    for _ in range(5):  # ranges given up at once (lost claim, redis restart)
        now[0] += 0.01
        sizer.abandoned()
        assert sizer.next_size() == 1000
