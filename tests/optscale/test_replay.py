"""Replay: episodes follow the streaming protocol; table numbers agree with direct counts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from optscale.calibrate import calibrate
from optscale.cli import main
from optscale.policies import make_policy
from optscale.pools import Pool, PoolQuestion, PoolSample, read_pool
from optscale.replay import ReplayConfig, bon_answer, replay, run_episode, sample_orders


def _pool(n_q: int = 12, n_s: int = 16, seed: int = 1) -> Pool:
    rng = random.Random(seed)
    qs = []
    for q in range(n_q):
        hard = q % 3 == 0
        samples = []
        for i in range(n_s):
            correct = rng.random() < (0.3 if hard else 0.8)
            score = min(1.0, max(0.0, rng.gauss(0.85 if correct else 0.5, 0.1)))
            ans = "42" if correct else str(rng.randint(0, 3))
            samples.append(PoolSample(f"q{q}/{i}", ans, correct, score, 100 + rng.randint(0, 50)))
        qs.append(PoolQuestion(f"q{q}", "42", samples))
    return Pool("synthetic", qs)


def test_bon_cell_equals_a_direct_count() -> None:
    pool = _pool()
    cfg = ReplayConfig(policies=("bon",), n_max=(4, 16), orders=5, seed=3)
    res = replay(pool, cfg)
    for n in (4, 16):
        correct = tokens = 0
        for q in pool.questions:
            for order in sample_orders(q, 5, 3):
                correct += bon_answer(order, n).correct
                tokens += sum(s.tokens for s in order[:n])
        cell = res.cell("bon", n)
        assert cell.accuracy == pytest.approx(correct / (5 * len(pool.questions)))
        assert cell.tokens_per_question == pytest.approx(tokens / (5 * len(pool.questions)))


def test_orders_are_shared_and_seeded() -> None:
    q = _pool().questions[0]
    a, b = sample_orders(q, 3, 7), sample_orders(q, 3, 7)
    assert [[s.sample_id for s in o] for o in a] == [[s.sample_id for s in o] for o in b]
    c = sample_orders(q, 3, 8)
    assert [[s.sample_id for s in o] for o in a] != [[s.sample_id for s in o] for o in c]


def test_early_stopping_policies_use_fewer_tokens_and_oracle_keeps_bon_accuracy() -> None:
    pool = _pool(n_q=30)
    res = replay(pool, ReplayConfig(n_max=(16,), orders=4, s_min=0.9))
    bon = res.cell("bon", 16)
    for p in ("optscale0", "esc", "asc", "oracle"):
        assert res.cell(p, 16).tokens_per_question < bon.tokens_per_question, p
    assert res.cell("oracle", 16).accuracy == pytest.approx(bon.accuracy)
    assert "optscalet" not in res.policies and any("OptScale^t" in n for n in res.notes)


def test_optscalet_with_priors_runs() -> None:
    pool = _pool()
    priors = {q.question_id: (0.8, 0.1) for q in pool.questions}
    res = replay(pool, ReplayConfig(policies=("optscalet",), n_max=(8,), orders=2, priors=priors))
    assert res.cell("optscalet", 8).n_episodes == 2 * len(pool.questions)


def test_episode_counts_inflight_work_separately() -> None:
    order = _pool().questions[1].samples
    ep = run_episode(make_policy("optscale0", n_max=16, s_min=0.5), order)
    assert ep.samples == 6 and ep.reason == "bound"  # stops right after the initial batch
    assert ep.tokens == sum(s.tokens for s in order[:6]) and ep.inflight_tokens == 0


def test_calibrate_picks_from_the_grid() -> None:
    pool = _pool(n_q=12)
    cal = calibrate(pool, n_max=8, orders=2, alphas=(0.5, 0.9), s_mins=(0.7, 0.9))
    assert (cal.alpha, cal.s_min) in {(a, s) for a in (0.5, 0.9) for s in (0.7, 0.9)}
    assert len(cal.grid) == 4


def test_cli_replays_the_shared_sample_file(
    sample_pool_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    plots = tmp_path / "plots"
    argv = ["replay", str(sample_pool_file), "--orders", "3", "--json", str(out)]
    assert main([*argv, "--plots", str(plots)]) == 0
    assert len(list(plots.glob("*.png"))) == 3
    text = capsys.readouterr().out
    assert "Best-of-N (BoN)" in text and "OptScale^0 (MLE)" in text
    assert out.stat().st_size > 0
    assert read_pool(str(sample_pool_file)).min_samples == 8


def test_cli_reports_bad_input_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["replay", str(bad)]) == 2
    assert "bad.jsonl" in capsys.readouterr().err
    assert main(["replay", str(bad), "--orders", "0"]) == 2


def test_replay_refuses_mr_thinking() -> None:
    from optscale.errors import InvalidArgumentError
    from optscale.pool_model import Pool, PoolQuestion, PoolSample
    from optscale.replay import ReplayConfig, replay

    pool = Pool("p", [PoolQuestion("q", "1", [PoolSample("q/0", "1", True, 0.5, 10)])])
    with pytest.raises(InvalidArgumentError):
        replay(pool, ReplayConfig(policies=("mr_thinking",), n_max=(1,)))
