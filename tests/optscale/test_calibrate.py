"""Calibration by the gain over the BoN curve on a dev split, params with provenance, and the
refusals: tuned on evaluated questions, another N_max, no provenance, stopping that does not
pay, policies without alpha / s_min."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from optscale.calibrate import calibrate, write_params
from optscale.cli import main
from optscale.errors import DataError, InvalidArgumentError
from optscale.params import check_n_max, check_overlap, pool_sha256, read_params
from optscale.pools import Pool, PoolQuestion, PoolSample, PoolWriter, sample_record


def stopping_pays(n_q: int = 24, n_s: int = 8, seed: int = 0) -> Pool:
    """Easy questions (every sample right, scores high) and hard ones (a quarter right, and
    only those score high): stopping early on the easy ones costs nothing."""
    rng = random.Random(seed)
    qs = []
    for q in range(n_q):
        easy = q % 2 == 0
        samples = []
        for i in range(n_s):
            ok = easy or rng.random() < 0.25
            score = rng.gauss(0.97, 0.01) if easy else rng.gauss(0.95, 0.02) if ok else 0.5
            score = min(1.0, max(0.0, score))
            tokens = 100 + rng.randint(0, 100)
            samples.append(PoolSample(f"q{q}/{i}", "42" if ok else str(i), ok, score, tokens))
        qs.append(PoolQuestion(f"q{q}", "42", samples))
    return Pool("pays", qs)


def scorer_misleads(n_q: int = 12, n_s: int = 8) -> Pool:
    """The wrong samples score highest: BoN gets worse with every sample."""
    qs = []
    for q in range(n_q):
        samples = [
            PoolSample(f"m{q}/{i}", "42" if i == 0 else "7", i == 0, 0.6 if i == 0 else 0.9, 100)
            for i in range(n_s)
        ]
        qs.append(PoolQuestion(f"m{q}", "42", samples))
    return Pool("misleads", qs)


GRID = {"alphas": (0.5, 0.9), "s_mins": (0.8, 0.9), "orders": 4}


def test_a_useful_calibration_beats_the_curve_and_records_what_it_was_tuned_on(
    tmp_path: Path,
) -> None:
    pool = stopping_pays()
    cal = calibrate(pool, n_max=8, **GRID)  # type: ignore[arg-type]
    assert cal.useful and cal.gain > 0 and cal.ratio is not None and cal.ratio < 1
    # the chosen point has the largest gain of the grid
    assert cal.gain == max(g.gain for g in cal.grid)
    write_params(cal, tmp_path / "p.json")
    p = read_params(tmp_path / "p.json")
    assert (p.policy, p.n_max, p.alpha, p.s_min) == ("optscale0", 8, cal.alpha, cal.s_min)
    assert p.question_ids == {q.question_id for q in pool.questions}
    assert p.pool_sha256 == pool_sha256(pool) and len(p.pool_sha256) == 64


def test_stopping_that_does_not_pay_writes_no_params(tmp_path: Path) -> None:
    cal = calibrate(scorer_misleads(), n_max=8, **GRID)  # type: ignore[arg-type]
    assert (not cal.useful and "BoN curve" in cal.verdict) or "first batch" in cal.verdict
    with pytest.raises(InvalidArgumentError):
        write_params(cal, tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()


def test_a_rule_that_never_waits_past_its_first_batch_is_called_a_smaller_bon() -> None:
    # every score far above s_min: N* = 1 everywhere, OptScale^0 stops after its first batch
    qs = [
        PoolQuestion(
            f"e{q}", "1", [PoolSample(f"e{q}/{i}", "1", i < 4, 0.99, 50) for i in range(8)]
        )
        for q in range(6)
    ]
    cal = calibrate(Pool("flat", qs), n_max=8, alphas=(0.5,), s_mins=(0.5,), orders=2)
    assert cal.grid[0].single_wave == 1.0 and not cal.useful
    assert "first batch" in cal.verdict


def test_params_refuse_evaluated_questions_and_another_n_max(tmp_path: Path) -> None:
    cal = calibrate(stopping_pays(), n_max=8, **GRID)  # type: ignore[arg-type]
    write_params(cal, tmp_path / "p.json")
    p = read_params(tmp_path / "p.json")
    assert check_overlap(p, ["other-1", "other-2"]) is None
    with pytest.raises(InvalidArgumentError, match="tuned on 1 of the questions"):
        check_overlap(p, ["other-1", "q3"])
    warning = check_overlap(p, ["q3"], allow_overlap=True)
    assert warning is not None and "--allow-overlap given" in warning
    with pytest.raises(InvalidArgumentError, match="N_max 8"):
        check_n_max(p, 16)


def test_params_without_provenance_are_refused(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"policy": "optscale0", "n_max": 16, "alpha": 0.9, "s_min": 0.7}))
    with pytest.raises(DataError, match="provenance"):
        read_params(old)


def test_only_optscale0_is_calibrated_and_bad_grids_are_refused() -> None:
    pool = stopping_pays(n_q=4)
    for policy in ("bon", "sc", "optscalet", "asc"):
        with pytest.raises(InvalidArgumentError, match="policy"):
            calibrate(pool, policy=policy, n_max=8)
    with pytest.raises(InvalidArgumentError, match="orders"):
        calibrate(pool, n_max=8, orders=0)
    with pytest.raises(InvalidArgumentError, match="n_max"):
        calibrate(pool, n_max=9)


def _write(pool: Pool, path: Path) -> Path:
    w = PoolWriter(path)
    for q in pool.questions:
        w.write_question(
            sample_record(
                question_id=q.question_id,
                sample_id=s.sample_id,
                question=f"question {q.question_id}",
                reference=q.reference,
                text=f"... {s.answer}",
                answer=s.answer,
                correct=s.correct,
                score=s.score,
                completion_tokens=s.tokens,
            )
            for s in q.samples
        )
    return path


def test_the_cli_calibrates_on_dev_and_replay_refuses_those_questions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool_file = _write(stopping_pays(n_q=40), tmp_path / "pool.jsonl")
    params = tmp_path / "p.json"
    argv = ["calibrate", str(pool_file), "--out", str(params), "--alphas", "0.5,0.9"]
    assert main([*argv, "--s-mins", "0.8,0.9", "--orders", "3"]) == 0
    assert read_params(params).split.startswith("dev")
    # replaying the dev half (or all) with these params is refused; the test half is fine
    assert main(["replay", str(pool_file), "--params", str(params), "--orders", "2"]) == 2
    assert "tuned on" in capsys.readouterr().err
    argv = ["replay", str(pool_file), "--params", str(params), "--orders", "2"]
    assert main([*argv, "--split", "test"]) == 0
    assert main([*argv, "--allow-overlap"]) == 0
    assert "--allow-overlap given" in capsys.readouterr().out
    assert main([*argv, "--split", "test", "--n-max", "4"]) == 2  # tuned at 8


def test_the_cli_writes_nothing_when_stopping_does_not_pay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool_file = _write(scorer_misleads(n_q=30), tmp_path / "pool.jsonl")
    params = tmp_path / "p.json"
    assert main(["calibrate", str(pool_file), "--out", str(params), "--orders", "2"]) == 3
    assert not params.exists() and "no params written" in capsys.readouterr().out


def test_replay_refuses_impossible_n_max_and_malformed_priors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool_file = _write(stopping_pays(n_q=4), tmp_path / "pool.jsonl")
    assert main(["replay", str(pool_file), "--n-max", "0"]) == 2
    assert main(["replay", str(pool_file), "--n-max", "16"]) == 2  # 8 samples per question
    assert "n_max" in capsys.readouterr().err
    priors = tmp_path / "priors.json"
    for bad in ('{"q0": 0.5}', '{"q0": ["a", 1]}', "[[0.5, 0.1]]"):
        priors.write_text(bad)
        assert main(["replay", str(pool_file), "--priors", str(priors)]) == 2
        assert "priors.json" in capsys.readouterr().err
