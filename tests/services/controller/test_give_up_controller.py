"""Give-up in the controller (optscale.give_up, the replay allocator's rule): a question of a
budgeted batch whose posterior says no sample is likely right stops with ``give_up`` and its
samples in flight are cut; a promising one carries on; without a budget nothing gives up (on
the in-memory, Redis and cluster-mode Redis stores)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from optscale.errors import InvalidArgumentError
from optscale.v1 import events_pb2
from services.controller.questions import config_from_submitted
from tests.services.controller import harness
from tests.services.controller.harness import results, scored, settle, submitted

# P(correct | s) = logistic(-8 + 12 s): ~0.001 at s = 0.1, ~0.97 at s = 0.95
OPTIONS = json.dumps({"give_up": 0.5, "p_correct": {"a": -8.0, "b": 12.0}})


def _question(q: str, *, budget: int | None = 100_000) -> events_pb2.QuestionEvent:
    ev = submitted(q, n_max=8, policy="sc", seed=1, options=OPTIONS)
    if budget is not None:
        ev.submitted.batch.batch_id, ev.submitted.batch.token_budget = "g1", budget
    return ev


async def test_a_hopeless_question_gives_up_and_a_promising_one_goes_on(store: Any) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    for q in ("hopeless", "promising", "unbudgeted"):
        await w.handle(_question(q, budget=None if q == "unbudgeted" else 100_000), 0)
    await settle()
    assert gen.open == 3  # sc: 8 samples each, in flight
    await w.handle(scored("hopeless", 0, 0.1, answer="7"), 0)
    await w.handle(scored("promising", 0, 0.95, answer="4"), 0)
    await w.handle(scored("unbudgeted", 0, 0.1, answer="7"), 0)
    (r,) = results(pub)
    assert (r.question_id, r.stop_reason, r.answer, r.samples_used) == (
        "hopeless",
        "give_up",
        "7",
        1,
    )
    assert r.status == events_pb2.RESULT_STATUS_DONE
    assert {"promising", "unbudgeted"} <= set(w.owned)
    await settle()
    assert gen.open == 2  # the hopeless question's stream was cancelled


def test_a_bad_give_up_level_is_a_clear_error() -> None:
    ev = _question("q")
    ev.submitted.policy.options_json = json.dumps({"give_up": 1.5})
    with pytest.raises(InvalidArgumentError) as err:
        config_from_submitted(ev.submitted)
    assert err.value.field == "give_up"
