"""`mini-forge status` arithmetic and wording on hand-made readings, and reading Redis."""

from __future__ import annotations

from mini_forge.status import Status, read_status, render_text
from refiller.counter import CounterReading
from refiller.reporting import StatusReporter
from shared.pool import PoolNames, PoolReading
from shared.settings import load_settings
from tests.support import RedisServer


def status(**changes: object) -> Status:
    reading = Status(
        redis_url="redis://:***@h:1/0",
        database_url="sqlite:///c.db",
        pool_name="mini-forge:pool",
        read_at=1000.0,
        low_watermark=10,
        target=100,
        pool=PoolReading(valid=True, length=40, exhausted=False),
        counter=CounterReading(position=1040, key_length=2),
        issued_samples=[(990.0, 900), (900.0, 0)],
    )
    for name, value in changes.items():
        setattr(reading, name, value)
    return reading


def test_issued_rate_and_time_left_come_from_the_oldest_reading() -> None:
    reading = status()
    assert reading.keyspace_size == 62**2
    assert reading.keys_issued == 1000
    assert reading.rate == 10.0  # 1000 keys in the 100 s since the oldest reading
    assert reading.keyspace_remaining == 62**2 - 1040
    assert reading.seconds_left == (62**2 - 1040) / 10.0


def test_an_invalid_pool_counts_as_issued_and_no_readings_give_no_rate() -> None:
    reading = status(pool=PoolReading(valid=False, length=40, exhausted=False), issued_samples=[])
    assert reading.keys_issued == 1040
    assert reading.rate is None and reading.seconds_left is None
    assert "? (no keys issued recently)" in render_text(reading)


def test_text_names_what_could_not_be_read() -> None:
    reading = status(pool=None, redis_error="Connection refused", counter=None,
                     counter_error="counter store c.db: no such file")  # fmt: skip
    text = render_text(reading)
    assert "unreadable: Connection refused" in text
    assert "unreadable: counter store c.db: no such file" in text
    assert not reading.healthy
    assert reading.to_json()["keys_issued"] is None


def test_read_status_takes_watermarks_from_a_live_refiller_heartbeat(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client()
    client.set(
        PoolNames("mini-forge:pool").refiller_heartbeat("abc"),
        '{"refiller": "h:1", "low_watermark": 7, "target": 70, "range_size": 5}',
    )
    client.set(PoolNames("other:pool").refiller_heartbeat("def"), "{}")
    settings = load_settings({"DATABASE_URL": "sqlite:////nonexistent/c.db"}, dotenv_path=None)
    reading = read_status(settings, client)
    assert reading.pool == PoolReading(valid=False, length=0, exhausted=False)
    assert [r["refiller"] for r in reading.refillers] == ["h:1"]
    assert (reading.low_watermark, reading.target) == (7, 70)
    assert reading.counter_error is not None and "no such file" in reading.counter_error


def test_numbers_a_live_refiller_holds_unpushed_are_not_issued(redis_server: RedisServer) -> None:
    client = redis_server.client()
    names = PoolNames("mini-forge:pool")
    reporter = StatusReporter(client, names, "abc", {"low_watermark": 10, "target": 100})
    # 1,040 numbers reserved, 40 in the pool, 300 still held by the refiller: 700 issued.
    reporter.tick(40, 300, lambda: 1040)
    settings = load_settings({"DATABASE_URL": "sqlite:////nonexistent/c.db"}, dotenv_path=None)
    reading = read_status(settings, client)
    assert [r["unpushed"] for r in reading.refillers] == [300]
    (sample,) = client.lrange(names.issued_samples, 0, -1)
    assert sample.split()[1] == b"700"

    reading.counter = CounterReading(position=1040, key_length=2)
    reading.pool = PoolReading(valid=True, length=40, exhausted=False)
    assert reading.keys_issued == 700
