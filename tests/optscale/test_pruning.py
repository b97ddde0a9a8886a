"""Prefix pruning in replay: samples whose prefix scores sit far below the question's scored
samples stop at a step end and cost only the tokens decoded by then."""

from __future__ import annotations

import math

import pytest

from optscale.episode import run_episode
from optscale.errors import InvalidArgumentError
from optscale.policies import make_policy
from optscale.pool_model import Pool, PoolQuestion, PoolSample
from optscale.pruning import PrefixPruning
from optscale.replay import ReplayConfig, replay
from optscale.truncnorm import SuffStats


def _sample(i: int, good: bool, tokens: int, *, ends: bool = True) -> PoolSample:
    """Four steps; good samples score ~0.9 at every step, bad ones ~0.3 from the first."""
    steps = (0.9, 0.92, 0.88, 0.9) if good else (0.3, 0.35, 0.5, 0.6)
    cuts = tuple(tokens * j // 4 for j in range(1, 5)) if ends else ()
    score = sum(steps) / 4
    return PoolSample(f"q/{i}", "7" if good else str(i), good, score, tokens, steps, 0.0, cuts)


# two good samples finish first (short), then long bad ones are still decoding
ORDER = [_sample(0, True, 100), _sample(1, True, 120)] + [
    _sample(i, False, 400 + 10 * i) for i in range(2, 8)
]


def test_bon_with_pruning_pays_for_prefixes_only_and_keeps_the_answer() -> None:
    bon = make_policy("bon", n_max=8)
    plain = run_episode(bon, ORDER)
    pruned = run_episode(bon, ORDER, pruning=PrefixPruning(z=1.0))
    assert plain.correct and pruned.correct and plain.pruned == 0
    assert pruned.pruned == 6 and pruned.samples == 8  # pruned samples used their slots
    # the good ones finish at t=100 and 120; a bad sample's first step ends at 105-117 (one
    # score in: not judged yet), its second at 210-235: pruned there, paying half its tokens
    assert pruned.tokens == 100 + 120 + sum((400 + 10 * i) * 2 // 4 for i in range(2, 8))
    assert pruned.served_tokens < 0.6 * plain.served_tokens and pruned.end_time < plain.end_time


def test_no_step_ends_or_z_inf_means_no_pruning() -> None:
    bon = make_policy("bon", n_max=8)
    bare = [_sample(i, i < 2, 100 + 300 * (i >= 2), ends=False) for i in range(8)]
    assert run_episode(bon, bare, pruning=PrefixPruning(z=0.0)).pruned == 0
    assert run_episode(bon, ORDER, pruning=PrefixPruning(z=math.inf)).pruned == 0


def test_a_chosen_pruned_sample_is_wrong() -> None:
    # only bad samples: the best-scored one may be a pruned prefix (it never gave an answer)
    bad = [_sample(0, False, 100), _sample(1, False, 120)] + [
        PoolSample(f"q/{i}", "7", True, 0.2, 400, (0.1, 0.1, 0.1, 0.6), 0.0, (100, 200, 300, 400))
        for i in range(2, 4)
    ]
    ep = run_episode(make_policy("bon", n_max=4), bad, pruning=PrefixPruning(z=0.5))
    assert ep.pruned >= 1 and not ep.correct


def test_threshold_waits_for_scored_samples() -> None:
    p = PrefixPruning(z=2.0, min_scored=2, sd_floor=0.05)
    st = SuffStats().add(0.8)
    assert p.threshold(st) is None and not p.prune(st, (0.0, 0.0), 1)
    st = st.add(0.8)
    limit = p.threshold(st)
    assert limit is not None and abs(limit - (0.8 - 2.0 * 0.05)) < 1e-9
    assert p.prune(st, (0.5, 0.9), 1) and not p.prune(st, (0.5, 0.9), 2)  # last step: never


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"z": -1.0}, "z"), ({"min_steps": 0}, "min_steps"), ({"sd_floor": 1.0}, "sd_floor")],
)
def test_bad_settings_are_clear_errors(kw: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        PrefixPruning(**kw)  # type: ignore[arg-type]
    assert err.value.field == field


def test_pruning_needs_the_length_model_and_runs_in_replay() -> None:
    with pytest.raises(InvalidArgumentError):
        run_episode(make_policy("bon", n_max=8), ORDER, finish="dispatch", pruning=PrefixPruning())
    pool = Pool("p", [PoolQuestion("q", "7", list(ORDER))])
    cfg = ReplayConfig(policies=("bon",), n_max=(8,), orders=3, pruning=PrefixPruning(z=1.0))
    cell = replay(pool, cfg).cell("bon", 8)
    assert cell.pruned > 0 and cell.n_episodes == 3
