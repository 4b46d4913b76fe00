"""The key pool in Redis: its key names and the Lua scripts that read and write it.

The pool is a Redis list of keys. Next to it live:

- `<pool>:stamp`  the run id of the Redis process the pool was filled in. A Redis that
  restarts from a snapshot or AOF, or a replica promoted after a failover, has another run
  id, so a pool that may contain keys already popped is recognised and never served.
- `<pool>:pushed:<start>:<chunk>`  a marker per pushed chunk, so a push sent again after
  a lost reply adds nothing.
- `<pool>:high`  the end of the highest range pushed, to detect a counter store that went
  back in time.
- `<pool>:lock`  the refill lock; only its holder reserves ranges and pushes.
- `<pool>:exhausted`  set by a refiller when the counter store has no numbers left.
- `<pool>:refiller:<token>`  a refiller's heartbeat (JSON, short TTL): who is alive.
- `<pool>:last-reservation`  the last range reserved (JSON), for `mini-forge status`.
- `<pool>:issued-samples`  recent `<unix time> <keys issued>` readings, newest first, from
  which `mini-forge status` derives the current rate.

What can put a key in front of a client is fenced atomically: a push (PUSH_SCRIPT) checks
the refill-lock token, the run id its range was claimed in and the stamp; a claim
(CLAIM_SCRIPT) checks the token and the run id; a pop runs its stamp check in the same MULTI
transaction as its LPOP. The lock, exhausted-flag and status keys are plain writes: losing
one costs a short wait or a stale status line, never a key served twice.
"""

from __future__ import annotations

from dataclasses import dataclass

# Status codes the scripts return instead of a list of keys.
POOL_STALE = -1
KEYSPACE_EXHAUSTED = -2
# Markers only need to outlive the retries of one refiller against one Redis process.
PUSH_MARKER_TTL_SECONDS = 86_400
# Lua's unpack() has a C-stack limit near 8000 values; push in slices below it.
_LUA_UNPACK_SLICE = 4000

_LIVE_RUN_ID = """
local function live_run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
"""

# KEYS: pool, stamp, exhausted. Sent inside MULTI right before `LPOP pool count`, so that
# the check and the pop are one atomic step while the pop stays a native command (an LPOP
# inside Lua turns every key into a Lua string and back, about twice the Redis time per key).
# Returns 0 when the keys the LPOP takes may be served, POOL_STALE when they must be dropped,
# or KEYSPACE_EXHAUSTED when the pool is empty for good.
POP_GUARD_SCRIPT = (
    _LIVE_RUN_ID
    + """
if redis.call('GET', KEYS[2]) ~= live_run_id() then
  if redis.call('LLEN', KEYS[1]) > 0 then return -1 end
  return 0
end
if redis.call('LLEN', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[3]) == 1 then return -2 end
return 0
"""
)

# KEYS: pool, stamp. Discards a pool filled in another Redis process and stamps the pool
# with the live run id. Returns {pool length, live run id, number of keys discarded}.
CHECK_SCRIPT = (
    _LIVE_RUN_ID
    + """
local live = live_run_id()
if redis.call('GET', KEYS[2]) ~= live then
  local discarded = redis.call('LLEN', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], live)
  return {0, live, discarded}
end
return {redis.call('LLEN', KEYS[1]), live, 0}
"""
)

# KEYS: lock, high. ARGV: token, run id, range start, range end, lock ttl ms.
# Claims a freshly reserved range for pushing. Returns 'ok', 'lost' (the lock or the Redis
# process changed: abandon the range) or the recorded high mark when the range starts
# below it (the counter store went back in time).
CLAIM_SCRIPT = (
    _LIVE_RUN_ID
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or live_run_id() ~= ARGV[2] then return 'lost' end
local high = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[3]) < high then return tostring(high) end
redis.call('SET', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 'ok'
"""
)

# KEYS: pool, stamp, lock, marker. ARGV: token, run id, lock ttl ms, marker ttl s, key width,
# the chunk's keys concatenated (one argument: packing one string instead of thousands halves
# the client's cost of a push). Pushes one chunk at most once. Returns the pool length after
# the push, or POOL_STALE when the lock or the Redis process changed (abandon the range).
PUSH_SCRIPT = (
    _LIVE_RUN_ID
    + """
local live = live_run_id()
if redis.call('GET', KEYS[3]) ~= ARGV[1] or live ~= ARGV[2]
   or redis.call('GET', KEYS[2]) ~= live then
  return -1
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
if redis.call('EXISTS', KEYS[4]) == 1 then return redis.call('LLEN', KEYS[1]) end
local blob, width, slice = ARGV[6], tonumber(ARGV[5]), """
    + str(_LUA_UNPACK_SLICE)
    + """
local batch, count = {}, 0
for at = 1, #blob, width do
  count = count + 1
  batch[count] = string.sub(blob, at, at + width - 1)
  if count == slice or at + width > #blob then
    redis.call('RPUSH', KEYS[1], unpack(batch, 1, count))
    count = 0
  end
end
redis.call('SET', KEYS[4], '1', 'EX', ARGV[4])
return redis.call('LLEN', KEYS[1])
"""
)

# KEYS: pool, stamp, exhausted. Reads without changing anything. Returns {1 if the pool was
# filled in the live Redis process else 0, pool length, 1 if the keyspace is exhausted else 0}.
INSPECT_SCRIPT = (
    _LIVE_RUN_ID
    + """
local valid = 0
if redis.call('GET', KEYS[2]) == live_run_id() then valid = 1 end
return {valid, redis.call('LLEN', KEYS[1]), redis.call('EXISTS', KEYS[3])}
"""
)

# KEYS: lock. ARGV: token, ttl ms. Extends the lock only if this refiller still holds it;
# returns 1 if it did, 0 if the lock lapsed or went to another refiller.
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: lock. ARGV: token. Releases the lock only if this refiller still holds it.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class PoolNames:
    """The Redis key names that belong to one pool."""

    pool: str

    @property
    def stamp(self) -> str:
        return f"{self.pool}:stamp"

    @property
    def high(self) -> str:
        return f"{self.pool}:high"

    @property
    def lock(self) -> str:
        return f"{self.pool}:lock"

    @property
    def exhausted(self) -> str:
        return f"{self.pool}:exhausted"

    @property
    def last_reservation(self) -> str:
        return f"{self.pool}:last-reservation"

    @property
    def issued_samples(self) -> str:
        return f"{self.pool}:issued-samples"

    def refiller_heartbeat(self, token: str) -> str:
        return f"{self.pool}:refiller:{token}"

    @property
    def refiller_heartbeat_pattern(self) -> str:
        """A SCAN pattern for every heartbeat (glob characters of the pool name escaped)."""
        escaped = "".join(f"\\{char}" if char in "*?[]\\" else char for char in self.pool)
        return f"{escaped}:refiller:*"

    def push_marker(self, range_start: int, chunk_index: int) -> str:
        return f"{self.pool}:pushed:{range_start}:{chunk_index}"


@dataclass(frozen=True)
class PoolReading:
    """What INSPECT_SCRIPT saw: the pool's validity and length, and keyspace exhaustion."""

    valid: bool
    length: int
    exhausted: bool

    @classmethod
    def from_reply(cls, reply: list[int]) -> PoolReading:
        valid, length, exhausted = reply
        return cls(bool(valid), int(length), bool(exhausted))
