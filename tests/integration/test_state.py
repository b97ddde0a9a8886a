"""The Redis state transitions on a real redis-server: idempotent by sample id, fenced by
epoch, capped at N_max, finalized once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from services.common.infra import Proc
from services.controller.state import FENCED, RedisStateStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(redis_server: Proc) -> AsyncIterator[RedisStateStore]:
    r = aioredis.from_url(f"redis://127.0.0.1:{redis_server.port}/1", decode_responses=True)
    await r.flushdb()
    yield RedisStateStore(r)
    await r.aclose()


def _obs(i: int, score: float) -> dict[str, object]:
    return {"id": f"q/{i}", "answer": "1", "score": score, "tokens": 10}


async def test_scores_apply_once_and_never_beyond_n_max(store: RedisStateStore) -> None:
    assert await store.create("q", 1, {"n_max": 3}, 0)
    assert not await store.create("q", 1, {"n_max": 3}, 0)  # second create: no-op
    assert await store.dispatch("q", 1, 3, 3) == 0
    assert await store.dispatch("q", 1, 1, 3) < 0  # would exceed N_max
    for i, s in enumerate((0.5, 0.9, 0.7)):
        assert await store.apply_score("q", 1, f"q/{i}", s, 10, _obs(i, s)) == 1
    assert await store.apply_score("q", 1, "q/1", 0.9, 10, _obs(1, 0.9)) == 0  # duplicate
    # a straggler from before a failover, next to its replacement: recorded, not counted
    assert await store.apply_score("q", 1, "q/7", 0.99, 10, _obs(7, 0.99)) == 2
    sq = await store.get("q")
    assert sq is not None
    assert (sq.n_scored, sq.tokens, sq.best_id) == (3, 30, "q/1")
    assert sq.s1 == pytest.approx(2.1) and sq.s2 == pytest.approx(0.25 + 0.81 + 0.49)
    assert [o["id"] for o in sq.observations] == ["q/0", "q/1", "q/2"]
    assert await store.r.llen("oq:{q}:late") == 1


async def test_stale_epoch_is_fenced_and_finalize_happens_once(store: RedisStateStore) -> None:
    await store.create("f", 1, {"n_max": 8}, 2)
    assert await store.dispatch("f", 1, 4, 8) == 0
    assert await store.claim("f", 5) == 1  # new owner: in-flight samples of epoch 1 are gone
    sq = await store.get("f")
    assert sq is not None and sq.n_dispatched == 0 and sq.epoch == 5
    assert await store.apply_score("f", 1, "f/0", 0.5, 1, _obs(0, 0.5)) == FENCED
    assert await store.dispatch("f", 1, 1, 8) == FENCED
    assert await store.claim("f", 3) == FENCED
    assert await store.dispatch("f", 5, 2, 8) == 4  # indices continue: no id is reused
    assert await store.apply_score("f", 5, "f/4", 0.5, 1, _obs(4, 0.5)) == 1
    assert await store.active(2) == ["f"]
    assert await store.finalize("f", 5, "done", {"answer": "1"}, 2) == 1
    assert await store.finalize("f", 5, "done", {"answer": "2"}, 2) == 0
    sq = await store.get("f")
    assert sq is not None and sq.status == "done" and sq.result == {"answer": "1"}
    assert await store.active(2) == []
    assert await store.apply_score("f", 5, "f/5", 0.9, 1, _obs(5, 0.9)) == 2  # late


async def test_a_score_and_the_dispatch_it_leads_to_are_one_write(store: RedisStateStore) -> None:
    await store.create("d", 1, {"n_max": 4}, 0)
    assert await store.dispatch("d", 1, 2, 4) == 0
    # applied, and two more reserved (live: 2 dispatched; after: 4)
    assert await store.apply_score_and_dispatch("d", 1, "d/0", 0.5, 3, _obs(0, 0.5), 2, 4) == (
        1,
        2,
    )
    sq = await store.get("d")
    assert sq is not None and (sq.n_scored, sq.n_dispatched, sq.next_index) == (1, 4, 4)
    # a duplicate reserves nothing
    assert await store.apply_score_and_dispatch("d", 1, "d/0", 0.5, 3, _obs(0, 0.5), 1, 4) == (
        0,
        -5,
    )
    # applied, but one more would exceed N_max: nothing reserved
    assert await store.apply_score_and_dispatch("d", 1, "d/1", 0.6, 3, _obs(1, 0.6), 1, 4) == (
        1,
        -4,
    )
    # a stale owner changes nothing
    assert await store.apply_score_and_dispatch("d", 0, "d/2", 0.6, 3, _obs(2, 0.6), 1, 4) == (
        FENCED,
        -5,
    )
    sq = await store.get("d")
    assert sq is not None and (sq.n_scored, sq.n_dispatched, sq.next_index) == (2, 4, 4)
