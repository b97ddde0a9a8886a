"""``benchmarks/semisynthetic.py``: the MATH-500 rows, the score, token and score->correctness
models, the pools built from them and the OptScale^t priors (the models are described in
``benchmarks/semisynthetic.py``'s module doc)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit, ndtr, ndtri

from optscale.datasets import datasets_dir
from optscale.pool_model import Pool, PoolQuestion, PoolSample

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
