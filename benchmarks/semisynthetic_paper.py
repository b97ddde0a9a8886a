"""``benchmarks/semisynthetic.py``: the paper's MATH-500 BoN / SC numbers, a pool's summary
(per-sample accuracy, BoN(k), majority vote, within-question AUROC) and the predictor's
measured error."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optscale.bon_curve import BonCurve
from optscale.datasets import datasets_dir
from optscale.grading import normalize_answer
from optscale.pool_model import Pool, PoolSample
from optscale.replay import sample_orders

sys.path.insert(0, str(Path(__file__).resolve().parent))

from semisynthetic_models import load_rows

# ---------------------------------------------------------------------------------------------
# the paper's numbers and a summary


def paper_table(method: str, root: Path | None = None) -> dict[int, tuple[float, float]]:
    """MATH-500 ``{N: (accuracy %, tokens)}`` of the rows of ``results/results_table.csv``
    whose name starts with ``method`` (e.g. ``Best-of-N``, ``Self-Consistency``)."""
    table = (root or datasets_dir()) / "optscale_official" / "results" / "results_table.csv"
    out: dict[int, tuple[float, float]] = {}
    with table.open(encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            name = rec.get("Baseline") or ""
            if name.startswith(method) and "$N=" in name:
                n = int(name.split("$N=")[1].split("$")[0])
                out[n] = (float(rec["MATH500 acc."]), float(rec["MATH500 token."]))
    return out


def paper_bon(root: Path | None = None) -> dict[int, tuple[float, float]]:
    """MATH-500 BoN(N) of the paper: ``{N: (accuracy %, tokens per question)}`` from the
    per-N results file, checked against (and completed by) ``results/results_table.csv``."""
    base = (root or datasets_dir()) / "optscale_official"
    out: dict[int, tuple[float, float]] = {}
    per_n = base / "BoN_OptScale" / "MATH500_BoN_results.json"
    if per_n.is_file():
        for r in json.loads(per_n.read_text(encoding="utf-8")):
            out[int(r["N"])] = (100.0 * float(r["accuracy"]), float(r["token_count"]))
    for n, (acc, tok) in paper_table("Best-of-N", root).items():
        if n in out and abs(out[n][0] - acc) > 0.05:
            raise ValueError(f"paper BoN@{n}: table {acc} vs per-N file {out[n][0]}")
        out.setdefault(n, (acc, tok))
    return dict(sorted(out.items()))


def paper_sc(root: Path | None = None) -> dict[int, tuple[float, float]]:
    """MATH-500 majority vote SC(N) of the paper, ``{N: (accuracy %, tokens)}``: the per-N
    file ``SC/MATH500_maj_vote_results.json`` (item N-1), completed by the table."""
    base = (root or datasets_dir()) / "optscale_official"
    out: dict[int, tuple[float, float]] = {}
    per_n = base / "SC" / "MATH500_maj_vote_results.json"
    if per_n.is_file():
        for i, r in enumerate(json.loads(per_n.read_text(encoding="utf-8")), 1):
            out[i] = (100.0 * float(r["accuracy"]), float(r["average_token_count"]))
    for n, v in paper_table("Self-Consistency", root).items():
        out.setdefault(n, v)
    return dict(sorted(out.items()))


def majority_correct(samples: Sequence[PoolSample], reference: str | None) -> bool:
    """Majority vote over ``samples`` (ties: the answer whose best sample scores higher, as
    :func:`optscale.policies.choose_majority`) is right."""
    votes: dict[str, tuple[int, float, bool]] = {}
    for s in samples:
        if s.answer is None:
            continue
        key = normalize_answer(s.answer)
        n, best, ok = votes.get(key, (0, -1.0, False))
        votes[key] = (n + 1, max(best, s.score), ok or s.correct)
    if not votes:
        return False
    top = max(votes.values(), key=lambda v: (v[0], v[1]))
    return top[2]


@dataclass(frozen=True, slots=True)
class PoolSummary:
    sample_accuracy: float
    tokens_per_sample: float
    bon: dict[int, tuple[float, float]]  # k -> (accuracy, tokens per question)
    sc: dict[int, float]  # k -> majority vote accuracy over the first k of each order
    sc_all: float  # majority vote over all samples
    auroc: float  # within-question AUROC of the score for correctness (mixed questions)


def within_auroc(pool: Pool) -> float:
    """Mean over questions with right and wrong samples of P(score right > score wrong)."""
    out: list[float] = []
    for q in pool.questions:
        c = np.array([s.correct for s in q.samples])
        sc = np.array([s.score for s in q.samples])
        if 0 < c.sum() < len(c):
            pos, neg = sc[c], sc[~c]
            gt = (pos[:, None] > neg[None, :]).mean()
            eq = (pos[:, None] == neg[None, :]).mean()
            out.append(float(gt + eq / 2))
    return float(np.mean(out)) if out else float("nan")


def summary(pool: Pool, orders: int, seed: int = 0) -> PoolSummary:
    """Per-sample accuracy, BoN(k) over ``orders`` orders (as replay draws them), SC@all."""
    curve = BonCurve(pool.min_samples)
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= pool.min_samples]
    sc = dict.fromkeys(ks, 0.0)
    for q in pool.questions:
        for o in sample_orders(q, orders, seed):
            curve.add(o)
            for k in ks:
                sc[k] += majority_correct(o[:k], q.reference)
    n = pool.n_samples()
    episodes = len(pool.questions) * orders
    return PoolSummary(
        sample_accuracy=sum(s.correct for q in pool.questions for s in q.samples) / n,
        tokens_per_sample=sum(s.tokens for q in pool.questions for s in q.samples) / n,
        bon={k: (acc, tok) for k, tok, acc in curve.points()},
        sc={k: v / episodes for k, v in sc.items()},
        sc_all=sum(majority_correct(q.samples, q.reference) for q in pool.questions)
        / len(pool.questions),
        auroc=within_auroc(pool),
    )


def measure_predictor_error() -> dict[str, tuple[float, float]]:
    """Bias and spread of the committed predictor's error on MATH-500 (mean/std scale)."""
    from optscale.stats import truncnorm_moments
    from services.predictor.model import TrainedPredictor
    from services.predictor.server import DEFAULT_MODEL_DIR

    rows = load_rows()
    p = TrainedPredictor(DEFAULT_MODEL_DIR)
    pred: list[tuple[float, float]] = []
    for i in range(0, len(rows), 64):
        pred += p.predict_sync([r.question for r in rows[i : i + 64]])
    mom = np.array([truncnorm_moments(m, max(s, 1e-3)) for m, s in pred])
    em = mom[:, 0] - np.array([r.mu for r in rows])
    es = mom[:, 1] - np.array([r.sigma for r in rows])
    return {"mu": (float(em.mean()), float(em.std())), "sigma": (float(es.mean()), float(es.std()))}
