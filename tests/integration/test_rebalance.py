"""Commits refused by a rebalance, on the real broker: a consumer that fetched a batch and then
lost one of its partitions to a new group member gets ``IllegalStateError`` /
``CommitFailedError`` from ``commit``. That is not fatal: the batch is redelivered to the
partition's new owner, and a controller whose commit was refused mid-batch keeps running."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.scoring.confidence import Backend as Confidence
from services.common import kafka
from services.common.infra import Proc
from services.local import FAST_GROUP, LocalPipeline
from tests.services.kafka_standin import until

pytestmark = pytest.mark.integration


def _failed_commits() -> float:
    return REGISTRY.get_sample_value("optscale_kafka_commits_failed_total") or 0.0


async def _batch_over_both_partitions(cons: Any) -> dict[Any, list[Any]]:
    async with asyncio.timeout(30):
        while True:
            recs = await cons.getmany(timeout_ms=200)
            if len([tp for tp, msgs in recs.items() if msgs]) == 2:
                return dict(recs)


async def test_a_commit_after_losing_a_partition_is_refused_and_the_batch_redelivered(
    broker: Proc,
) -> None:
    boot = f"127.0.0.1:{broker.port}"
    await kafka.ensure_topics(boot, partitions=2, topics=("rb-direct",))
    p = await kafka.producer(boot)
    a = c = None
    try:
        for i in range(20):
            await p.send("rb-direct", b"m%d" % i, key=b"k%d" % i)
        await p.flush()
        a = await kafka.consumer(boot, "rb-direct", "rb-direct-group", **FAST_GROUP)
        recs = await _batch_over_both_partitions(a)
        c = await kafka.consumer(boot, "rb-direct", "rb-direct-group", **FAST_GROUP)
        redelivered: list[Any] = []

        async def poll_c() -> None:
            while True:
                for msgs in (await c.getmany(timeout_ms=200)).values():
                    redelivered.extend(msgs)

        poller = asyncio.create_task(poll_c())
        await until(lambda: c.assignment() and len(a.assignment()) == 1)
        with pytest.raises(Exception) as refused:  # what aiokafka raises here, unguarded
            await kafka.commit_batch(a, recs)
        assert type(refused.value).__name__ in ("IllegalStateError", "CommitFailedError")
        before = _failed_commits()
        assert await kafka.commit_or_redeliver(a, recs) is False  # guarded: not fatal
        assert _failed_commits() == before + 1
        (moved,) = c.assignment()
        await until(lambda: len(redelivered) >= len(recs[moved]))  # the new owner gets it all
        poller.cancel()
        assert [m.value for m in redelivered[: len(recs[moved])]] == [m.value for m in recs[moved]]
    finally:
        await kafka.stop_quietly(a, c, p)


async def test_a_controller_whose_commit_a_rebalance_refused_keeps_running(
    broker: Proc, redis_server: Proc
) -> None:
    async with LocalPipeline(
        f"127.0.0.1:{broker.port}",
        f"redis://127.0.0.1:{redis_server.port}/0",
        Sim(seed=3, token_delay=0.0002),
        Confidence(),
        partitions=2,
    ) as p:
        a = p.controllers[0]
        fetch = a.consumer.getmany
        moved = asyncio.Event()
        before = _failed_commits()

        async def fetch_then_rebalance(*args: Any, **kw: Any) -> Any:
            """A's first batch over both partitions is held until a second controller has
            joined and taken one of them: A then applies it and commits a partition it lost."""
            recs = await fetch(*args, **kw)
            if not moved.is_set() and len([tp for tp, m in recs.items() if m]) == 2:
                moved.set()
                b = await p.start_controller()
                await until(lambda: b.consumer.assignment() and len(a.consumer.assignment()) == 1)
            return recs

        a.consumer.getmany = fetch_then_rebalance
        ids = [f"rb-{i}" for i in range(40)]
        await p.submit(ids, "optscale0", 8, 0.9)
        results = await p.results(set(ids), "t-results-rb", wait_s=90)
        assert moved.is_set() and _failed_commits() > before  # the commit was refused...
        assert not a.task.done()  # ...and A's loop lives on
        outcome: dict[str, tuple[object, ...]] = {}
        for r in results:  # every question answered; any duplicate is the same result
            o = (r.answer, r.chosen_sample_id, r.samples_used, r.completion_tokens)
            assert outcome.setdefault(r.question_id, o) == o
        assert set(outcome) == set(ids)
