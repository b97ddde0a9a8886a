"""Semi-synthetic MATH-500 x 64 pools from the paper's real per-question PRM score statistics.

    .venv/bin/python benchmarks/semisynthetic.py [--seed 0] [--orders 20] [--quick]

The OptScale completion pools (R1-Distill-Qwen-7B x 64 on MATH-500, Qwen2.5-Math-PRM-7B
scores) are not reachable from here, but their per-question score mean and std are
(``optscale_prior_targets.jsonl``, ``split == "val"`` = MATH-500). This module builds pools of
64 samples per MATH-500 question from them, in memory and seeded, as
:class:`optscale.pool_model.Pool` objects (question id = the MATH ``unique_id``, e.g.
``test/algebra/1004.json``), so replay, calibrate and the BoN curve run on them unchanged.
Every random draw comes from a generator seeded by ``(seed, question id, stream)``, so a
question's samples do not depend on which other questions are built (``limit``), and the two
correctness models share the same scores and token counts (common random numbers: the pools
differ only in which samples are right and what the wrong ones answer).

Per question ``q`` (row: ``prm_mu`` = mu_q, ``prm_sigma`` = sigma_q, MATH ``level`` L_q):

* **Scores.** ``s_qi ~ N(mu_q, sigma_q^2)`` truncated to [0, 1], i = 1..64, i.e. the row's
  (mu, sigma) are taken as the truncated normal's location and scale (inverse-CDF sampling).
  Note: the real scores' mean/std cannot be moment-matched by a truncated normal on 63% of
  MATH-500 (std > 1 - mean, i.e. more skewed than an exponential at 1: the matched location
  runs into any bound), so the location/scale reading is the usable one; it makes the sample
  mean ~0.02 below ``prm_mu`` for a typical question (0.921 for mu 0.944, sigma 0.066).
* **Tokens.** ``T_qi = clip(round(m_q * exp(0.45 e_qi - 0.45^2/2)), 64, 10000)`` with
  ``m_q = M[L_q] * exp(0.35 u_q - 0.35^2/2)``, ``u_q, e_qi ~ N(0, 1)``, and
  ``M = {1: 1300, 2: 1900, 3: 2500, 4: 3100, 5: 3800}`` tokens: lognormal around a per-level
  mean, so that the MATH-500 average is ~2,790 tokens per sample (the paper's BoN@1: 2,767),
  capped at the paper's max_model_len 10,000. Tokens are independent of score and
  correctness given the question (conservative: a stop rule gains nothing from short samples
  being more often right, which the length finish model would reward).
* **Correctness, model "calibrated"** (the PRM is informative within a question):
  ``P(correct | s, q) = s ^ g_q``, ``g_q = 0.25 * exp(0.3 (L_q - 3) + 1.0 z_q + 8 h_q)`` with
  ``z_q ~ N(0, 1)`` (per-question difficulty shift) and ``h_q ~ Bernoulli(H[L_q])``,
  ``H = {1: .0125, 2: .025, 3: .05, 4: .0875, 5: .15}`` ("hard" questions, ~8% of MATH-500,
  whose samples are right only at a score within ~1e-3 of 1: e^8 ~ 3000x the exponent).
  Per-sample accuracy ~89.5%, BoN@64 ~95%; BoN keeps improving with N (a strong PRM).
* **Correctness, model "noisy"** (the PRM is informative across questions, weakly within
  one): a question-level latent ``logit p_q = 5.5 + 1.0 (mu_q - 0.929) / 0.0563 + 3.5 z_q``
  (0.929 / 0.0563: mean / std of prm_mu over MATH-500; the same z_q as above), then
  ``P(correct | s, q) = sigmoid(logit p_q + 0.5 (s - mu_q) / sigma_q)``: a sample one score-std
  above its question's location gains 0.5 in log-odds. Per-sample accuracy ~90%, BoN@64
  ~92.5%, BoN nearly flat after N ~ 8 (a weak PRM inside a question).
* **Answers** (both models; needed by the voting policies): a right sample answers the
  reference answer; a wrong one answers the question's main distractor ``wrong0`` with
  probability 0.9, else one of ``wrong1`` .. ``wrong8`` uniformly (wrong answers of one
  question mostly agree, so majority vote fails roughly where p_q < 0.9 (1 - p_q), i.e.
  p_q < 0.47, and two agreeing samples are not proof of a right answer).

The constants were chosen so that per-sample accuracy, BoN@8/64 and majority vote (SC@8/64)
sit near the paper's MATH-500 numbers (BoN@1 89.6%, BoN@8 94.8%, BoN@64 94.0%, SC@8 and SC@64
93.4%; ``main`` prints ours beside theirs, read from
``optscale_official/results/results_table.csv`` and ``BoN_OptScale/MATH500_BoN_results.json``):
calibrated ~89.5 / 93 / 95 / 93.5 / 93.5, noisy ~90 / 92.5 / 92.5 / 93.5 / 93.5 (over seeds 0
and 1). Neither reproduces the paper's shape exactly: its BoN is flat from N = 4 on at ~94.5%,
the calibrated model's keeps rising, the noisy model's stays ~2 points low. The majority-vote
numbers matter: with fewer majority-wrong questions (e.g. a distractor share of 0.7 instead of
0.9) SC@64 rises to ~95% and every voting rule looks better than it is.

OptScale^t priors (:func:`noisy_priors`): the question's own (mu_q, sigma_q) plus Gaussian
noise with the bias and spread the committed predictor (``services/predictor/default``) shows
on MATH-500 when its prediction is mapped to the truncated normal's mean/std and compared with
(prm_mu, prm_sigma): mean error +0.026 +- 0.051, std error -0.028 +- 0.031 (MAE 0.038 / 0.033;
``--measure-predictor`` re-measures it, ~2 minutes on 2 cores). sigma is floored at 0.005.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit, ndtr, ndtri

from optscale.bon_curve import BonCurve
from optscale.datasets import datasets_dir
from optscale.grading import normalize_answer
from optscale.pool_model import Pool, PoolQuestion, PoolSample
from optscale.replay import sample_orders

__all__ = [
    "MODELS",
    "N_SAMPLES",
    "PREDICTOR_ERROR",
    "PoolSummary",
    "Row",
    "build_pool",
    "build_pools",
    "load_rows",
    "noisy_priors",
    "paper_bon",
    "paper_sc",
    "paper_table",
    "summary",
    "within_auroc",
]

MODELS: tuple[str, ...] = ("calibrated", "noisy")
N_SAMPLES = 64
TARGETS_FILE = "optscale_prior_targets.jsonl"

# tokens
LEVEL_MEAN_TOKENS: Mapping[int, float] = {1: 1300.0, 2: 1900.0, 3: 2500.0, 4: 3100.0, 5: 3800.0}
QUESTION_TOKEN_SPREAD = 0.35
SAMPLE_TOKEN_SPREAD = 0.45
MIN_TOKENS, MAX_TOKENS = 64, 10_000
# calibrated: P(correct | s, q) = s ** g_q
CAL_GAMMA, CAL_LEVEL, CAL_TAU, CAL_HARD_SHIFT = 0.25, 0.3, 1.0, 8.0
CAL_HARD_BY_LEVEL: Mapping[int, float] = {1: 0.0125, 2: 0.025, 3: 0.05, 4: 0.0875, 5: 0.15}
# noisy: logit p_q = A + B (mu - MU_MEAN) / MU_SD + TAU z; P = sigmoid(logit p_q + KAPPA s_std)
NOISY_A, NOISY_B, NOISY_TAU, NOISY_KAPPA = 5.5, 1.0, 3.5, 0.5
MU_MEAN, MU_SD = 0.929, 0.0563
# answers of wrong samples
DISTRACTOR_P, OTHER_WRONG = 0.9, 8
# OptScale^t prior noise: (bias, sd) of the predictor's error on MATH-500, mean and std scale
PREDICTOR_ERROR: Mapping[str, tuple[float, float]] = {
    "mu": (0.026, 0.051),
    "sigma": (-0.028, 0.031),
}
SIGMA_FLOOR = 0.005

_STREAMS = {"scores": 0, "tokens": 1, "latent": 2, "correct": 3, "answers": 4, "prior": 5}


@dataclass(frozen=True, slots=True)
class Row:
    """One MATH-500 question with the paper's PRM score statistics."""

    question_id: str  # MATH unique_id
    question: str
    answer: str
    level: int
    mu: float
    sigma: float


def load_rows(path: str | Path | None = None, *, split: str = "val") -> list[Row]:
    """The ``split`` rows of ``optscale_prior_targets.jsonl`` (``val`` = MATH-500)."""
    p = Path(path) if path is not None else datasets_dir() / TARGETS_FILE
    out: list[Row] = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r["split"] != split:
            continue
        level = r.get("level")
        out.append(
            Row(
                str(r["unique_id"]),
                str(r["question"]),
                str(r["answer"]),
                int(level) if level is not None else 3,
                float(r["prm_mu"]),
                float(r["prm_sigma"]),
            )
        )
    return out


def _rng(seed: int, qid: str, stream: str) -> np.random.Generator:
    h = hashlib.sha256(f"semisynthetic:{seed}:{qid}:{_STREAMS[stream]}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "big"))


def truncnorm_draw(rng: np.random.Generator, mu: float, sigma: float, n: int) -> np.ndarray:
    """``n`` draws of N(mu, sigma^2) truncated to [0, 1] by the inverse CDF."""
    lo, hi = ndtr(-mu / sigma), ndtr((1.0 - mu) / sigma)
    u = lo + (hi - lo) * rng.random(n)
    x = mu + sigma * ndtri(np.clip(u, 1e-300, 1.0 - 1e-16))
    return np.asarray(np.clip(x, 0.0, 1.0), dtype=float)


def scores_of(row: Row, seed: int, n: int = N_SAMPLES) -> np.ndarray:
    return truncnorm_draw(_rng(seed, row.question_id, "scores"), row.mu, max(row.sigma, 1e-3), n)


def tokens_of(row: Row, seed: int, n: int = N_SAMPLES) -> np.ndarray:
    rng = _rng(seed, row.question_id, "tokens")
    q, s = QUESTION_TOKEN_SPREAD, SAMPLE_TOKEN_SPREAD
    mean = LEVEL_MEAN_TOKENS.get(row.level, 2500.0) * math.exp(
        q * rng.standard_normal() - q * q / 2
    )
    t = mean * np.exp(s * rng.standard_normal(n) - s * s / 2)
    return np.clip(np.rint(t), MIN_TOKENS, MAX_TOKENS).astype(int)


def p_correct(model: str, row: Row, scores: np.ndarray, seed: int) -> np.ndarray:
    """P(correct | score, question) of every sample under ``model`` (see the module doc)."""
    rng = _rng(seed, row.question_id, "latent")
    z = float(rng.standard_normal())
    hard = float(rng.random() < CAL_HARD_BY_LEVEL.get(row.level, 0.04))
    if model == "calibrated":
        g = CAL_GAMMA * math.exp(CAL_LEVEL * (row.level - 3) + CAL_TAU * z + CAL_HARD_SHIFT * hard)
        return np.asarray(np.power(scores, g), dtype=float)
    if model == "noisy":
        logit_p = NOISY_A + NOISY_B * (row.mu - MU_MEAN) / MU_SD + NOISY_TAU * z
        std = (scores - row.mu) / max(row.sigma, 1e-3)
        return np.asarray(expit(logit_p + NOISY_KAPPA * std), dtype=float)
    raise ValueError(f"unknown correctness model {model!r} (one of {', '.join(MODELS)})")


def build_question(model: str, row: Row, seed: int, n: int = N_SAMPLES) -> PoolQuestion:
    scores = scores_of(row, seed, n)
    tokens = tokens_of(row, seed, n)
    p = p_correct(model, row, scores, seed)
    correct = _rng(seed, row.question_id, "correct").random(n) < p
    ra = _rng(seed, row.question_id, "answers")
    distractor = ra.random(n) < DISTRACTOR_P
    other = ra.integers(1, OTHER_WRONG + 1, n)
    samples = [
        PoolSample(
            sample_id=f"{row.question_id}/{i}",
            answer=row.answer if correct[i] else f"wrong{0 if distractor[i] else int(other[i])}",
            correct=bool(correct[i]),
            score=float(scores[i]),
            tokens=int(tokens[i]),
        )
        for i in range(n)
    ]
    return PoolQuestion(row.question_id, row.answer, samples, row.question)


def build_pool(
    model: str,
    *,
    seed: int = 0,
    rows: Sequence[Row] | None = None,
    limit: int | None = None,
    n: int = N_SAMPLES,
) -> Pool:
    """MATH-500 x ``n`` pool under correctness ``model`` (``limit``: the first questions)."""
    if model not in MODELS:
        raise ValueError(f"unknown correctness model {model!r} (one of {', '.join(MODELS)})")
    rs = list(rows if rows is not None else load_rows())
    if limit is not None:
        rs = rs[:limit]
    return Pool(f"math500x{n}-{model}", [build_question(model, r, seed, n) for r in rs])


def build_pools(
    models: Sequence[str] = MODELS, *, seed: int = 0, limit: int | None = None
) -> list[Pool]:
    rows = load_rows()
    return [build_pool(m, seed=seed, rows=rows, limit=limit) for m in models]


def noisy_priors(
    rows: Sequence[Row], *, seed: int = 0, error: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, tuple[float, float]]:
    """OptScale^t priors: the question's own (mu, sigma) + the predictor's measured error."""
    err = error or PREDICTOR_ERROR
    (bm, sm), (bs, ss) = err["mu"], err["sigma"]
    out: dict[str, tuple[float, float]] = {}
    for r in rows:
        e = _rng(seed, r.question_id, "prior").standard_normal(2)
        out[r.question_id] = (r.mu + bm + sm * e[0], max(SIGMA_FLOOR, r.sigma + bs + ss * e[1]))
    return out


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


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--orders", type=int, default=20, help="orders per question for BoN(k)")
    ap.add_argument("--quick", action="store_true", help="40 questions, 3 orders")
    ap.add_argument("--measure-predictor", action="store_true")
    a = ap.parse_args()
    if a.measure_predictor:
        err = measure_predictor_error()
        print(
            "predictor error on MATH-500 (prediction's truncnorm mean/std - prm_mu/prm_sigma): "
            + ", ".join(f"{k} bias {b:+.4f} sd {s:.4f}" for k, (b, s) in err.items())
        )
        return
    limit, orders = (40, 3) if a.quick else (None, a.orders)
    paper, paper_vote = paper_bon(), paper_sc()
    t0 = time.perf_counter()
    pools = build_pools(seed=a.seed, limit=limit)
    print(f"built {len(pools)} pools in {time.perf_counter() - t0:.1f} s (seed {a.seed})")
    sums = {p.name: summary(p, orders, a.seed) for p in pools}
    for p in pools:
        s = sums[p.name]
        print(
            f"  {p.summary()}; {s.tokens_per_sample:.0f} tokens per sample; "
            f"SC@{p.min_samples} {100 * s.sc_all:.1f}% (the paper's SC@64: "
            f"{paper_vote.get(64, (float('nan'), 0.0))[0]:.1f}%); within-question AUROC of the "
            f"score {s.auroc:.3f}"
        )
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= min(p.min_samples for p in pools)]
    nan = (float("nan"), float("nan"))
    print(
        f"\nMATH-500 BoN(N) and majority vote SC(N) accuracy %, ours over {orders} orders per "
        "question vs the paper (tokens per question in parentheses)"
    )
    print(
        f"  {'N':<4s} {'paper BoN':>16s} {'SC':>6s}   "
        + "  ".join(f"{p.name + ' BoN':>30s} {'SC':>6s}" for p in pools)
    )
    for k in ks:
        acc, tok = paper.get(k, nan)
        ours = "  ".join(
            f"{100 * sums[p.name].bon[k][0]:>21.1f}% ({sums[p.name].bon[k][1]:>6.0f}) "
            f"{100 * sums[p.name].sc[k]:5.1f}%"
            for p in pools
        )
        print(f"  {k:<4d} {acc:6.1f}% ({tok:>6.0f}) {paper_vote.get(k, nan)[0]:5.1f}%   {ours}")


if __name__ == "__main__":
    main()
