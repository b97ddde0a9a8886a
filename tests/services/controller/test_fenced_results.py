"""Only the current owner publishes a question's result, and every publication of it carries
the same bytes: the result is finalized in the store (fenced by the owner epoch) before it is
published, so a controller superseded while it finishes publishes nothing, and a result whose
publication was lost is republished from the store by whoever sees the question next."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from optscale.memory import RecordingPublisher
from optscale.v1 import events_pb2
from services.controller.results import result_payload
from tests.services.controller import harness
from tests.services.controller.harness import RESULTS, cancelled, results, scored, submitted


class _GatedFinalize:
    """Wraps a store: ``finalize`` waits at the gate (a finish waiting on Redis)."""

    def __init__(self, store: Any) -> None:
        self.store, self.entered, self.release = store, asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def finalize(self, *args: Any, **kw: Any) -> Any:
        self.entered.set()
        await self.release.wait()
        return await self.store.finalize(*args, **kw)


async def test_a_controller_superseded_while_it_finishes_publishes_nothing(store: Any) -> None:
    gate = _GatedFinalize(store)
    a, _, pub_a = harness.worker(gate)
    b, _, pub_b = harness.worker(store)
    await a.assign({0})
    await a.handle(submitted("x", n_max=2, policy="bon"), 0)
    await a.handle(scored("x", 0, 0.4, answer="4"), 0)
    finishing = asyncio.create_task(a.handle(scored("x", 1, 0.8, answer="8"), 0))
    await gate.entered.wait()  # a decided to stop on its last score and is finalizing
    await b.assign({0})  # meanwhile the partition moved: b takes x over and finishes it
    gate.release.set()
    await finishing
    assert not results(pub_a) and a.stats["fenced"] == 1  # a learnt it was fenced: silent
    (r,) = results(pub_b)
    assert (r.status, r.chosen_sample_id, r.samples_used) == (
        events_pb2.RESULT_STATUS_DONE,
        "x/1",
        2,
    )
    sq = await store.get("x")
    assert sq is not None and result_payload(sq.result) == pub_b.on(RESULTS)[0].value


async def test_a_superseded_controller_cancelling_publishes_nothing(store: Any) -> None:
    a, _, pub_a = harness.worker(store)
    b, _, pub_b = harness.worker(store)
    await a.assign({0})
    await a.handle(submitted("c", n_max=4, policy="bon"), 0)
    await b.assign({0})  # b owns c now; a has not noticed
    await a.handle(cancelled("c"), 0)  # a's stale copy of c stops...
    assert not results(pub_a) and "c" not in a.owned  # ...without a result of its own
    for i in range(4, 8):  # b's samples (a's were written off by b's claim)
        await b.handle(scored("c", i, 0.5), 0)
    (r,) = results(pub_b)
    assert r.status == events_pb2.RESULT_STATUS_DONE and r.samples_used == 4


class _ResultsLost(RecordingPublisher):
    """A publisher whose first result never reaches the broker (the controller dies, or
    Kafka is down, between finalizing and publishing)."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: list[bytes] = []

    async def __call__(self, topic: str, key: str, value: bytes, *args: Any, **kw: Any) -> None:
        if topic == RESULTS and not self.lost:
            self.lost.append(value)
            raise ConnectionError("broker unreachable")
        await super().__call__(topic, key, value, *args, **kw)


async def test_a_result_lost_after_finalizing_is_republished_byte_for_byte(store: Any) -> None:
    a, gen_a, _ = harness.worker(store)
    a.publish = a.leaser.publish = lost = _ResultsLost()
    await a.assign({0})
    await a.handle(submitted("l", n_max=2, policy="bon"), 0)
    await a.handle(scored("l", 0, 0.4), 0)
    last = scored("l", 1, 0.7)
    with pytest.raises(ConnectionError):
        await a.handle(last, 0)
    sq = await store.get("l")
    assert sq is not None and sq.status == "done" and not results(lost)
    # the batch was not committed: it is redelivered to the partition's next owner
    b, _, pub_b = harness.worker(store)
    await b.assign({0})
    await b.handle(scored("l", 0, 0.4), 0)
    await b.handle(last, 0)
    assert [m.value for m in pub_b.on(RESULTS)] == lost.lost  # the very bytes a had made
    assert b.stats["republished"] == 1
    (r,) = results(pub_b)
    assert r.samples_used == 2 and r.chosen_sample_id == "l/1"
    # and to a itself, after its reset (Kafka back): the same bytes once more, then no more
    await a.reset()
    await a.handle(last, 0)
    await a.handle(last, 0)
    assert [m.value for m in lost.on(RESULTS)] == lost.lost
    await a.close()
    assert gen_a.open == 0
