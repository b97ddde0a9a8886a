"""Per-question state in Redis; every transition is one Lua script (atomic, idempotent, fenced).

Keys (``{q}`` = question id; the hash tag keeps a question's keys in one cluster slot):

* ``oq:{q}:h`` — hash: ``status`` (active | done | cancelled), ``epoch`` (owner fence),
  ``partition``, ``config`` (JSON), counters ``n_dispatched n_failed n_scored next_index
  tokens``, ``n_max``, ``result`` (JSON, once final).
* ``oq:{q}:applied`` — set of sample ids already applied (scores and failures).
* ``oq:{q}:obs`` — list of applied observations (JSON), the log a new owner rebuilds from.
* ``oq:{q}:late`` — observations recorded but not counted (late, stale).
* ``oq:active:<partition>`` — set of active question ids owned through that partition.
* ``oq:epoch`` — the owner epoch counter.

Every script touches only the keys of one question, so all keys of a script share a hash slot
(Redis Cluster runs them; tests run the store on a cluster-mode redis-server). The partition's
active set is written by its own command next to the script: with ``CREATE`` (sent in the
same round trip; every redelivered ``Submitted`` adds it again, so a crash between the two is
repaired; a question found final leaves the set again) and after ``FINALIZE``;
:meth:`RedisStateStore.active` drops ids that are no longer active, so a crash between
``FINALIZE`` and the removal leaves nothing behind.

Finalized questions expire: ``FINALIZE`` sets a TTL (``result_ttl_seconds``; the controller's
``OPTSCALE_CONTROLLER_RESULT_TTL_SECONDS``, default 7 days, 0 = keep forever) on all four keys
of the question, and a late score or failure recorded afterwards keeps that TTL. After expiry
``GetResult`` no longer knows the question and its id may be submitted again.

Fencing: a controller claims a question with its epoch (from ``INCR oq:epoch``); every later
write carries the epoch and is refused (``FENCED``) when the stored epoch is newer. The
scripts return :class:`optscale.ports.Outcome` codes; the contract is the one
:class:`optscale.memory.InMemoryStateStore` implements in Python (the controller's behavioural
tests run against both).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from optscale.config import QuestionConfig
from optscale.errors import InvalidArgumentError
from optscale.policies import Observation
from optscale.ports import Applied, Outcome, ScoreWrite, StoredQuestion
from services.controller.autopipeline import AutoPipeline
from services.controller.dsc_state import RedisDscBoards

_PRE = """
local h = KEYS[1]
local epoch = tonumber(ARGV[1])
if redis.call('EXISTS', h) == 0 then return -2 end
if tonumber(redis.call('HGET', h, 'epoch')) > epoch then return -1 end
"""

DEFAULT_RESULT_TTL_SECONDS = 7 * 24 * 3600.0

# 1: created; 0: exists and active; 2: exists and final
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'status') == 'active' then return 0 end
  return 2
end
redis.call('HSET', KEYS[1], 'status', 'active', 'epoch', ARGV[1], 'config', ARGV[2],
  'partition', ARGV[3], 'n_dispatched', 0, 'n_failed', 0, 'n_scored', 0, 'next_index', 0,
  'tokens', 0, 'n_max', ARGV[4])
return 1
"""

# a key written after FINALIZE expires with the question (KEYS[1] carries its TTL)
_KEEP_TTL = """
local function keep_ttl(key)
  local t = redis.call('PTTL', KEYS[1])
  if t > 0 then redis.call('PEXPIRE', key, t) end
end
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

# a sample of an older owner epoch (ARGV[s], 0 = unknown) than the claim: forgotten by it
_STALE = """
local function stale(s)
  local e = tonumber(ARGV[s])
  return e > 0 and e < tonumber(redis.call('HGET', h, 'epoch'))
end
"""

# ARGV: epoch, sample_id, score, tokens, observation JSON, sample epoch
_APPLY = """
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
if stale(6) then
  redis.call('RPUSH', KEYS[4], ARGV[5])
  return 3
end
if redis.call('HGET', h, 'status') ~= 'active' then
  redis.call('RPUSH', KEYS[4], ARGV[5])
  keep_ttl(KEYS[2])
  keep_ttl(KEYS[4])
  return 2
end
-- never more than N_max scores: after a failover, a sample the old owner had in flight can
-- still arrive next to its replacement; it is recorded with the late ones, not counted
local cap = tonumber(redis.call('HGET', h, 'n_max') or '0')
if cap > 0 and tonumber(redis.call('HGET', h, 'n_scored')) >= cap then
  redis.call('RPUSH', KEYS[4], ARGV[5])
  return 2
end
redis.call('RPUSH', KEYS[3], ARGV[5])
local n = redis.call('HINCRBY', h, 'n_scored', 1)
redis.call('HINCRBY', h, 'tokens', tonumber(ARGV[4]))
local done = n + tonumber(redis.call('HGET', h, 'n_failed'))
if tonumber(redis.call('HGET', h, 'n_dispatched')) < done then
  redis.call('HSET', h, 'n_dispatched', done)
end
"""
APPLY_SCORE = _PRE + _KEEP_TTL + _STALE + _APPLY + "return 1\n"

# the same, then (only if applied) reserve ARGV[7] = k new samples within ARGV[8] = N_max, as
# DISPATCH does: the controller decided on the state with this score before sending it, so a
# score and the dispatch it leads to are one atomic write (and one round trip).
# Returns {1, first index} (first = -4: over N_max, nothing reserved) or a scalar code.
APPLY_SCORE_DISPATCH = (
    _PRE
    + _KEEP_TTL
    + _RESERVE
    + _STALE
    + _APPLY
    + "return {1, reserve(tonumber(ARGV[7]), tonumber(ARGV[8]))}\n"
)

# ARGV: epoch, sample_id, sample epoch
APPLY_FAILURE = (
    _PRE
    + _KEEP_TTL
    + _STALE
    + """
if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
if stale(3) then return 3 end
if redis.call('HGET', h, 'status') ~= 'active' then
  keep_ttl(KEYS[2])
  return 2
end
local f = redis.call('HINCRBY', h, 'n_failed', 1)
local done = f + tonumber(redis.call('HGET', h, 'n_scored'))
if tonumber(redis.call('HGET', h, 'n_dispatched')) < done then
  redis.call('HSET', h, 'n_dispatched', done)
end
return 1
"""
)

# KEYS: the question's four keys; ARGV: epoch, final status, result JSON, TTL in ms (0: none)
FINALIZE = (
    _PRE
    + """
if redis.call('HGET', h, 'status') ~= 'active' then return 0 end
redis.call('HSET', h, 'status', ARGV[2], 'result', ARGV[3])
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
"""
)

# the partition's active set (its own slot): one command, auto-pipelined like the scripts
SET_ADD = "return redis.call('SADD', KEYS[1], ARGV[1])"
SET_REMOVE = "return redis.call('SREM', KEYS[1], ARGV[1])"


def _h(q: str) -> str:
    return f"oq:{{{q}}}:h"


def _batch_key(batch_id: str) -> str:
    return f"ob:{{{batch_id}}}:spent"


def _keys(q: str) -> tuple[str, str, str, str]:
    return _h(q), f"oq:{{{q}}}:applied", f"oq:{{{q}}}:obs", f"oq:{{{q}}}:late"


def _observation_json(ob: Observation) -> str:
    return json.dumps(
        {"id": ob.sample_id, "answer": ob.answer, "score": ob.score, "tokens": ob.tokens}
    )


def _observation(raw: str) -> Observation:
    d = json.loads(raw)
    return Observation(d["id"], d.get("answer"), float(d["score"]), int(d["tokens"]))


def _first(code: int) -> int | None:
    """A reserve() result: the first index, or None (-4: over N_max)."""
    return None if code < 0 else code


class RedisStateStore:
    """:class:`optscale.ports.StateStore` over redis-py asyncio (``decode_responses=True``)."""

    def __init__(
        self,
        redis: Any,
        *,
        autopipeline: bool = True,
        result_ttl_seconds: float = DEFAULT_RESULT_TTL_SECONDS,
    ) -> None:
        """With ``autopipeline`` (the default), transitions issued concurrently share one
        round trip (:mod:`services.controller.autopipeline`). A finalized question's keys
        expire after ``result_ttl_seconds`` (0: never)."""
        if not result_ttl_seconds >= 0:
            raise InvalidArgumentError("result_ttl_seconds", result_ttl_seconds, "must be >= 0")
        self.r = redis
        self.result_ttl_ms = round(result_ttl_seconds * 1000)
        self.pipeline = AutoPipeline(redis) if autopipeline else None
        self._create = redis.register_script(CREATE)
        self._claim = redis.register_script(CLAIM)
        self._dispatch = redis.register_script(DISPATCH)
        self._score = redis.register_script(APPLY_SCORE)
        self._score_dispatch = redis.register_script(APPLY_SCORE_DISPATCH)
        self._fail = redis.register_script(APPLY_FAILURE)
        self._finalize = redis.register_script(FINALIZE)
        self._set_add = redis.register_script(SET_ADD)
        self._set_remove = redis.register_script(SET_REMOVE)
        self.dsc = RedisDscBoards(redis, ttl_ms=self.result_ttl_ms)  # batch DSC's boards

    async def _run(self, script: Any, keys: list[Any], args: list[Any]) -> Any:
        if self.pipeline is None:
            return await script(keys=keys, args=args)
        return await self.pipeline.run(script, keys, args)

    async def new_epoch(self) -> int:
        return int(await self.r.incr("oq:epoch"))

    async def create(self, q: str, epoch: int, config: QuestionConfig, partition: int) -> bool:
        """The question and its entry in the partition's active set, sent together (one round
        trip when auto-pipelined); a question found final already leaves the set again."""
        args = [epoch, json.dumps(config.to_dict(), sort_keys=True), partition, config.n_max]
        active = [f"oq:active:{partition}"]
        code, _ = await asyncio.gather(
            self._run(self._create, [_h(q)], args), self._run(self._set_add, active, [q])
        )
        if int(code) == 2:  # a duplicate submission of a finished question
            await self._run(self._set_remove, active, [q])
        return int(code) == 1

    async def claim(self, q: str, epoch: int, *, forget_inflight: bool = False) -> Outcome:
        """Own ``q`` at ``epoch``. A newer epoch (or ``forget_inflight``, for the owner itself)
        sets the dispatched count back to what finished: work in flight is considered gone."""
        return Outcome(await self._run(self._claim, [_h(q)], [epoch, int(forget_inflight)]))

    async def dispatch(self, q: str, epoch: int, k: int, n_max: int) -> Applied:
        code = int(await self._run(self._dispatch, [_h(q)], [epoch, k, n_max]))
        return Applied(Outcome.APPLIED, code) if code >= 0 else Applied(Outcome(code))

    async def apply_score(self, q: str, epoch: int, write: ScoreWrite) -> Applied:
        """The score, and if it was applied and ``write.dispatch_k > 0``, the reservation of
        that many samples within ``write.n_max``, as one atomic script (one round trip)."""
        ob = write.observation
        score, tokens = repr(float(ob.score)), int(ob.tokens)
        args = [epoch, ob.sample_id, score, tokens, _observation_json(ob), write.sample_epoch]
        if write.dispatch_k <= 0:
            return Applied(Outcome(await self._run(self._score, list(_keys(q)), args)))
        more = [write.dispatch_k, write.n_max]
        res = await self._run(self._score_dispatch, list(_keys(q)), [*args, *more])
        if isinstance(res, list):
            return Applied(Outcome(int(res[0])), _first(int(res[1])))
        return Applied(Outcome(int(res)))

    async def apply_failure(
        self, q: str, epoch: int, sample_id: str, *, sample_epoch: int = 0
    ) -> Outcome:
        h, applied, _, _ = _keys(q)
        args = [epoch, sample_id, int(sample_epoch)]
        return Outcome(await self._run(self._fail, [h, applied], args))

    async def finalize(
        self, q: str, epoch: int, status: str, result: dict[str, Any], partition: int
    ) -> Outcome:
        args = [epoch, status, json.dumps(result, sort_keys=True), self.result_ttl_ms]
        code = int(await self._run(self._finalize, list(_keys(q)), args))
        if code != Outcome.FENCED:  # final (or gone): no longer active
            await self._run(self._set_remove, [f"oq:active:{partition}"], [q])
        return Outcome.DUPLICATE if code == 0 else Outcome(code)

    async def active(self, partition: int) -> list[str]:
        """The partition's active questions; ids found final or gone (a crash between
        ``FINALIZE`` and the set's update, an expired question) are dropped from the set."""
        key = f"oq:active:{partition}"
        ids = sorted(await self.r.smembers(key))
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for q in ids:
                p.hget(_h(q), "status")
            statuses = await p.execute()
        gone = [q for q, st in zip(ids, statuses, strict=True) if st != "active"]
        if gone:
            await self.r.srem(key, *gone)
        return [q for q, st in zip(ids, statuses, strict=True) if st == "active"]

    async def batch_spent(self, batch_id: str) -> int:
        return int(await self.r.get(_batch_key(batch_id)) or 0)

    async def batch_charge(self, batch_id: str, tokens: int) -> int:
        """INCRBY on ``ob:{<batch id>}:spent`` (a key of its own slot), which expires with the
        results (``result_ttl_seconds`` after the last charge)."""
        key = _batch_key(batch_id)
        async with self.r.pipeline(transaction=True) as p:
            p.incrby(key, int(tokens))
            if self.result_ttl_ms > 0:
                p.pexpire(key, self.result_ttl_ms)
            spent, *_ = await p.execute()
        return int(spent)

    async def get(self, q: str) -> StoredQuestion | None:
        h, _, obs, _ = _keys(q)
        async with self.r.pipeline(transaction=True) as p:
            p.hgetall(h)
            p.lrange(obs, 0, -1)
            raw, obs_raw = await p.execute()
        if not raw:
            return None
        return StoredQuestion(
            question_id=q,
            status=raw["status"],
            epoch=int(raw["epoch"]),
            partition=int(raw["partition"]),
            config=QuestionConfig.from_dict(json.loads(raw["config"])),
            n_dispatched=int(raw["n_dispatched"]),
            n_failed=int(raw["n_failed"]),
            n_scored=int(raw["n_scored"]),
            next_index=int(raw["next_index"]),
            tokens=int(raw["tokens"]),
            observations=tuple(_observation(x) for x in obs_raw),
            result=json.loads(raw["result"]) if raw.get("result") else None,
        )
