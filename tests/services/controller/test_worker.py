"""The controller's logic on its state-store seam, run once on the in-memory store and once on
the Redis/Lua store (real redis-server): dispatch and stop, ownership and epoch fencing, a
revoke while a batch waits on the store, duplicate and stale events, cancel, and the predictor
asked for an optscalet prior."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from optscale.loop import sample_seed
from optscale.ports import Prior
from optscale.stats import GaussianPrior
from optscale.v1 import events_pb2
from tests.services.controller import harness
from tests.services.controller.harness import failed, results, scored, settle, submitted


async def test_a_question_is_dispatched_scored_and_answered(store: Any) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("a", n_max=6, seed=3, s_min=0.5), 0)
    await settle()
    ((req, epoch),) = gen.requests
    assert (req.first_index, req.k, epoch) == (0, 2, w.epoch)  # initial batch ceil(6/3)
    assert req.params.seed == sample_seed(3, "a", 0)
    await w.handle(scored("a", 0, 0.9, answer="7"), 0)
    await w.handle(scored("a", 1, 0.95, answer="8"), 0)
    (r,) = results(pub)
    assert (r.status, r.chosen_sample_id, r.answer) == (events_pb2.RESULT_STATUS_DONE, "a/1", "8")
    assert (r.samples_used, r.completion_tokens, r.stop_reason) == (2, 20, "bound")
    sq = await store.get("a")
    assert sq is not None and sq.status == "done" and sq.result["chosenSampleId"] == "a/1"
    assert "a" not in w.owned and await store.active(0) == []
    await settle()
    assert gen.open == 0  # the leases are closed


async def test_duplicates_and_scores_after_the_end_change_nothing(store: Any) -> None:
    w, _, pub = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("d", n_max=3, policy="bon"), 0)
    for i in (0, 0, 1, 1, 2):
        await w.handle(scored("d", i, 0.5 + i / 10), 0)
    assert w.stats["duplicates"] == 2 and len(results(pub)) == 1
    await w.handle(scored("d", 2, 0.9), 0)  # after the end: a duplicate id
    await w.handle(scored("d", 5, 0.9), 0)  # after the end: late
    assert len(results(pub)) == 1 and results(pub)[0].samples_used == 3
    sq = await store.get("d")
    assert sq is not None and sq.n_scored == 3


async def test_a_failed_sample_is_replaced_under_a_new_index(store: Any) -> None:
    w, gen, _ = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("f", n_max=2, policy="bon"), 0)
    await w.handle(failed("f", 1), 0)
    await settle()
    assert [(r.first_index, r.k) for r, _ in gen.requests] == [(0, 2), (2, 1)]
    assert w.owned["f"].loop.state.n_failed == 1


async def test_a_new_owner_fences_the_old_one(store: Any) -> None:
    a, gen_a, pub_a = harness.worker(store)
    b, gen_b, pub_b = harness.worker(store)
    await a.assign({0})
    await a.handle(submitted("x", n_max=4, policy="bon"), 0)
    await a.handle(scored("x", 0, 0.5), 0)
    await b.assign({0})  # a rebalance moved partition 0 to b before a noticed
    assert b.epoch > a.epoch and "x" in b.owned
    await settle()
    assert [(r.first_index, r.k) for r, _ in gen_b.requests] == [(4, 3)]  # no id reused
    await a.handle(scored("x", 1, 0.6), 0)  # a's write is refused: it lets go
    assert "x" not in a.owned and a.stats["fenced"] == 1
    await settle()
    assert gen_a.open == 0
    for i in (4, 5, 6):
        await b.handle(scored("x", i, 0.7), 0)
    assert not results(pub_a) and len(results(pub_b)) == 1
    assert results(pub_b)[0].samples_used == 4


async def test_samples_of_the_old_owner_are_ignored_after_a_takeover(store: Any) -> None:
    a, _, _ = harness.worker(store)
    b, gen_b, pub_b = harness.worker(store)
    await a.assign({0})
    await a.handle(submitted("s", n_max=3, policy="bon"), 0)
    old = a.epoch
    await b.assign({0})
    await b.handle(scored("s", 0, 0.9, epoch=old), 0)  # a sample b's claim forgot
    await b.handle(failed("s", 1, epoch=old), 0)
    assert b.stats["stale"] == 2
    assert b.owned["s"].loop.state.n_scored == 0 and b.owned["s"].loop.state.n_failed == 0
    await settle()
    ((req, epoch),) = gen_b.requests
    for i in range(req.first_index, req.first_index + req.k):
        await b.handle(scored("s", i, 0.5, epoch=epoch), 0)
    (r,) = results(pub_b)
    assert r.samples_used == 3 and r.chosen_sample_id != "s/0"


class _Gate:
    """Wraps a store: ``apply_score`` waits at the gate (a batch waiting on Redis)."""

    def __init__(self, store: Any) -> None:
        self.store, self.entered, self.release = store, asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def apply_score(self, *args: Any, **kw: Any) -> Any:
        self.entered.set()
        await self.release.wait()
        return await self.store.apply_score(*args, **kw)


async def test_a_revoke_during_a_store_write_does_not_take_the_question_back(store: Any) -> None:
    gate = _Gate(store)
    w, gen, pub = harness.worker(gate)
    await w.assign({0})
    await w.handle(submitted("r", n_max=4, policy="bon"), 0)
    handling = asyncio.create_task(w.handle(scored("r", 0, 0.5), 0))
    await gate.entered.wait()
    await w.revoke({0})
    gate.release.set()
    await handling
    await settle()
    assert "r" not in w.owned and w.partitions == set() and gen.open == 0
    assert not results(pub)


async def test_cancel_stops_with_a_cancelled_result(store: Any) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("c", n_max=4, policy="bon"), 0)
    ev = events_pb2.QuestionEvent(question_id="c", schema_version=1)
    ev.cancelled.reason = "by test"
    await w.handle(ev, 0)
    (r,) = results(pub)
    assert (r.status, r.stop_reason) == (events_pb2.RESULT_STATUS_CANCELLED, "by test")
    await settle()
    assert gen.open == 0


class _Predictor:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def predict(self, questions: Sequence[str]) -> list[Prior]:
        self.asked.extend(questions)
        return [Prior(0.8, 0.1, "test", tau_mu=0.3, tau_sigma=0.07) for _ in questions]


async def test_optscalet_without_a_prior_asks_the_predictor(store: Any) -> None:
    pred = _Predictor()
    w, gen, pub = harness.worker(store, predictor=pred)
    await w.assign({0})
    await w.handle(submitted("t", n_max=8, policy="optscalet"), 0)
    assert pred.asked == ["question t?"]
    sq = await store.get("t")
    # the predictor's measured widths travel with its prior (and through the store's JSON)
    assert sq is not None and sq.config.prior == GaussianPrior(0.8, 0.1, 0.3, 0.07)
    assert w.owned["t"].loop.policy.name == "optscalet"
    await settle()
    assert gen.requests and not results(pub)


async def test_optscalet_without_a_prior_or_predictor_is_rejected(store: Any) -> None:
    w, _gen, pub = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("t", n_max=8, policy="optscalet"), 0)
    (r,) = results(pub)
    assert r.status == events_pb2.RESULT_STATUS_FAILED and "prior" in r.stop_reason
    assert await store.get("t") is None and pub.on("optscale.dlq")


async def test_a_scored_event_of_an_older_verifier_with_the_whole_candidate_still_counts(
    store: Any,
) -> None:
    """Before payloads by reference a Scored event held the whole scored candidate (text
    included); such events, still on the topic during an upgrade, are applied the same way."""
    w, _, pub = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("o", n_max=2, policy="bon"), 0)
    for i, answer in enumerate(("5", "6")):
        ev = events_pb2.QuestionEvent(question_id="o", schema_version=1)
        c = ev.scored.scored.candidate
        c.question_id, c.sample_id, c.answer, c.text = "o", f"o/{i}", answer, "long trace"
        c.completion_tokens, c.epoch = 30, w.epoch
        ev.scored.scored.score = 0.4 + i / 10
        await w.handle(ev, 0)
    (r,) = results(pub)
    assert (r.chosen_sample_id, r.answer) == ("o/1", "6")
    assert (r.samples_used, r.completion_tokens) == (2, 60)
