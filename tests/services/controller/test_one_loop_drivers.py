"""One loop, three drivers: the embedded solver, replay and the controller run the same
scripted question and make the same dispatches (indices, sample ids, seeds) and the same stop
decision, because all three drive :class:`optscale.loop.QuestionLoop`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from optscale.episode import run_episode
from optscale.loop import Dispatch, sample_seed
from optscale.memory import InMemoryStateStore
from optscale.params import make_policy_options
from optscale.policies import make_policy
from optscale.pools import PoolSample
from optscale.ports import GenerateRequest
from optscale.solve import solve_question
from optscale.types import GeneratedSample, Question, SamplingParams, ScoredSample
from tests.services.controller import harness

Q = "q7"
SEED = 11
# scores by sample index: low at first (the bound asks for more), then good ones
SCORES = [0.55, 0.62, 0.4, 0.58, 0.97, 0.6, 0.99, 0.5, 0.7, 0.8, 0.65, 0.9]
ANSWERS = ["3", "4", "3", "5", "4", "4", "3", "4", "3", "4", "5", "4"]
TOKENS = [100 + 7 * i for i in range(len(SCORES))]


# tuned options as a params file carries them (JSON form), travelling to the controller in
# the Submitted event's policy.options_json
TUNED: dict[str, dict[str, Any]] = {
    "optscale0+": {"initial": 3, "pace": 0.5},
    "bayes+": {"price": 2e-4, "p_correct": {"a": -2.0, "b": 4.0}, "wave": 2},
    "hybrid+": {"price": 1e-4, "p_correct": {"a": -1.0, "b": 3.0}, "threshold": 0.6},
}


def _policy(name: str) -> Any:
    base = name.rstrip("+")
    opts = make_policy_options(0.9, 0.9, TUNED.get(name, {}).items())
    return make_policy(base, n_max=12, **opts)


Trace = list[tuple[int, int, tuple[str, ...], tuple[int | None, ...]]]


def _dispatch(first: int, k: int) -> tuple[int, int, tuple[str, ...], tuple[int | None, ...]]:
    idx = range(first, first + k)
    return first, k, tuple(f"{Q}/{i}" for i in idx), tuple(sample_seed(SEED, Q, i) for i in idx)


async def _solve(name: str) -> tuple[Trace, tuple[Any, ...]]:
    trace: Trace = []

    class Gen:
        async def generate(self, req: GenerateRequest) -> AsyncIterator[GeneratedSample]:
            trace.append(_dispatch(req.first_index, req.k))
            assert req.params.seed == sample_seed(SEED, Q, req.first_index)
            for i in range(req.first_index, req.first_index + req.k):
                yield GeneratedSample(Q, f"{Q}/{i}", "...", ANSWERS[i], TOKENS[i], "stop")

    class Ver:
        async def score(self, prompt: str, samples: Sequence[GeneratedSample]) -> list[Any]:
            return [ScoredSample(s, SCORES[int(s.sample_id.split("/")[1])]) for s in samples]

    params = SamplingParams(seed=SEED)
    r, _ = await solve_question(Question(Q, "x?"), _policy(name), Gen(), Ver(), params)
    return trace, (r.reason, r.chosen_sample_id, r.samples_used, r.tokens, r.n_star)


def _replay(name: str) -> tuple[Trace, tuple[Any, ...]]:
    order = [
        PoolSample(f"{Q}/{i}", ANSWERS[i], ANSWERS[i] == "4", s, TOKENS[i])
        for i, s in enumerate(SCORES)
    ]
    dispatches: list[Dispatch] = []
    # samples finish in dispatch order, as the scripted solver and controller get them
    ep = run_episode(
        _policy(name), order, question_id=Q, seed=SEED, finish="dispatch", trace=dispatches
    )
    trace = [(d.first_index, d.k, d.sample_ids, d.seeds) for d in dispatches]
    chosen = ep.chosen_sample_id
    return trace, (ep.reason, chosen, ep.samples, ep.tokens, ep.n_star)


async def _controller(name: str) -> tuple[Trace, tuple[Any, ...]]:
    w, gen, pub = harness.worker(InMemoryStateStore())
    await w.assign({0})
    opts = json.dumps(TUNED[name]) if name in TUNED else ""
    sub = harness.submitted(
        Q, n_max=12, policy=name.rstrip("+"), seed=SEED, s_min=0.9, options=opts
    )
    await w.handle(sub, 0)
    nxt = 0
    while not harness.results(pub):
        await harness.settle()
        assert nxt < len(SCORES), "the controller asked for more samples than scripted"
        await w.handle(
            harness.scored(Q, nxt, SCORES[nxt], answer=ANSWERS[nxt], tokens=TOKENS[nxt]), 0
        )
        nxt += 1
    trace = [_dispatch(req.first_index, req.k) for req, _ in gen.requests]
    for req, _ in gen.requests:
        assert req.params.seed == sample_seed(SEED, Q, req.first_index)
    (r,) = harness.results(pub)
    n_star = r.n_star if r.HasField("n_star") else None
    return trace, (r.stop_reason, r.chosen_sample_id, r.samples_used, r.completion_tokens, n_star)


@pytest.mark.parametrize(
    "name", ["optscale0", "asc", "esc", "bon", "bayes", "hybrid", *TUNED]
)  # fmt: skip
async def test_the_three_drivers_make_the_same_dispatches_and_decision(name: str) -> None:
    solved, replayed, controlled = await _solve(name), _replay(name), await _controller(name)
    assert solved == replayed == controlled
    trace, (reason, chosen, used, _, n_star) = solved
    assert trace and chosen is not None and used <= len(SCORES)
    if name.startswith("optscale0"):  # the scripted scores make it dispatch more than once
        assert len(trace) > 1 and n_star is not None
        assert reason == ("bound" if n_star < 12 else "n_max")


@pytest.mark.parametrize("name", list(TUNED))
async def test_tuned_options_reach_every_driver(name: str) -> None:
    """The tuned run differs from the default one (so the options above were applied); the
    three drivers agreeing on it (test above) means each got them."""
    assert await _solve(name) != await _solve(name.rstrip("+"))
