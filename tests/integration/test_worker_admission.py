"""Taking up a new question on a real redis-server: a question the worker has just created is
owned at once (create + dispatch, two round trips, no claim or read-back), with the same state
and config a new owner would rebuild from Redis; a repeated submit changes nothing; over
``max_active`` it waits."""

from __future__ import annotations

import pytest

from services.common.infra import Proc
from services.common.security import redis_client
from tests.integration.test_worker_recovery import _submitted, _worker

pytestmark = pytest.mark.integration


async def test_a_new_question_is_owned_with_two_redis_round_trips(redis_server: Proc) -> None:
    r = redis_client(f"redis://127.0.0.1:{redis_server.port}/5")
    await r.flushdb()
    w, other = _worker(r, max_active=2), _worker(r)
    try:
        await w.assign({0})
        pipe = w.store.pipeline
        assert pipe is not None
        before = pipe.round_trips
        await w.handle(_submitted("a", "question a", 8), 0)
        # CREATE with the partition's active-set entry, then DISPATCH of the first samples
        assert pipe.round_trips - before == 2
        o = w.owned["a"]
        k = o.loop.state.n_dispatched  # the policy's initial batch, one Generate lease
        assert k >= 1 and list(o.leases.values()) == [k]

        # what a new owner rebuilds from Redis is what the creator holds
        other.epoch = w.epoch
        other.partitions = {0}
        rebuilt = await other._resume("a", 0)
        assert rebuilt is not None
        assert rebuilt.config == o.config and rebuilt.loop.state.n_dispatched == k
        assert rebuilt.loop.policy == o.loop.policy
        await other.close()

        before = pipe.round_trips
        await w.handle(_submitted("a", "question a", 8), 0)  # a repeated submit: no-op
        assert pipe.round_trips - before == 1
        assert w.owned["a"] is o and list(o.leases.values()) == [k]

        await w.handle(_submitted("b", "question b", 8), 0)
        await w.handle(_submitted("c", "question c", 8), 0)  # over max_active: waits
        assert set(w.owned) == {"a", "b"} and set(w.waiting) == {"c"}
    finally:
        await w.close()
        await r.aclose()
