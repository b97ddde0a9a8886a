"""Prefix pruning in the engine (issue 18.4): the embedded solver puts the question's step judge
on its generate requests, the generator aborts a judged-out sample at a step end, and the loop
takes it as pruned — the same samples, at the same step ends, as replay's
``run_episode(pruning=...)`` on the same samples."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from optscale.aggregate import aggregate
from optscale.engines.generation.sim import Backend, ScriptedSample
from optscale.episode import run_episode
from optscale.errors import InvalidArgumentError
from optscale.inprocess import make_verifier
from optscale.policies import make_policy
from optscale.pool_model import PoolSample
from optscale.pruning import LiveStepJudge, PrefixPruning
from optscale.solve import solve_question
from optscale.types import Question, SamplingParams

Q = "q"
GOOD = (math.log(0.9), math.log(0.92), math.log(0.88), math.log(0.9))
BAD = (math.log(0.3), math.log(0.35), math.log(0.5), math.log(0.6))


def _ends(tokens: int) -> tuple[int, ...]:
    return tuple(tokens * j // 4 for j in range(1, 5))


# two good samples finish first (100, 120 tokens); two long bad ones are still decoding
SCRIPT = {
    f"{Q}/0": ScriptedSample("7", GOOD, _ends(100)),
    f"{Q}/1": ScriptedSample("7", GOOD, _ends(120)),
    f"{Q}/2": ScriptedSample("3", BAD, _ends(440)),
    f"{Q}/3": ScriptedSample("4", BAD, _ends(500)),
}


async def _solve(
    script: dict[str, ScriptedSample], policy: str, n_max: int, pruning: PrefixPruning | None
) -> tuple[Any, list[Any], Backend]:
    sim = Backend(script=script)
    gen = _InProcess(sim)
    ver = make_verifier("confidence")
    result, scored = await solve_question(
        Question(Q, "x?", answer="7"),
        make_policy(policy, n_max=n_max),
        gen,
        ver,
        SamplingParams(seed=5),
        pruning=pruning,
    )
    return result, scored, sim


class _InProcess:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.requests: list[Any] = []

    def generate(self, request: Any) -> Any:
        self.requests.append(request)
        return self.backend.generate(request)


async def test_a_judged_out_sample_stops_at_its_step_end_and_counts_as_pruned() -> None:
    result, scored, sim = await _solve(SCRIPT, "bon", 4, PrefixPruning(z=1.0))
    by_id = {s.sample_id: s for s in scored}
    # the bad ones' first step ends (110, 125): #2's comes with one finished score (not judged
    # yet: min_scored 2), #3's after both good ones (100, 120): pruned there; #2 at its second
    for sid, spent in ((f"{Q}/2", 220), (f"{Q}/3", 125)):
        s = by_id[sid]
        assert s.sample.finish_reason == "pruned" and s.answer is None
        ends = SCRIPT[sid].step_token_ends
        steps = ends.index(spent) + 1
        assert s.tokens == spent and s.sample.step_token_ends == ends[:steps]
        prefix = tuple(math.exp(x) for x in BAD[:steps])
        assert s.score == pytest.approx(sum(prefix) / steps)
        assert s.step_scores == pytest.approx(prefix)
    assert result.samples_pruned == 2 and result.pruned_tokens == 220 + 125
    assert result.samples_used == 4 and result.tokens == 100 + 120 + 220 + 125
    assert result.answer == "7" and result.correct
    assert sim.tokens_total == result.tokens  # decoding really stopped at the step ends
    assert result.as_dict()["samples_pruned"] == 2  # in the --out rows


async def test_without_pruning_every_sample_decodes_to_its_end() -> None:
    result, scored, sim = await _solve(SCRIPT, "bon", 4, None)
    assert result.samples_pruned == 0 and all(s.sample.finish_reason == "stop" for s in scored)
    assert result.tokens == sim.tokens_total == 100 + 120 + 440 + 500


def _random_script(rng: random.Random, n: int) -> dict[str, ScriptedSample]:
    script = {}
    for i in range(n):
        steps = rng.randint(1, 6)
        quality = rng.uniform(0.2, 0.95)
        lps = tuple(math.log(min(1.0, max(0.01, rng.gauss(quality, 0.1)))) for _ in range(steps))
        cuts = sorted(rng.sample(range(1, 600), steps))
        script[f"{Q}/{i}"] = ScriptedSample(str(rng.randint(1, 3)), lps, tuple(cuts))
    return script


def _pool_order(script: dict[str, ScriptedSample], aggregation: str) -> list[PoolSample]:
    out = []
    for i in range(len(script)):
        s = script[f"{Q}/{i}"]
        steps = tuple(math.exp(x) for x in s.step_logprobs)
        score = aggregate(aggregation, steps)
        tokens = s.step_token_ends[-1]
        ends = s.step_token_ends
        out.append(
            PoolSample(f"{Q}/{i}", s.answer, s.answer == "1", score, tokens, steps, 0.0, ends)
        )
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("policy", "z"), [("bon", 0.5), ("bon", 1.0), ("wsc", 0.8)])
async def test_solve_prunes_what_replay_prunes(seed: int, policy: str, z: float) -> None:
    """One dispatch of N_max samples decoding in lockstep (the sim with a judge, replay's
    "length" model): the solver's pruned samples, their tokens and the decision are replay's."""
    rng = random.Random(seed)
    script = _random_script(rng, 8)
    pruning = PrefixPruning(z=z, min_steps=1 + seed % 2)
    result, scored, _ = await _solve(script, policy, 8, pruning)
    ep = run_episode(
        make_policy(policy, n_max=8),
        _pool_order(script, "mean"),
        question_id=Q,
        seed=5,
        pruning=pruning,
    )
    assert ep.waves == 1  # one dispatch: the sim's lockstep clock is replay's
    assert result.samples_pruned == ep.pruned and result.samples_used == ep.samples
    assert result.tokens == ep.tokens and result.chosen_sample_id == ep.chosen_sample_id
    assert result.reason == ep.reason
    # which samples, and where: each pruned one is cut at a step end of its script
    for s in scored:
        if s.sample.finish_reason == "pruned":
            ends = script[s.sample_id].step_token_ends
            assert s.tokens in ends[:-1] and s.sample.step_token_ends == ends[: len(s.step_scores)]


async def test_the_seeds_above_do_prune() -> None:
    """The agreement test is not vacuous: across its scripts, some samples are pruned."""
    total = 0
    for seed in range(12):
        script = _random_script(random.Random(seed), 8)
        ep = run_episode(
            make_policy("bon", n_max=8), _pool_order(script, "mean"), pruning=PrefixPruning(z=0.5)
        )
        total += ep.pruned
    assert total >= 6


def test_live_judge_uses_the_finished_scores_and_the_confidence_step_scores() -> None:
    judge = LiveStepJudge(PrefixPruning(z=1.0, min_scored=2, sd_floor=0.05))
    assert not judge(f"{Q}/0", (math.log(0.1),))  # nothing finished yet
    judge.finished_score(0.8)
    judge.finished_score(0.8)
    assert judge(f"{Q}/0", (math.log(0.7),))  # 0.7 < 0.8 - 1.0 * 0.05
    assert not judge(f"{Q}/0", (math.log(0.76),))
    assert judge.judged == 3


def test_scripted_samples_are_checked() -> None:
    with pytest.raises(InvalidArgumentError):
        ScriptedSample("1", (-0.1, -0.2), (10,))
    with pytest.raises(InvalidArgumentError):
        ScriptedSample("1", (-0.1, -0.2), (10, 10))
    with pytest.raises(InvalidArgumentError):
        Backend(steps=0)
