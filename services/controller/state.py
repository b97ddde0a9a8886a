"""Per-question state in Redis; every transition is one Lua script (atomic, idempotent, fenced).

Keys (``{q}`` = question id; the hash tag keeps a question's keys in one cluster slot):

* ``oq:{q}:h`` — hash: ``status`` (active | done | cancelled), ``epoch`` (owner fence),
  ``partition``, ``config`` (JSON), counters ``n_dispatched n_failed n_scored next_index
  tokens``, sufficient statistics ``s1 s2 lo hi``, best candidate ``best_id best_score``,
  ``result`` (JSON, once final).
* ``oq:{q}:applied`` — set of sample ids already applied (scores and failures).
* ``oq:{q}:obs`` — list of applied observations (JSON), the log a new owner rebuilds from.
* ``oq:active:<partition>`` — set of active question ids owned through that partition.

Fencing: a controller claims a question with its epoch (from ``INCR oq:epoch``); every later
write carries the epoch and is refused (``FENCED``) when the stored epoch is newer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.controller.autopipeline import AutoPipeline

FENCED = -1

_PRE = """
local h = KEYS[1]
local epoch = tonumber(ARGV[1])
if redis.call('EXISTS', h) == 0 then return -2 end
if tonumber(redis.call('HGET', h, 'epoch')) > epoch then return -1 end
"""

CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'active', 'epoch', ARGV[1], 'config', ARGV[2],
  'partition', ARGV[3], 'n_dispatched', 0, 'n_failed', 0, 'n_scored', 0, 'next_index', 0,
  'tokens', 0, 's1', 0, 's2', 0, 'lo', 1, 'hi', 0, 'best_id', '', 'best_score', -1,
  'n_max', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[4])
return 1
"""

# claim a question for a new owner epoch; in-flight samples of the old owner are gone
# (its Generate calls dropped), so the dispatched count falls back to what finished.
CLAIM = """
local h = KEYS[1]
local epoch = tonumber(ARGV[1])
if redis.call('EXISTS', h) == 0 then return -2 end
local cur = tonumber(redis.call('HGET', h, 'epoch'))
if cur > epoch then return -1 end
if cur < epoch or ARGV[2] == '1' then
  redis.call('HSET', h, 'epoch', epoch)
  local done = tonumber(redis.call('HGET', h, 'n_scored')) +
    tonumber(redis.call('HGET', h, 'n_failed'))
  redis.call('HSET', h, 'n_dispatched', done)
end
return 1
"""

# reserve k new sample indices without exceeding N_max live (dispatched - failed) samples:
# the first index, or -4 (nothing reserved)
_RESERVE = """
local function reserve(k, n_max)
  local live = tonumber(redis.call('HGET', h, 'n_dispatched')) -
    tonumber(redis.call('HGET', h, 'n_failed'))
  if live + k > n_max then return -4 end
  local first = tonumber(redis.call('HGET', h, 'next_index'))
  redis.call('HINCRBY', h, 'next_index', k)
  redis.call('HINCRBY', h, 'n_dispatched', k)
  return first
end
"""

# ARGV: epoch, k, n_max
DISPATCH = (
    _PRE
    + _RESERVE
    + """
if redis.call('HGET', h, 'status') ~= 'active' then return -3 end
return reserve(tonumber(ARGV[2]), tonumber(ARGV[3]))
"""
)

# ARGV: epoch, sample_id, score, tokens, observation JSON
_APPLY = """
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
if redis.call('HGET', h, 'status') ~= 'active' then
  redis.call('RPUSH', KEYS[4], ARGV[5])
  return 2
end
-- never more than N_max scores: after a failover, a sample the old owner had in flight can
-- still arrive next to its replacement; it is recorded with the late ones, not counted
local cap = tonumber(redis.call('HGET', h, 'n_max') or '0')
if cap > 0 and tonumber(redis.call('HGET', h, 'n_scored')) >= cap then
  redis.call('RPUSH', KEYS[4], ARGV[5])
  return 2
end
local s = tonumber(ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[5])
local n = redis.call('HINCRBY', h, 'n_scored', 1)
redis.call('HINCRBY', h, 'tokens', tonumber(ARGV[4]))
redis.call('HINCRBYFLOAT', h, 's1', s)
redis.call('HINCRBYFLOAT', h, 's2', s * s)
if s < tonumber(redis.call('HGET', h, 'lo')) then redis.call('HSET', h, 'lo', ARGV[3]) end
if s > tonumber(redis.call('HGET', h, 'hi')) then redis.call('HSET', h, 'hi', ARGV[3]) end
if s > tonumber(redis.call('HGET', h, 'best_score')) then
  redis.call('HSET', h, 'best_score', ARGV[3], 'best_id', ARGV[2])
end
local done = n + tonumber(redis.call('HGET', h, 'n_failed'))
if tonumber(redis.call('HGET', h, 'n_dispatched')) < done then
  redis.call('HSET', h, 'n_dispatched', done)
end
"""
APPLY_SCORE = _PRE + _APPLY + "return 1\n"

# the same, then (only if applied) reserve ARGV[6] = k new samples within ARGV[7] = N_max, as
# DISPATCH does: the controller decided on the state with this score before sending it, so a
# score and the dispatch it leads to are one atomic write (and one round trip).
# Returns {1, first index} (first = -4: over N_max, nothing reserved) or a scalar code.
APPLY_SCORE_DISPATCH = (
    _PRE + _RESERVE + _APPLY + "return {1, reserve(tonumber(ARGV[6]), tonumber(ARGV[7]))}\n"
)

APPLY_FAILURE = (
    _PRE
    + """
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
if redis.call('HGET', h, 'status') ~= 'active' then return 2 end
local f = redis.call('HINCRBY', h, 'n_failed', 1)
local done = f + tonumber(redis.call('HGET', h, 'n_scored'))
if tonumber(redis.call('HGET', h, 'n_dispatched')) < done then
  redis.call('HSET', h, 'n_dispatched', done)
end
return 1
"""
)

# ARGV: epoch, final status, result JSON, question id
FINALIZE = (
    _PRE
    + """
if redis.call('HGET', h, 'status') ~= 'active' then return 0 end
redis.call('HSET', h, 'status', ARGV[2], 'result', ARGV[3])
redis.call('SREM', KEYS[2], ARGV[4])
return 1
"""
)


@dataclass(frozen=True, slots=True)
class StoredQuestion:
    question_id: str
    status: str
    epoch: int
    partition: int
    config: dict[str, Any]
    n_dispatched: int
    n_failed: int
    n_scored: int
    next_index: int
    tokens: int
    s1: float
    s2: float
    best_id: str
    best_score: float
    observations: list[dict[str, Any]]
    applied: int
    result: dict[str, Any] | None


def _h(q: str) -> str:
    return f"oq:{{{q}}}:h"


def _keys(q: str) -> tuple[str, str, str, str]:
    return _h(q), f"oq:{{{q}}}:applied", f"oq:{{{q}}}:obs", f"oq:{{{q}}}:late"


def _score_args(
    epoch: int, sample_id: str, score: float, tokens: int, obs: dict[str, Any]
) -> list[Any]:
    return [epoch, sample_id, repr(float(score)), int(tokens), json.dumps(obs)]


class RedisStateStore:
    """The controller's state port over redis-py asyncio (``decode_responses=True``)."""

    def __init__(self, redis: Any, *, autopipeline: bool = True) -> None:
        """With ``autopipeline`` (the default), transitions issued concurrently share one
        round trip (:mod:`services.controller.autopipeline`)."""
        self.r = redis
        self.pipeline = AutoPipeline(redis) if autopipeline else None
        self._create = redis.register_script(CREATE)
        self._claim = redis.register_script(CLAIM)
        self._dispatch = redis.register_script(DISPATCH)
        self._score = redis.register_script(APPLY_SCORE)
        self._score_dispatch = redis.register_script(APPLY_SCORE_DISPATCH)
        self._fail = redis.register_script(APPLY_FAILURE)
        self._finalize = redis.register_script(FINALIZE)

    async def _run(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        if self.pipeline is None:
            return await script(keys=keys, args=args)
        return await self.pipeline.run(script, keys, args)

    async def new_epoch(self) -> int:
        return int(await self.r.incr("oq:epoch"))

    async def create(self, q: str, epoch: int, config: dict[str, Any], partition: int) -> bool:
        keys = [_h(q), f"oq:active:{partition}"]
        n_max = int(config.get("n_max") or 0)
        args = [epoch, json.dumps(config, sort_keys=True), partition, q, n_max]
        return int(await self._run(self._create, keys, args)) == 1

    async def claim(self, q: str, epoch: int, *, forget_inflight: bool = False) -> int:
        """Own ``q`` at ``epoch``. A newer epoch (or ``forget_inflight``, for the owner itself)
        sets the dispatched count back to what finished: work in flight is considered gone."""
        return int(await self._run(self._claim, [_h(q)], [epoch, int(forget_inflight)]))

    async def dispatch(self, q: str, epoch: int, k: int, n_max: int) -> int:
        """First sample index of ``k`` new samples, or a negative code (fenced/not active/
        over N_max)."""
        return int(await self._run(self._dispatch, [_h(q)], [epoch, k, n_max]))

    async def apply_score(
        self, q: str, epoch: int, sample_id: str, score: float, tokens: int, obs: dict[str, Any]
    ) -> int:
        """1 applied, 0 duplicate, 2 late (question final, or N_max scores already: recorded
        only), -1 fenced."""
        args = _score_args(epoch, sample_id, score, tokens, obs)
        return int(await self._run(self._score, list(_keys(q)), args))

    async def apply_score_and_dispatch(
        self,
        q: str,
        epoch: int,
        sample_id: str,
        score: float,
        tokens: int,
        obs: dict[str, Any],
        k: int,
        n_max: int,
    ) -> tuple[int, int]:
        """:meth:`apply_score`, and if the score was applied, :meth:`dispatch` of ``k >= 1``
        samples in the same atomic script: ``(code, first index or -4 over N_max)``."""
        args = [*_score_args(epoch, sample_id, score, tokens, obs), k, n_max]
        res = await self._run(self._score_dispatch, list(_keys(q)), args)
        if isinstance(res, list):
            return int(res[0]), int(res[1])
        return int(res), -5

    async def apply_failure(self, q: str, epoch: int, sample_id: str) -> int:
        h, applied, _, _ = _keys(q)
        return int(await self._run(self._fail, [h, applied], [epoch, sample_id]))

    async def finalize(
        self, q: str, epoch: int, status: str, result: dict[str, Any], partition: int
    ) -> int:
        keys = [_h(q), f"oq:active:{partition}"]
        args = [epoch, status, json.dumps(result, sort_keys=True), q]
        return int(await self._run(self._finalize, keys, args))

    async def active(self, partition: int) -> list[str]:
        return sorted(await self.r.smembers(f"oq:active:{partition}"))

    async def get(self, q: str) -> StoredQuestion | None:
        h, applied, obs, _ = _keys(q)
        async with self.r.pipeline(transaction=True) as p:
            p.hgetall(h)
            p.lrange(obs, 0, -1)
            p.scard(applied)
            raw, obs_raw, n_applied = await p.execute()
        if not raw:
            return None
        return StoredQuestion(
            question_id=q,
            status=raw["status"],
            epoch=int(raw["epoch"]),
            partition=int(raw["partition"]),
            config=json.loads(raw["config"]),
            n_dispatched=int(raw["n_dispatched"]),
            n_failed=int(raw["n_failed"]),
            n_scored=int(raw["n_scored"]),
            next_index=int(raw["next_index"]),
            tokens=int(raw["tokens"]),
            s1=float(raw["s1"]),
            s2=float(raw["s2"]),
            best_id=raw["best_id"],
            best_score=float(raw["best_score"]),
            observations=[json.loads(x) for x in obs_raw],
            applied=int(n_applied),
            result=json.loads(raw["result"]) if raw.get("result") else None,
        )
