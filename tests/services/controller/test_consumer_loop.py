"""The controller's Kafka loop when a commit is refused: during a rebalance aiokafka raises
``CommitFailedError`` / ``IllegalStateError`` / ``RebalanceInProgressError`` from
``commit``. The loop logs it and goes on; the uncommitted batch is redelivered to the
partition's new owner, which applies it again without counting anything twice and republishes
the same result bytes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError

from optscale.v1 import events_pb2
from services.controller.consumer import Publisher, run_controller
from services.controller.worker import ControllerWorker
from tests.services.controller import harness
from tests.services.controller.harness import RESULTS, scored, submitted
from tests.services.kafka_standin import StandInConsumer, StandInProducer, until


def _batch(*events: events_pb2.QuestionEvent) -> list[tuple[bytes, bytes]]:
    return [(ev.question_id.encode(), ev.SerializeToString()) for ev in events]


async def _run(w: ControllerWorker, cons: StandInConsumer) -> tuple[asyncio.Task[None], Any]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_controller(w, cons, Publisher(StandInProducer()), stop=stop))
    return task, stop


async def _stop(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.mark.parametrize(
    "error",
    [
        CommitFailedError("the group rebalanced"),
        IllegalStateError("Partition TopicPartition(topic='events', partition=0) is not assigned"),
        RebalanceInProgressError(),
    ],
    ids=["CommitFailedError", "IllegalStateError", "RebalanceInProgressError"],
)
async def test_a_refused_commit_is_not_fatal_and_the_redelivered_batch_changes_nothing(
    store: Any, error: BaseException
) -> None:
    a, _, pub_a = harness.worker(store)
    await a.assign({0})
    cons_a = StandInConsumer()
    cons_a.commit_errors.append(error)
    task_a, stop_a = await _run(a, cons_a)
    batch = _batch(submitted("k", n_max=2, policy="bon"), scored("k", 0, 0.4), scored("k", 1, 0.9))
    cons_a.deliver(0, batch)
    await until(lambda: cons_a.commit_calls == 1)  # refused
    cons_a.deliver(0, _batch(submitted("k2", n_max=2, policy="bon")))
    await until(lambda: cons_a.committed)  # the loop lives on: the next batch is committed
    assert not task_a.done() and cons_a.committed == [{next(iter(cons_a.committed[0])): 4}]
    (first,) = pub_a.on(RESULTS)
    await _stop(task_a, stop_a)

    # the partition's new owner gets the uncommitted batch again
    b, _, pub_b = harness.worker(store)
    await b.assign({0})
    cons_b = StandInConsumer()
    task_b, stop_b = await _run(b, cons_b)
    cons_b.deliver(0, batch)
    await until(lambda: cons_b.committed)
    await _stop(task_b, stop_b)
    assert [m.value for m in pub_b.on(RESULTS)] == [first.value]  # the same bytes, once
    sq = await store.get("k")
    assert sq is not None and sq.n_scored == 2 and sq.status == "done"


async def test_a_bug_in_commit_still_ends_the_loop(store: Any) -> None:
    """Only Kafka's refusals are absorbed; anything else ends the loop, which the process
    supervises (health NOT_SERVING, exit 1)."""
    w, _, _ = harness.worker(store)
    await w.assign({0})
    cons = StandInConsumer()
    cons.commit_errors.append(TypeError("not a Kafka error"))
    task, _ = await _run(w, cons)
    cons.deliver(0, _batch(submitted("t", n_max=2, policy="bon")))
    with pytest.raises(TypeError):
        await asyncio.wait_for(task, 10)
