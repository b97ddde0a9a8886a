"""A batch token budget in the controller: questions submitted with the same batch id share
it; once their scored samples' tokens reach it, every question of the batch stops at once
with stop_reason "budget", answering with what it has (on the in-memory and Redis stores)."""

from __future__ import annotations

from typing import Any

import pytest

from optscale.config import QuestionConfig
from optscale.errors import InvalidArgumentError
from optscale.v1 import controller_pb2, events_pb2
from services.controller.questions import config_from_submitted
from tests.services.controller import harness
from tests.services.controller.harness import results, scored, settle, submitted


def _in_batch(q: str, budget: int, batch: str = "b1") -> events_pb2.QuestionEvent:
    ev = submitted(q, n_max=8, policy="sc", seed=1)
    ev.submitted.batch.batch_id, ev.submitted.batch.token_budget = batch, budget
    return ev


async def test_the_batch_stops_when_its_budget_is_spent(store: Any) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    for q in ("a", "b"):
        await w.handle(_in_batch(q, budget=100), 0)
    await w.handle(_in_batch("c", budget=100, batch="other"), 0)
    await settle()
    assert sum(r.k for r, _ in gen.requests) == 24  # sc: all 8 each, in flight
    await w.handle(scored("a", 0, 0.9, answer="3", tokens=40), 0)
    await w.handle(scored("b", 0, 0.8, answer="5", tokens=40), 0)
    await w.handle(scored("c", 0, 0.8, answer="5", tokens=90), 0)  # another batch's budget
    assert results(pub) == [] and await store.batch_spent("b1") == 80
    await w.handle(scored("a", 1, 0.7, answer="4", tokens=30), 0)  # 110 >= 100: b1 is spent
    (ra,) = results(pub)
    assert (ra.question_id, ra.stop_reason, ra.samples_used) == ("a", "budget", 2)
    assert ra.status == events_pb2.RESULT_STATUS_DONE and ra.answer in ("3", "4")
    await w.handle(scored("b", 1, 0.6, answer="5", tokens=10), 0)  # b stops on its next event
    rb = results(pub)[-1]
    assert (rb.question_id, rb.stop_reason, rb.answer) == ("b", "budget", "5")
    assert "c" in w.owned and len(results(pub)) == 2  # the other batch carries on
    await settle()
    assert gen.open == 1  # a and b cancelled their streams; c keeps its one stream of 8


async def test_a_question_of_a_spent_batch_answers_failed_without_sampling(store: Any) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    await store.batch_charge("b2", 500)
    await w.handle(_in_batch("z", budget=500, batch="b2"), 0)
    await settle()
    (r,) = results(pub)
    assert (r.status, r.stop_reason) == (events_pb2.RESULT_STATUS_FAILED, "budget")
    assert gen.requests == []


def test_the_budget_travels_from_submit_and_bad_budgets_are_clear_errors() -> None:
    cfg = config_from_submitted(_in_batch("q", budget=1000).submitted)
    assert (cfg.batch_id, cfg.batch_budget) == ("b1", 1000)
    back = QuestionConfig.from_dict(cfg.to_dict())
    assert back == cfg
    with pytest.raises(InvalidArgumentError) as err:
        config_from_submitted(_in_batch("q", budget=0).submitted)
    assert err.value.field == "batch_budget"
    with pytest.raises(InvalidArgumentError) as err:
        config_from_submitted(_in_batch("q", budget=10, batch="a/b").submitted)
    assert err.value.field == "batch_id"
    req = controller_pb2.SubmitRequest()
    req.batch.batch_id, req.batch.token_budget = "b", 5
    assert req.HasField("batch")


def test_optscale_submit_sends_the_budget() -> None:
    import argparse

    from optscale.commands import submit
    from optscale.types import Question

    ap = argparse.ArgumentParser()
    submit.add_arguments(ap)
    args = ap.parse_args(["q.jsonl", "--budget", "5000", "--batch-id", "run-7", "--wave", "8"])
    (ev,) = submit.build_events(args, [Question("t1", "2+2?", "4")])
    b = ev.submitted.batch
    assert (b.batch_id, b.token_budget, b.wave) == ("run-7", 5000, 8)
    args = ap.parse_args(["q.jsonl", "--budget", "5000"])
    with pytest.raises(InvalidArgumentError):  # no batch id
        submit.build_events(args, [Question("t1", "2+2?", "4")])
