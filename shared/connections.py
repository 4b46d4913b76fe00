"""Redis clients for both processes, with bounded timeouts and no hidden retries.

Callers decide when to retry (the refiller with backoff, the API by answering 503), so a
single call is bounded by REDIS_TIMEOUT_MS and never waits on retries of its own.
"""

from __future__ import annotations

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.retry

from shared.settings import Settings


def redis_client(settings: Settings) -> redis.Redis:
    """A blocking client (the refiller, the CLI)."""
    timeout = settings.REDIS_TIMEOUT_MS / 1000
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )


def async_redis_client(settings: Settings) -> redis.asyncio.Redis:
    """An asyncio client (the API)."""
    timeout = settings.REDIS_TIMEOUT_MS / 1000
    return redis.asyncio.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0),
    )
