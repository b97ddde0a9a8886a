"""Prefix pruning in the controller (issue 18.4, services path): a question submitted with
``prune_z`` sends the rule and its reference — the finished, not pruned, samples' score stats
at dispatch time — with every Generate request; a pruned sample's Scored event (its prefix
score, no answer) enters the loop as scored but not the reference; a question without
``prune_z`` sends none; bad pruning options are refused (memory, Redis, cluster Redis)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from optscale.errors import InvalidArgumentError
from optscale.memory import InMemoryStateStore
from optscale.v1 import common_pb2, events_pb2
from services.controller.questions import SubmitDefaults, config_from_submitted
from tests.services.controller import harness
from tests.services.controller.harness import failed, results, scored, settle, submitted


def _pruned(q: str, index: int, prefix_score: float, tokens: int) -> events_pb2.QuestionEvent:
    """The verifier's Scored event of a sample the generator pruned."""
    ev = scored(q, index, prefix_score, answer="", tokens=tokens)
    ev.scored.finish_reason = common_pb2.FINISH_REASON_PRUNED
    return ev


async def test_each_dispatch_carries_the_finished_samples_reference(store: Any) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    opts = json.dumps({"prune_z": 1.5, "prune_min_steps": 2})
    await w.handle(submitted("p", n_max=4, policy="bon", seed=1, options=opts), 0)
    await w.handle(submitted("plain", n_max=4, policy="bon", seed=1), 0)
    await settle()
    first = {r.question_id: r for r, _ in gen.requests}
    assert first["plain"].pruning is None
    spec = first["p"].pruning
    assert spec is not None and (spec.rule.z, spec.rule.min_steps) == (1.5, 2)
    assert spec.finished.n == 0  # nothing finished yet: nothing can be pruned
    await w.handle(scored("p", 0, 0.8, tokens=30), 0)
    await w.handle(scored("p", 1, 0.82, tokens=30), 0)
    await w.handle(_pruned("p", 2, 0.1, tokens=12), 0)
    assert w.owned["p"].loop.state.n_scored == 3  # the pruned sample is scored...
    await w.handle(failed("p", 3), 0)  # ...and a failed one is replaced: a new dispatch
    await settle()
    (again,) = [r for r, _ in gen.requests if r.question_id == "p" and r.first_index == 4]
    assert again.pruning is not None
    ref = again.pruning.finished  # ...but the reference holds the finished samples only
    assert ref.n == 2 and ref.mean == pytest.approx(0.81) and ref.std == pytest.approx(0.01)
    await w.handle(scored("p", 4, 0.9, tokens=30), 0)
    (r,) = results(pub)
    assert r.samples_used == 4 and r.completion_tokens == 30 + 30 + 12 + 30
    assert r.chosen_sample_id == "p/4"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"prune_z": -1}, "prune_z"), ({"prune_z": 1, "prune_min_steps": 0}, "prune_min_steps")],
)
def test_bad_pruning_options_are_refused_naming_the_option(
    options: dict[str, Any], field: str
) -> None:
    ev = submitted("bad", n_max=4, policy="bon", options=json.dumps(options))
    with pytest.raises(InvalidArgumentError, match=field):
        config_from_submitted(ev.submitted, SubmitDefaults())


async def test_a_resumed_question_starts_from_its_loops_scores() -> None:
    """After a failover the new owner does not know which scores were pruned (the store does
    not record it): its reference is every score of the rebuilt loop, the pruned prefix's
    included (documented), until its next score."""
    store = InMemoryStateStore()
    w, _, _ = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("r", n_max=4, policy="bon", options='{"prune_z": 1}'), 0)
    await w.handle(scored("r", 0, 0.8), 0)
    await w.handle(scored("r", 1, 0.82), 0)
    await w.handle(_pruned("r", 2, 0.1, tokens=5), 0)
    w2, gen2, _ = harness.worker(store)
    await w2.assign({0})  # takes the partition over (a newer epoch): resumes "r"
    await w2.handle(failed("r", 3), 0)
    await settle()
    refs = [r.pruning.finished.n for r, _ in gen2.requests if r.pruning is not None]
    assert refs and set(refs) == {3}
