"""benchmarks/semisynthetic.py (MATH-500 x 64 pools built from the paper's per-question PRM
statistics) and benchmarks/pareto.py (every policy against the BoN curve, dev-chosen
parameters): pool structure and plausibility, determinism, the two correctness models differ,
pareto's episodes equal replay's, and a --quick run prints a row per policy and writes the
plots."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from optscale.calibrate import calibrate
from optscale.policies import POLICY_NAMES
from optscale.pools import split_pool
from optscale.replay import POLICY_LABELS, ReplayConfig, replay

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def ss() -> ModuleType:
    return _load("semisynthetic")


@pytest.fixture(scope="module")
def pareto() -> ModuleType:
    return _load("pareto")


def test_pools_have_64_scored_samples_per_math500_question(ss: ModuleType) -> None:
    rows = ss.load_rows()
    assert len(rows) == 500 and len({r.question_id for r in rows}) == 500
    for model in ss.MODELS:
        pool = ss.build_pool(model, rows=rows, limit=40)
        assert len(pool.questions) == 40
        assert [q.question_id for q in pool.questions] == [r.question_id for r in rows[:40]]
        assert all(q.question_id.startswith("test/") for q in pool.questions)
        for q in pool.questions:
            assert len(q.samples) == 64
            assert len({s.sample_id for s in q.samples}) == 64
            assert all(0.0 <= s.score <= 1.0 for s in q.samples)
            assert all(isinstance(s.tokens, int) and 64 <= s.tokens <= 10_000 for s in q.samples)
            # a right sample answers the reference, a wrong one never does
            assert all((s.answer == q.reference) == s.correct for s in q.samples)


def test_pools_are_deterministic_for_a_seed(ss: ModuleType) -> None:
    def fingerprint(seed: int, limit: int) -> list[tuple[str, bool, float, int]]:
        pool = ss.build_pool("calibrated", seed=seed, limit=limit)
        return [
            (s.answer or "", s.correct, s.score, s.tokens)
            for q in pool.questions
            for s in q.samples
        ]

    a, b = fingerprint(0, 12), fingerprint(0, 12)
    assert a == b
    assert fingerprint(1, 12) != a
    # a question's samples do not depend on how many questions were built
    assert fingerprint(0, 20)[: len(a)] == a


def test_the_two_correctness_models_differ(ss: ModuleType) -> None:
    cal, noisy = ss.build_pools(seed=0)
    # common random numbers: same scores and tokens, different correctness
    for qc, qn in zip(cal.questions[:50], noisy.questions[:50], strict=True):
        assert [s.score for s in qc.samples] == [s.score for s in qn.samples]
        assert [s.tokens for s in qc.samples] == [s.tokens for s in qn.samples]
    differ = np.mean(
        [
            a.correct != b.correct
            for qc, qn in zip(cal.questions, noisy.questions, strict=True)
            for a, b in zip(qc.samples, qn.samples, strict=True)
        ]
    )
    assert differ > 0.05
    # the calibrated PRM is informative within a question, the noisy one weakly
    assert ss.within_auroc(cal) > ss.within_auroc(noisy) + 0.04
    # both near the paper's MATH-500 numbers (per sample ~89.6%, BoN@64 94.0%, SC@64 93.4%)
    for pool in (cal, noisy):
        s = ss.summary(pool, orders=1)
        assert 0.86 <= s.sample_accuracy <= 0.93, s
        assert 0.90 <= s.bon[64][0] <= 0.98, s
        assert 0.91 <= s.sc_all <= 0.96, s
        assert 2_500 <= s.tokens_per_sample <= 3_100, s
    paper, vote = ss.paper_bon(), ss.paper_sc()
    assert paper[64][0] == pytest.approx(94.0) and paper[1][0] == pytest.approx(89.6)
    assert vote[64][0] == pytest.approx(93.4) and vote[8][0] == pytest.approx(93.4)


def test_replay_and_calibrate_run_on_them_unchanged(ss: ModuleType) -> None:
    pool = ss.build_pool("noisy", limit=30)
    dev, test = split_pool(pool)
    cal = calibrate(dev, n_max=16, orders=1, alphas=(0.9,), s_mins=(0.9, 0.95))
    assert cal.n_max == 16 and cal.question_ids == sorted(q.question_id for q in dev.questions)
    priors = ss.noisy_priors(ss.load_rows()[:30])
    r = replay(test, ReplayConfig(n_max=(8, 64), orders=2, priors=priors))
    assert set(r.policies) == {"bon", "sc", "wsc", "esc", "asc", "optscale0", "optscalet", "oracle"}
    assert r.cell("bon", 64).samples_per_question == 64


def test_pareto_episodes_equal_replay(ss: ModuleType, pareto: ModuleType) -> None:
    pool = ss.build_pool("noisy", limit=14)
    priors = pareto.priors_for("semi-noisy", pool, 0)
    # a strict bound, so OptScale waits past its first batch and samples get cut at the stop
    kw = {"alpha": 0.95, "s_min": 0.98, "threshold": 0.9, "window": 4}
    policies = ("bon", "sc", "wsc", "optscale0", "optscalet", "esc", "asc", "oracle")
    tuned = [pareto.Tuned(p, dict(kw), "") for p in policies]
    cells, notes = pareto.evaluate(pool, 64, tuned, priors, pareto.Options(orders=3))
    assert not notes
    r = replay(
        pool,
        ReplayConfig(
            policies=policies,
            n_max=(64,),
            orders=3,
            alpha=0.95,
            s_min=0.98,
            priors=priors,
            policy_kwargs={"threshold": 0.9, "window": 4},
        ),
    )
    for c in cells:
        ref = r.cell(c.policy, 64)
        assert c.acc.mean() == pytest.approx(ref.accuracy), c.policy
        assert c.served.mean() == pytest.approx(ref.served_tokens_per_question), c.policy
        assert c.paper.mean() == pytest.approx(ref.tokens_per_question), c.policy
        assert c.samples.mean() == pytest.approx(ref.samples_per_question), c.policy
    by = {c.policy: c for c in cells}
    assert by["optscale0"].served.mean() > by["optscale0"].paper.mean()  # cut tokens counted
    assert by["optscale0"].single_wave < 1.0


def test_pareto_n_values_give_three_operating_points(pareto: ModuleType, ss: ModuleType) -> None:
    from optscale.pools import Pool

    def pool_of(n: int) -> Pool:
        full = ss.build_pool("noisy", limit=2)
        return Pool(
            "p", [type(q)(q.question_id, q.reference, q.samples[:n]) for q in full.questions]
        )

    assert pareto.n_values(pool_of(64)) == [8, 16, 64]
    assert pareto.n_values(pool_of(16)) == [4, 8, 16]
    assert pareto.n_values(pool_of(8)) == [2, 4, 8]


def test_pareto_quick_prints_a_row_per_policy_and_writes_the_plots(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/pareto.py",
            "--quick",
            "--plots",
            str(tmp_path / "plots"),
            "--json",
            str(tmp_path / "pareto.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    ).stdout
    label = _load("pareto_common").label
    every = out.split("\n== ")[1:]
    ops = [s for s in every if s.startswith("operating points, ")]
    sections = [s for s in every if not s.startswith("operating points, ")]
    names = [s.split(" ", 1)[0] for s in sections]
    assert names[:4] == [
        "qwen25math_rm8_math100.jsonl",
        _load("recorded_pools").read_recorded_gsm8k().name,  # every recorded GSM8K file
        "math500x64-calibrated",
        "math500x64-noisy",
    ], names
    expected_n = {0: (2, 4, 8), 1: (4, 8, 16), 2: (8, 16, 64), 3: (8, 16, 64)}
    for i, sec in enumerate(sections[:4]):
        for p in POLICY_NAMES:
            for n in expected_n[i]:
                row = re.search(rf"^   {re.escape(POLICY_LABELS.get(p, p))}\s+{n}\s+\d", sec, re.M)
                assert row is not None, (p, n, sec)
        for batch_row in ("allocation", "allocation-b25", "allocation-b50"):  # the batch rows
            for n in expected_n[i]:
                assert re.search(rf"^   {re.escape(label(batch_row))}\s+{n}\s+\d", sec, re.M), (
                    batch_row,
                    n,
                )
        assert "target 1" in sec
        assert ("target 2" in sec) == (i >= 2)
    assert "== targets (issue 18)" in out
    # the operating points (benchmarks/pareto_levels.py): a table per pool, a line per target
    assert len(ops) == 4, [s[:40] for s in every]
    for sec in ops:
        for level in ("low", "middle", "high"):
            assert re.search(rf"^   {level}\s+Adaptive SC \(ASC\)\s+N_max=\d+ thr=", sec, re.M)
        assert "target 1 (every level" in sec
    assert out.count("operating points: target 1 ") == 4
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == [
        "pareto-gsm8k.png",
        "pareto-math100.png",
        "pareto-semi-calibrated.png",
        "pareto-semi-noisy.png",
    ]
    for png in (tmp_path / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    doc = json.loads((tmp_path / "pareto.json").read_text())
    assert [d["key"] for d in doc] == ["math100", "gsm8k", "semi-calibrated", "semi-noisy"]
    for d in doc:
        op = d["operating_points"]
        assert {r["level"] for r in op["rows"]} >= {"low", "middle", "high"}
        assert ("target2" in op) == d["key"].startswith("semi-")
        assert set(POLICY_NAMES) <= {c["policy"] for c in d["cells"]}
        for c in d["cells"]:
            lo, hi = c["accuracy"][1], c["accuracy"][2]
            assert 0.0 <= lo <= hi <= 1.0 and 0.0 <= c["accuracy"][0] <= 1.0
            assert c["served_tokens"] >= c["paper_tokens"] > 0
        # BoN at the pool's largest N_max uses every sample
        top = max(d["n_max"])
        bon = next(c for c in d["cells"] if c["policy"] == "bon" and c["n_max"] == top)
        assert bon["samples"] == top
        assert bon["served_tokens"] == pytest.approx(d["bon_curve"][top - 1]["tokens"])
        assert bon["accuracy"][0] == pytest.approx(d["bon_curve"][top - 1]["accuracy"])


def test_allocation_rows_take_their_budget_from_dev_and_keep_it_on_test(ss: ModuleType) -> None:
    from optscale.bon_curve import bon_prefixes
    from optscale.replay import sample_orders

    pa = _load("pareto_allocation")
    pool = ss.build_pool("noisy", limit=16)
    dev, test = split_pool(pool)
    rows = pa.tune_allocation(
        dev,
        8,
        list(pa.ALLOCATION_ROWS),
        cal_orders=2,
        seed=0,
        price_grid=(1e-5, 1e-4),
        budget_price_grid=(0.0,),
        give_up_grid=(0.0, 0.1),
    )
    assert [r for r, _, _ in rows] == list(pa.ALLOCATION_ROWS)
    dev_bon8 = np.mean(
        [bon_prefixes(o, 8)[-1][1] for q in dev.questions for o in sample_orders(q, 2, 0)]
    )
    test_orders = [sample_orders(q, 3, 0) for q in test.questions]
    for row, kw, note in rows:
        frac = pa.ALLOCATION_ROWS[row]
        assert kw["price"] in ((1e-5, 1e-4) if frac is None else (0.0,))
        assert kw["give_up"] in (0.0, 0.1)
        if frac is None:
            assert kw["budget_per_question"] is None and "no budget" in note
            continue
        assert kw["budget_per_question"] == pytest.approx(frac * dev_bon8)
        eps = pa.run_allocation(test, 8, kw, test_orders)
        for o in range(3):  # one batch per order index: its served tokens within the budget
            served = sum(eps[qi][o].served_tokens for qi in range(len(test.questions)))
            assert served <= kw["budget_per_question"] * len(test.questions)
