"""Auto-pipelined Lua transitions on a real redis-server: concurrent calls share round trips,
each caller gets its own result or error, and scripts lost in a Redis restart are reloaded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from optscale.config import QuestionConfig
from optscale.policies import Observation
from optscale.ports import Applied, Outcome, ScoreWrite
from services.common.infra import Proc, start_redis
from services.common.security import redis_client
from services.controller.state import RedisStateStore

pytestmark = pytest.mark.integration


def _obs(q: str, i: int) -> Observation:
    return Observation(f"{q}/{i}", "1", 0.5, 1)


_CFG = QuestionConfig(text="q?", n_max=4)


async def test_concurrent_transitions_share_round_trips(redis_server: Proc) -> None:
    r = redis_client(f"redis://127.0.0.1:{redis_server.port}/3")
    await r.flushdb()
    store = RedisStateStore(r)
    assert store.pipeline is not None
    try:
        qs = [f"p{i}" for i in range(40)]
        assert all(await asyncio.gather(*(store.create(q, 1, _CFG, 0) for q in qs)))
        reserved = await asyncio.gather(*(store.dispatch(q, 1, 4, 4) for q in qs))
        assert reserved == [Applied(Outcome.APPLIED, 0)] * 40
        # each caller gets its own answer: applied, then duplicate, then fenced
        codes = await asyncio.gather(
            *(store.apply_score(q, 1, ScoreWrite(_obs(q, 0))) for q in qs),
            store.apply_score("p0", 1, ScoreWrite(_obs("p0", 0))),
            store.apply_score("p1", 0, ScoreWrite(_obs("p1", 1))),
        )
        want = [Outcome.APPLIED] * 40 + [Outcome.DUPLICATE, Outcome.FENCED]
        assert [c.outcome for c in codes] == want
        assert store.pipeline.round_trips < store.pipeline.calls / 5
        sq = await store.get("p5")
        assert sq is not None and sq.n_scored == 1
        # an error reaches only its caller: a key of the wrong type makes that script fail
        await r.set("oq:{bad}:h", "not a hash")
        ok, bad = await asyncio.gather(
            store.apply_score("p2", 1, ScoreWrite(_obs("p2", 1))),
            store.dispatch("bad", 1, 1, 4),
            return_exceptions=True,
        )
        assert ok == Applied(Outcome.APPLIED) and isinstance(bad, Exception)
    finally:
        await r.aclose()


async def test_scripts_are_reloaded_after_a_redis_restart(tmp_path: Path) -> None:
    redis = start_redis(data_dir=tmp_path / "r", extra=["--appendfsync", "always"])
    r = redis_client(f"redis://127.0.0.1:{redis.port}/0")
    store = RedisStateStore(r)
    try:
        assert await store.create("s", 1, _CFG, 0)
        redis.proc.kill()
        redis.proc.wait()
        redis = start_redis(redis.port, data_dir=tmp_path / "r", extra=["--appendfsync", "always"])
        for _ in range(50):  # the pool's old connections fail first; then it reconnects
            try:
                first = await store.dispatch("s", 1, 2, 4)
                break
            except Exception:
                await asyncio.sleep(0.1)
        # the state survived (AOF) and the script was loaded again
        assert first == Applied(Outcome.APPLIED, 0)
        assert await store.apply_score("s", 1, ScoreWrite(_obs("s", 0))) == Applied(Outcome.APPLIED)
    finally:
        await r.aclose()
        redis.stop()
