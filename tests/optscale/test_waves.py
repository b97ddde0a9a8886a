"""Wave sizing (``pace``): OptScale starts only part of what the bound still asks for, stops at
the same score, and pays fewer cut tokens for it."""

from __future__ import annotations

import math

import pytest

from optscale.calibrate import calibrate
from optscale.episode import run_episode
from optscale.errors import InvalidArgumentError
from optscale.policies import Observation, QuestionState, make_policy
from optscale.pool_model import Pool, PoolQuestion, PoolSample

# scores that rise: N* is large after the initial batch and falls as high scores arrive
RISING = [min(0.999, 0.3 + 0.02 * i + 0.1 * ((i * 7) % 3)) for i in range(64)]


def _drive(pace: float) -> tuple[int, list[int], list[tuple[int, int, int | None]]]:
    """Score one sample at a time; return (scored at the stop, dispatch sizes, the
    (n scored, target, N*) of every non-stop decision)."""
    policy = make_policy("optscale0", n_max=64, alpha=0.9, s_min=0.95, pace=pace)
    state, sizes, seen = QuestionState(), [], []
    d = policy.decide(state)
    while not d.stop:
        seen.append((state.n_scored, d.target, d.n_star))
        if d.target > state.n_live:
            sizes.append(d.target - state.n_live)
            state = state.dispatched(d.target - state.n_live)
        i = state.n_scored
        state = state.observe(Observation(f"s{i}", "x", RISING[i], 100))
        d = policy.decide(state)
    return state.n_scored, sizes, seen


def test_pace_one_is_the_paper_and_a_smaller_pace_starts_a_fraction_of_the_rest() -> None:
    n1, sizes1, seen1 = _drive(1.0)
    nh, sizesh, seenh = _drive(0.5)
    # the bound is checked on scored samples only, so both stop at the same score
    assert n1 == nh and 22 < n1 < 64
    assert sizes1[0] == sizesh[0] == 22  # the initial batch is not paced
    for _n, target, ns in seen1:
        assert ns is None or target == ns
    paced = [(n, t, ns) for n, t, ns in seenh if ns is not None]
    assert paced and all(t == n + max(1, math.ceil(0.5 * (ns - n))) for n, t, ns in paced)
    # fewer samples started in all, in more (smaller) waves
    assert sum(sizesh) < sum(sizes1) and len(sizesh) > len(sizes1)


def _question(qid: str, scores: list[float], tokens: list[int]) -> PoolQuestion:
    samples = [
        PoolSample(f"{qid}/{i}", "x", s > 0.9, s, t)
        for i, (s, t) in enumerate(zip(scores, tokens, strict=True))
    ]
    return PoolQuestion(qid, "x", samples)


def test_paced_episode_cuts_fewer_tokens_at_the_same_stop() -> None:
    tokens = [80 + (i * 53) % 400 for i in range(64)]
    q = _question("q", RISING, tokens)
    full = run_episode(make_policy("optscale0", n_max=64, alpha=0.9, s_min=0.95), q.samples)
    half = run_episode(
        make_policy("optscale0", n_max=64, alpha=0.9, s_min=0.95, pace=0.25), q.samples
    )
    assert full.cut_tokens > 0 and half.cut_tokens < full.cut_tokens
    assert half.waves > full.waves and half.end_time >= full.end_time > 0
    assert half.reason == full.reason == "bound"


@pytest.mark.parametrize("pace", [0, -0.5, 1.5, math.nan, True, "0.5"])
def test_bad_pace_is_a_clear_error(pace: object) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        make_policy("optscale0", n_max=8, pace=pace)  # type: ignore[arg-type]
    assert err.value.field == "pace"


def test_calibrate_applies_fixed_options_and_stores_them() -> None:
    qs = [
        _question(f"q{j}", [min(0.99, 0.5 + 0.03 * ((i + j) % 15)) for i in range(16)], [50] * 16)
        for j in range(6)
    ]
    cal = calibrate(
        Pool("p", qs), n_max=16, alphas=(0.9,), s_mins=(0.9,), orders=2,
        options={"pace": 0.5, "initial": 3},
    )  # fmt: skip
    assert cal.policy_params == {"pace": 0.5, "initial": 3}
    assert cal.policy_kwargs()["pace"] == 0.5
