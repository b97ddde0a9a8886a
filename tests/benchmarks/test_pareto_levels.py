"""benchmarks/pareto_levels.py (operating points: accuracy levels from the dev BoN curve, the
dev setting with the fewest tokens that reaches each) and pareto_levels_report.py (the test
half against each level's reference fixed N): the level and choice rules, the verdict rule, and
that a run's choices come from the dev half and its test numbers equal replay's."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from optscale.pools import split_pool
from optscale.replay import ReplayConfig, replay

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def pl() -> ModuleType:
    return _load("pareto_levels")


@pytest.fixture(scope="module")
def rep() -> ModuleType:
    return _load("pareto_levels_report")


def test_level_ks_per_pool_size(pl: ModuleType) -> None:
    assert pl.level_ks(8) == (2, 4, 8)
    assert pl.level_ks(16) == (4, 8, 16)
    assert pl.level_ks(64) == (4, 16, 64)
    with pytest.raises(ValueError, match="at least 8"):
        pl.level_ks(4)


def test_levels_are_the_best_fixed_n_within_the_budget(pl: ModuleType) -> None:
    # BoN gets worse with k here (as on the recorded GSM8K pool): the level at k = 8 is the
    # best fixed N within BoN@8's tokens, BoN@2's accuracy, not BoN@8's
    curve = np.array([0.50, 0.60, 0.55, 0.52, 0.58, 0.57, 0.56, 0.54])
    assert pl.dev_levels(curve, (2, 4, 8)) == pytest.approx((0.60, 0.60, 0.60))
    rising = np.array([0.5, 0.6, 0.7, 0.8])
    assert pl.dev_levels(rising, (1, 3, 4)) == pytest.approx((0.5, 0.7, 0.8))


def test_choose_takes_the_fewest_dev_tokens_that_reach_the_level(pl: ModuleType) -> None:
    pts = [
        (8, {"t": 1}, 0.90, 100.0),
        (8, {"t": 2}, 0.93, 300.0),
        (16, {"t": 3}, 0.95, 900.0),
        (16, {"t": 4}, 0.94, 250.0),
        (4, {"t": 5}, 0.94, 250.0),
    ]
    assert pl.choose(pts, 0.85) == (8, {"t": 1}, 0.90, 100.0, True)
    # two settings tie at the fewest tokens: the first of the grid
    assert pl.choose(pts, 0.935) == (16, {"t": 4}, 0.94, 250.0, True)
    assert pl.choose(pts, 0.95) == (16, {"t": 3}, 0.95, 900.0, True)
    # nobody reaches it: the most accurate, flagged
    assert pl.choose(pts, 0.99) == (16, {"t": 3}, 0.95, 900.0, False)
    with pytest.raises(ValueError):
        pl.choose([], 0.5)


def test_candidates_cover_n_max_and_the_stopping_parameters(pl: ModuleType) -> None:
    g = pl.LevelGrids()
    assert [n for n, _ in pl.candidates("sc", 16, (4, 8, 16), g)] == [1, 2, 4, 8, 16]
    asc = pl.candidates("asc", 64, (8, 16, 64), g)
    assert {n for n, _ in asc} == {8, 16, 64} and len(asc) == 3 * len(g.asc)
    assert all(kw["window"] <= n for n, kw in pl.candidates("esc", 64, (8, 16, 64), g))
    hyb = pl.candidates("hybrid", 64, (8, 16, 64), g)
    assert all(kw["price"] == 0.0 for _, kw in hyb)
    assert {kw["select"] for _, kw in hyb} == {"best", "vote"}
    with pytest.raises(ValueError, match="fitted on dev"):
        pl.candidates("bayes", 64, (8,), g)
    from optscale.bayes import CorrectnessModel

    pc = CorrectnessModel(-2.0, 5.0)
    bayes = pl.candidates("bayes", 64, (8, 64), g, pc)
    assert len(bayes) == 2 * len(g.bayes_prices)
    assert all(kw["p_correct"] is pc for _, kw in bayes)
    with pytest.raises(ValueError, match="no operating-point grid"):
        pl.candidates("dsc_prior", 64, (8,), g)


def test_reference_and_verdict(rep: ModuleType, pl: ModuleType) -> None:
    acc_k = np.array([0.80, 0.85, 0.84, 0.86, 0.86, 0.83, 0.82, 0.81])
    assert rep.reference_k(acc_k, pl.Level("m", 4, 0.9, False)) == 4
    assert rep.reference_k(acc_k, pl.Level("h", 8, 0.9, False)) == 4  # first max within 8
    assert rep.reference_k(acc_k, pl.Level("x", 8, 0.9, True)) == 8  # BoN@8 itself
    cell = _load("pareto_common").CellData(
        "asc", 8, "", np.array([1.0, 1.0, 0.0, 1.0]), np.array([10.0, 20.0, 30.0, 40.0]),
        np.array([10.0, 20.0, 30.0, 40.0]), np.ones(4), 0.0,
    )  # fmt: skip
    ref_acc, ref_tok = np.array([1.0, 0.0, 0.0, 1.0]), np.full(4, 100.0)
    w = np.full((5, 4), 0.25)  # every resample the full sample: the interval is the point
    diff, frac = rep.versus(cell, ref_acc, ref_tok, w)
    assert diff.point == pytest.approx(0.25) and diff.lo == pytest.approx(0.25)
    assert frac.point == pytest.approx(0.25) and frac.hi == pytest.approx(0.25)
    assert rep.meets(diff, frac, 0.5)[0]
    assert rep.meets(diff, frac, 0.25)[0]
    assert not rep.meets(diff, frac, 0.2)[0]
    worse = rep.versus(cell, np.ones(4), ref_tok, w)[0]
    ok, text = rep.meets(worse, frac, 0.5)
    assert not ok and "less accurate" in text


def test_a_run_chooses_on_dev_and_reports_replay_s_test_numbers(pl: ModuleType) -> None:
    pc = _load("pareto_common")
    o = pc.Options(orders=2, cal_orders=1, questions=40)
    r = pl.run_levels("semi-noisy", ["asc", "esc", "sc", "bayes"], o, pl.QUICK_GRIDS)
    assert [lv.name for lv in r.levels] == ["low", "middle", "high", "BoN@64"]
    assert [lv.k for lv in r.levels] == [4, 16, 64, 64]
    lows = [lv.dev_acc for lv in r.levels[:3]]
    assert lows == sorted(lows)
    assert r.candidates == {"sc": 7, "asc": 6, "esc": 6, "bayes": 6}
    pool = pc.load_pool("semi-noisy", o)
    dev, test = split_pool(pool)
    by_level = {lv.name: lv for lv in r.levels}
    for ch in r.choices:
        assert ch.reached == (ch.dev_acc >= by_level[ch.level].dev_acc - 1e-12)
        kw = dict(ch.kwargs)
        on = {"policies": (ch.policy,), "n_max": (ch.n_max,), "seed": o.seed}
        d = replay(dev, ReplayConfig(orders=o.cal_orders, policy_kwargs=kw, **on))
        assert d.cell(ch.policy, ch.n_max).accuracy == pytest.approx(ch.dev_acc)
        t = replay(test, ReplayConfig(orders=o.orders, policy_kwargs=kw, **on))
        assert ch.cell is not None
        assert ch.cell.acc.mean() == pytest.approx(t.cell(ch.policy, ch.n_max).accuracy)
        sv = t.cell(ch.policy, ch.n_max).served_tokens_per_question
        assert ch.cell.served.mean() == pytest.approx(sv)
    # SC's N is its one parameter: the level's choice is the cheapest fixed N that reaches it
    for lv in r.levels:
        ch = next(c for c in r.choices if c.policy == "sc" and c.level == lv.name)
        if ch.reached:
            for n in (1, 2, 4, 8, 16, 32, 64):
                if n >= ch.n_max:
                    break
                d = replay(dev, ReplayConfig(policies=("sc",), n_max=(n,), orders=o.cal_orders))
                assert d.cell("sc", n).accuracy < lv.dev_acc - 1e-12
