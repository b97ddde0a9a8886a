"""Batch budget allocation: samples go where the expected gain per token is largest, the budget
is never exceeded (a wave that overruns it is cut in parallel), hopeless questions are given
up, and the result is a function of the orders."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from optscale.allocation import (
    AllocationConfig,
    PosteriorCache,
    allocate_batch,
    allocate_orders,
)
from optscale.cli import main
from optscale.episode import Episode
from optscale.errors import InvalidArgumentError
from optscale.pools import PoolQuestion, PoolSample
from optscale.replay import bon_answer, sample_orders


def _order(qid: str, scores: list[float], tokens: int | list[int] = 100) -> list[PoolSample]:
    toks = tokens if isinstance(tokens, list) else [tokens] * len(scores)
    return [
        PoolSample(f"{qid}/{i}", str(round(s, 2)), s > 0.5, s, t)
        for i, (s, t) in enumerate(zip(scores, toks, strict=True))
    ]


def _served(eps: dict[str, Episode]) -> int:
    return sum(e.served_tokens for e in eps.values())


def test_uncertain_question_gets_more_samples_than_a_settled_one() -> None:
    orders = {
        "settled": _order("settled", [0.97] * 16),
        "uncertain": _order("uncertain", [0.3, 0.6, 0.2, 0.9, 0.4, 0.7, 0.1, 0.5] * 2),
    }
    got = allocate_batch(orders, AllocationConfig(n_max=16, budget=1000))
    assert got["uncertain"].samples >= 5
    assert got["settled"].samples <= 2
    assert got["uncertain"].samples > got["settled"].samples
    # the batch spent its whole budget (samples of 100 tokens: 10 of them)
    assert _served(got) == 1000
    assert {e.reason for e in got.values()} == {"budget"}


@pytest.mark.parametrize("wave", [1, 3, 7])
@pytest.mark.parametrize("budget", [0, 150, 999, 5000, 40000])
def test_the_budget_is_never_exceeded(wave: int, budget: int) -> None:
    rng = random.Random(budget * 31 + wave)
    orders = {
        f"q{i}": _order(
            f"q{i}", [rng.random() for _ in range(8)], [rng.randint(20, 400) for _ in range(8)]
        )
        for i in range(12)
    }
    got = allocate_batch(orders, AllocationConfig(n_max=8, budget=budget, wave=wave, initial=1))
    assert _served(got) <= budget
    unlimited = allocate_batch(orders, AllocationConfig(n_max=8, wave=wave))
    if _served(unlimited) > budget:  # the budget binds: it is spent to within one sample
        assert _served(got) > budget - 400 * wave


def test_a_wave_that_overruns_the_budget_is_cut_in_parallel() -> None:
    # the initial wave decodes 100 and 300 tokens in parallel; 250 left: at t = 150 the short
    # one has finished (100), the long one is cut after 150 tokens (counted, not scored)
    orders = {"a": _order("a", [0.5, 0.5], 100), "b": _order("b", [0.5, 0.5], 300)}
    got = allocate_batch(orders, AllocationConfig(n_max=2, budget=250, wave=2))
    assert (got["a"].tokens, got["a"].cut_tokens, got["a"].samples) == (100, 0, 1)
    assert (got["b"].tokens, got["b"].cut_tokens, got["b"].samples) == (0, 150, 0)
    assert got["b"].inflight_tokens == 300
    assert got["b"].chosen_sample_id is None and not got["b"].correct
    assert got["b"].reason == "budget"


def test_fresh_questions_go_first_wave_by_wave() -> None:
    # a budget of 3.5 samples for 6 questions: three answered, the fourth cut, two never sampled
    orders = {f"q{i}": _order(f"q{i}", [0.9, 0.1], 100) for i in range(6)}
    got = allocate_batch(orders, AllocationConfig(n_max=2, budget=350, wave=1))
    assert [got[f"q{i}"].samples for i in range(6)] == [1, 1, 1, 0, 0, 0]
    assert [got[f"q{i}"].cut_tokens for i in range(6)] == [0, 0, 0, 50, 0, 0]
    assert sum(e.correct for e in got.values()) == 3
    # two initial samples each before any question gets a third
    deep = allocate_batch(
        {f"q{i}": _order(f"q{i}", [0.2] * 8, 100) for i in range(3)},
        AllocationConfig(n_max=8, budget=700, initial=2, wave=1),
    )
    assert sorted(e.samples for e in deep.values()) == [2, 2, 3]


def test_give_up_fires_when_every_score_is_low() -> None:
    low = _order("low", [0.05] * 8)
    high = _order("high", [0.9, 0.95, 0.92, 0.97, 0.91, 0.96, 0.93, 0.94])
    cfg = AllocationConfig(n_max=8, give_up=0.2)
    got = allocate_batch({"low": low, "high": high}, cfg)
    assert got["low"].reason == "give up"
    assert got["low"].samples <= 2  # one or two scores of 0.05 are enough
    assert got["high"].reason != "give up"
    # without the threshold the low question keeps sampling (nothing else stops it)
    free = allocate_batch({"low": low, "high": high}, AllocationConfig(n_max=8))
    assert free["low"].samples == 8


def test_price_zero_without_budget_is_best_of_n_max_and_a_high_price_stops_at_once() -> None:
    rng = random.Random(5)
    qs = [
        PoolQuestion(
            f"q{i}", "x", _order(f"q{i}", [rng.random() for _ in range(8)], rng.randint(50, 90))
        )
        for i in range(6)
    ]
    ol = {q.question_id: sample_orders(q, 3, seed=1) for q in qs}
    got = allocate_orders(ol, AllocationConfig(n_max=4))
    for qid, eps in got.items():
        for od, ep in zip(ol[qid], eps, strict=True):
            assert ep.samples == 4 and ep.reason == "n_max"
            assert ep.chosen_sample_id == bon_answer(od, 4).sample_id
    dear = allocate_orders(ol, AllocationConfig(n_max=4, price=1.0))
    assert all(e.samples == 1 and e.reason == "price" for eps in dear.values() for e in eps)


def test_deterministic_given_the_orders() -> None:
    rng = random.Random(9)
    qs = [
        PoolQuestion(
            f"q{i}",
            "x",
            _order(
                f"q{i}", [rng.random() for _ in range(8)], [rng.randint(10, 200) for _ in range(8)]
            ),
        )
        for i in range(10)
    ]
    cfg = AllocationConfig(n_max=8, budget=3000, give_up=0.05, wave=2)
    a = allocate_orders({q.question_id: sample_orders(q, 4, seed=3) for q in qs}, cfg)
    b = allocate_orders({q.question_id: sample_orders(q, 4, seed=3) for q in qs}, cfg)
    assert a == b
    c = allocate_orders({q.question_id: sample_orders(q, 4, seed=4) for q in qs}, cfg)
    assert a != c
    # a posterior cache shared across configurations returns what computing again would
    cache: PosteriorCache = {}
    ol = {q.question_id: sample_orders(q, 4, seed=3) for q in qs}
    for budget in (3000, 800, None):
        other = AllocationConfig(n_max=8, budget=budget, give_up=0.05, wave=2)
        assert allocate_orders(ol, other, cache=cache) == allocate_orders(ol, other)
    assert cache


def test_edge_cases_and_bad_input() -> None:
    assert allocate_batch({}, AllocationConfig(n_max=4)) == {}
    assert allocate_orders({}, AllocationConfig(n_max=4)) == {}
    with pytest.raises(InvalidArgumentError):
        allocate_orders({"a": [[]], "b": [[], []]}, AllocationConfig(n_max=4))
    for bad in (
        {"n_max": 0},
        {"n_max": 4, "budget": -1},
        {"n_max": 4, "price": float("nan")},
        {"n_max": 4, "give_up": 1.0},
        {"n_max": 4, "wave": 0},
        {"n_max": 2, "initial": 3},
    ):
        with pytest.raises(InvalidArgumentError):
            AllocationConfig(**bad)


def test_replay_command_runs_allocation_on_replays_orders(
    sample_pool_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    argv = ["replay", str(sample_pool_file), "--orders", "2", "--n-max", "4", "--json", str(out)]
    assert main([*argv, "--policies", "bon,allocation"]) == 0
    doc = json.loads(out.read_text())[0]
    bon = next(c for c in doc["cells"] if c["policy"] == "bon")
    (row,) = doc["allocation"]
    # no budget, price 0: every question gets N_max samples, i.e. BoN@4 on the same orders
    assert row["n_max"] == 4
    assert row["accuracy"] == pytest.approx(bon["accuracy"])
    assert row["served_tokens_per_question"] == pytest.approx(bon["served_tokens_per_question"])
    assert "Batch allocation: budget none" in capsys.readouterr().out
    assert main([*argv, "--policies", "allocation", "--allocate-budget", "100"]) == 0
    (tight,) = json.loads(out.read_text())[0]["allocation"]
    assert tight["served_tokens_per_question"] <= 100
    assert main([*argv, "--policies", "allocation", "--allocate-wave", "0"]) == 2
