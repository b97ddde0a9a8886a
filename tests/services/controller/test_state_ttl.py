"""Redis state-store hygiene (real redis-server): a finalized question's keys expire after the
configured TTL (late writes keep it), nothing expires without one, an expired id can be
submitted again, and the partition's active set repairs itself after a crash between a
script and the set's update."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from optscale.config import QuestionConfig
from optscale.errors import InvalidArgumentError
from optscale.policies import Observation
from optscale.ports import Outcome, ScoreWrite
from services.common.infra import Proc
from services.controller.state import RedisStateStore

pytestmark = pytest.mark.integration
DAY = 86400.0


def _cfg() -> QuestionConfig:
    return QuestionConfig(text="1 + 1?", n_max=4)


def _keys(q: str) -> list[str]:
    return [f"oq:{{{q}}}:{k}" for k in ("h", "applied", "obs", "late")]


@pytest.fixture
async def redis(redis_proc: Proc) -> AsyncIterator[Any]:
    from services.common.security import redis_client

    r = redis_client(f"redis://127.0.0.1:{redis_proc.port}/0")
    await r.flushdb()
    yield r
    await r.aclose()


async def _answered(store: RedisStateStore, q: str) -> None:
    assert await store.create(q, 1, _cfg(), 0)
    await store.dispatch(q, 1, 2, 4)
    await store.apply_score(q, 1, ScoreWrite(Observation(f"{q}/0", "2", 0.9, 5)))
    assert await store.finalize(q, 1, "done", {"answer": "2"}, 0) is Outcome.APPLIED


async def test_finalized_keys_get_the_ttl_and_late_writes_keep_it(redis: Any) -> None:
    store = RedisStateStore(redis, result_ttl_seconds=DAY)
    await _answered(store, "t")
    # late: a score and a failure of the question after it is final
    late = await store.apply_score("t", 1, ScoreWrite(Observation("t/1", "3", 0.2, 5)))
    assert late.outcome is Outcome.LATE
    assert await store.apply_failure("t", 1, "t/2") is Outcome.LATE
    for key in _keys("t"):
        ttl = await redis.pttl(key)
        assert 0 < ttl <= DAY * 1000, (key, ttl)


async def test_a_late_write_creating_a_key_after_finalize_expires_too(redis: Any) -> None:
    store = RedisStateStore(redis, result_ttl_seconds=DAY)
    assert await store.create("n", 1, _cfg(), 0)
    assert await store.finalize("n", 1, "cancelled", {}, 0) is Outcome.APPLIED
    assert await redis.exists(_keys("n")[3]) == 0  # nothing late yet
    late = await store.apply_score("n", 1, ScoreWrite(Observation("n/0", "3", 0.2, 5)))
    assert late.outcome is Outcome.LATE
    for key in (_keys("n")[3], _keys("n")[1]):
        assert 0 < await redis.pttl(key) <= DAY * 1000, key


async def test_no_ttl_when_switched_off_or_while_active(redis: Any) -> None:
    store = RedisStateStore(redis, result_ttl_seconds=0)
    await _answered(store, "k")
    assert [await redis.pttl(k) for k in _keys("k")[:3]] == [-1, -1, -1]
    ttl_store = RedisStateStore(redis, result_ttl_seconds=DAY)
    assert await ttl_store.create("a", 1, _cfg(), 0)
    assert await redis.pttl(_keys("a")[0]) == -1  # an active question never expires


async def _until(what: str, cond: Callable[[], Awaitable[bool]], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not await cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_an_expired_question_is_gone_and_its_id_can_be_used_again(redis: Any) -> None:
    store = RedisStateStore(redis, result_ttl_seconds=0.2)
    await _answered(store, "e")

    async def expired() -> bool:
        return int(await redis.exists(*_keys("e"))) == 0

    await _until("the question's keys to expire", expired)
    assert await store.get("e") is None
    assert await store.create("e", 2, _cfg(), 0)  # a new question under the old id
    sq = await store.get("e")
    assert sq is not None and sq.status == "active" and sq.n_scored == 0


async def test_the_active_set_repairs_itself(redis: Any) -> None:
    store = RedisStateStore(redis)
    assert await store.create("c", 1, _cfg(), 3)
    await redis.srem("oq:active:3", "c")  # a crash between CREATE and the set's update...
    assert not await store.create("c", 1, _cfg(), 3)  # ...and the redelivered Submitted
    assert await store.active(3) == ["c"]
    assert await store.finalize("c", 1, "done", {}, 3) is Outcome.APPLIED
    await redis.sadd("oq:active:3", "c", "never-created")  # a crash before the removal
    assert await store.active(3) == []
    assert await redis.smembers("oq:active:3") == set()
    assert not await store.create("c", 1, _cfg(), 3)  # final: not active again
    assert await store.active(3) == []


def test_a_negative_ttl_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="result_ttl_seconds"):
        RedisStateStore(object(), result_ttl_seconds=-1)


def test_the_controller_reads_the_ttl_from_its_environment() -> None:
    from services.common.config import from_env
    from services.controller.config import ControllerConfig

    env = {"OPTSCALE_CONTROLLER_RESULT_TTL_SECONDS": "3600"}
    assert from_env(ControllerConfig, "controller", env).result_ttl_seconds == 3600.0
    assert from_env(ControllerConfig, "controller", {}).result_ttl_seconds == 7 * DAY
