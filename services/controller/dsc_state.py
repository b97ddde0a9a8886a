"""Batch DSC's boards in Redis (:class:`optscale.batch_dsc.DscBoards`): one hash per batch,
``ob:{<batch>}:dsc`` (the hash tag puts it in the slot of the batch's other ``ob:{<batch>}``
keys), fields ``easy_max``, ``hard_min`` (absent: -1), ``alloc`` (the count of the hard
question that finished last; absent: none yet) and ``a:<rank>`` (a hard question's frozen
pre-allocation). Each transition is one Lua script: the same transitions as
:class:`optscale.batch_dsc.DscBoard` (the controller's tests run on both). The hash expires
with the results (``result_ttl_seconds`` after its last write)."""

from __future__ import annotations

from typing import Any

from optscale.batch_dsc import DscView

# KEYS: the board; ARGV: rank, probe (-1: none, 0: disagreed, 1: agreed), window, TTL in ms.
# Returns {easy_max, hard_min, alloc}.
DSC_STEP = """
local k = KEYS[1]
local rank = tonumber(ARGV[1])
local probe = tonumber(ARGV[2])
local em = tonumber(redis.call('HGET', k, 'easy_max') or '-1')
local hm = tonumber(redis.call('HGET', k, 'hard_min') or '-1')
local wrote = false
if rank > em and (hm < 0 or rank < hm) then
  if probe == 1 then
    em = rank
    redis.call('HSET', k, 'easy_max', em)
    wrote = true
  elseif probe == 0 then
    hm = rank
    redis.call('HSET', k, 'hard_min', hm)
    wrote = true
  end
end
local a = 0
if hm >= 0 and rank >= hm then
  local f = 'a:' .. rank
  a = tonumber(redis.call('HGET', k, f) or '0')
  if a == 0 then
    a = tonumber(redis.call('HGET', k, 'alloc') or ARGV[3])
    redis.call('HSET', k, f, a)
    wrote = true
  end
end
if wrote and tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', k, tonumber(ARGV[4])) end
return {em, hm, a}
"""

# KEYS: the board; ARGV: count, TTL in ms
DSC_HARD_DONE = """
redis.call('HSET', KEYS[1], 'alloc', tonumber(ARGV[1]))
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2])) end
return 1
"""


def board_key(batch: str) -> str:
    return f"ob:{{{batch}}}:dsc"


class RedisDscBoards:
    """:class:`optscale.batch_dsc.DscBoards` over redis-py asyncio."""

    def __init__(self, redis: Any, *, ttl_ms: int = 0) -> None:
        self.ttl_ms = ttl_ms
        self._step = redis.register_script(DSC_STEP)
        self._done = redis.register_script(DSC_HARD_DONE)

    async def step(self, batch: str, rank: int, probe: bool | None, window: int) -> DscView:
        p = -1 if probe is None else int(probe)
        em, hm, a = await self._step(keys=[board_key(batch)], args=[rank, p, window, self.ttl_ms])
        return DscView(int(em), int(hm), int(a))

    async def hard_done(self, batch: str, count: int) -> None:
        await self._done(keys=[board_key(batch)], args=[int(count), self.ttl_ms])
