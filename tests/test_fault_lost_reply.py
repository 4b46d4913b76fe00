"""Failure mode 1: a chunk push whose reply is lost and is sent again adds nothing."""

from __future__ import annotations

import pytest
import redis

from refiller.counter import Range
from refiller.pool_writer import PoolWriter
from shared.codec import KeyCodec
from shared.pool import PUSH_SCRIPT, PoolNames
from tests.faults import TcpProxy
from tests.support import Processes, RedisServer, wait_until

pytestmark = pytest.mark.faults

POOL = "mini-forge:pool"
CODEC = KeyCodec(7)


def _writer(url: str) -> PoolWriter:
    return PoolWriter(redis.Redis.from_url(url, socket_timeout=2), PoolNames(POOL))


def _claimed_writer(url: str, reserved: Range) -> tuple[PoolWriter, str]:
    writer = _writer(url)
    run_id = writer.check().run_id
    assert writer.acquire_lock()
    assert writer.claim(reserved, run_id)
    return writer, run_id


def test_the_same_chunk_pushed_twice_is_in_the_pool_once(redis_server: RedisServer) -> None:
    reserved = Range(0, 100)
    writer, run_id = _claimed_writer(redis_server.url, reserved)
    keys = CODEC.encode_range(0, 100)

    assert writer.push(reserved, 0, keys, run_id) == 100
    assert writer.push(reserved, 0, keys, run_id) == 100
    assert redis_server.client().lrange(POOL, 0, -1) == keys


def test_a_push_whose_reply_was_lost_adds_nothing_when_sent_again(
    redis_server: RedisServer,
) -> None:
    proxy = TcpProxy(redis_server.port)
    try:
        reserved = Range(0, 1000)
        writer, run_id = _claimed_writer(proxy.url, reserved)
        keys = CODEC.encode_range(0, 1000)
        redis_server.client().script_load(PUSH_SCRIPT)  # else the cut reply is a NOSCRIPT
        proxy.cut_reply_to(PoolNames(POOL).push_marker(0, 0).encode())

        with pytest.raises(redis.ConnectionError):
            writer.push(reserved, 0, keys, run_id)
        assert proxy.cuts == 1
        assert redis_server.client().llen(POOL) == 1000  # the lost push did run

        assert writer.push(reserved, 0, keys, run_id) == 1000
        assert redis_server.client().lrange(POOL, 0, -1) == keys
    finally:
        proxy.close()


def test_a_push_fenced_by_another_lock_holder_or_redis_process_adds_nothing(
    redis_server: RedisServer,
) -> None:
    reserved = Range(0, 10)
    writer, run_id = _claimed_writer(redis_server.url, reserved)
    keys = CODEC.encode_range(0, 10)

    assert writer.push(reserved, 0, keys, "0" * 40) is None  # another redis process
    redis_server.client().set(f"{POOL}:lock", "someone-else")
    assert writer.push(reserved, 0, keys, run_id) is None  # lock lapsed and was taken
    assert redis_server.client().llen(POOL) == 0


def test_a_refiller_whose_push_reply_is_lost_retries_without_duplicating(
    redis_server: RedisServer, processes: Processes
) -> None:
    proxy = TcpProxy(redis_server.port)
    try:
        # The second range's push: the first one loaded the script, so this one runs.
        proxy.cut_reply_to(b":pushed:1000:0")
        processes.refiller(
            REDIS_URL=proxy.url,
            POOL_TARGET="5000",
            POOL_LOW_WATERMARK="1000",
            RANGE_SIZE="1000",
            KEY_ORDER="sequential",
        )
        client = redis_server.client()
        wait_until(lambda: client.llen(POOL) >= 5000, 20, "the pool to fill")

        assert proxy.cuts == 1
        assert "push failed, retrying the same chunk" in processes.log("refiller")
        pool = client.lrange(POOL, 0, -1)
        # Every reserved number is in the pool exactly once, in order: nothing was pushed twice.
        assert pool == CODEC.encode_range(0, len(pool))
    finally:
        proxy.close()
