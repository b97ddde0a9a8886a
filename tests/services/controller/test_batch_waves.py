"""A batch with a wave limit: at most ``wave`` of its samples in flight on a controller; a freed
slot goes to the waiting question whose policy prices one more sample highest (bayes: expected
gain in P(correct) per expected token) — the greedy allocator over the owned questions."""

from __future__ import annotations

import json
from typing import Any

from optscale.v1 import events_pb2
from tests.services.controller import harness
from tests.services.controller.harness import results, scored, settle, submitted

# price 0: every question always wants another sample; P(correct | s) rises steeply with s
OPTIONS = json.dumps({"price": 0.0, "p_correct": {"a": -8.0, "b": 12.0}})


def _in_batch(q: str, wave: int) -> events_pb2.QuestionEvent:
    ev = submitted(q, n_max=3, policy="bayes", seed=1, options=OPTIONS)
    b = ev.submitted.batch
    b.batch_id, b.token_budget, b.wave = "w", 10_000, wave
    return ev


def _asked(gen: Any) -> list[str]:
    return [req.question_id for req, _ in gen.requests]


async def test_slots_go_to_the_question_that_gains_most_per_token(store: Any) -> None:
    w, gen, _ = harness.worker(store)
    await w.assign({0})
    for q in ("a", "b", "c"):
        await w.handle(_in_batch(q, wave=2), 0)
    await settle()
    assert _asked(gen) == ["a", "b"]  # two slots; c waits (nothing scored: first come)
    await w.handle(scored("a", 0, 0.97, answer="1", tokens=100), 0)  # a: little left to gain
    await settle()
    assert _asked(gen)[2:] == ["c"]  # c, never sampled (priority inf), takes a's slot
    await w.handle(scored("b", 0, 0.45, answer="2", tokens=100), 0)  # b: much to gain
    await settle()
    assert _asked(gen)[3:] == ["b"]  # b (low score, high gain) before a (high score)
    await w.handle(scored("c", 0, 0.9, answer="3", tokens=100), 0)
    await settle()
    assert _asked(gen)[4:] == ["c"]  # c (0.9) still gains more than a (0.97)
    assert all(req.k == 1 for req, _ in gen.requests) and w.waves.waiting["w"].keys() == {"a"}


async def test_a_finished_question_frees_its_slot(store: Any) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    for q in ("a", "b"):
        await w.handle(_in_batch(q, wave=1), 0)
    await settle()
    assert _asked(gen) == ["a"]
    await w.handle(events_pb2.QuestionEvent(question_id="a", cancelled={}), 0)
    await settle()
    assert [r.question_id for r in results(pub)] == ["a"] and _asked(gen) == ["a", "b"]


def test_a_wave_needs_a_budget() -> None:
    import pytest

    from optscale.errors import InvalidArgumentError
    from services.controller.questions import config_from_submitted

    ev = _in_batch("q", wave=2)
    assert config_from_submitted(ev.submitted).batch_wave == 2
    ev.submitted.batch.token_budget = 0
    with pytest.raises(InvalidArgumentError):
        config_from_submitted(ev.submitted)
