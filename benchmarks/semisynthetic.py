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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from semisynthetic_models import (
    CAL_GAMMA,
    CAL_HARD_BY_LEVEL,
    CAL_HARD_SHIFT,
    CAL_LEVEL,
    CAL_TAU,
    DISTRACTOR_P,
    LEVEL_MEAN_TOKENS,
    MAX_TOKENS,
    MIN_TOKENS,
    MODELS,
    MU_MEAN,
    MU_SD,
    N_SAMPLES,
    NOISY_A,
    NOISY_B,
    NOISY_KAPPA,
    NOISY_TAU,
    OTHER_WRONG,
    PREDICTOR_ERROR,
    QUESTION_TOKEN_SPREAD,
    SAMPLE_TOKEN_SPREAD,
    SIGMA_FLOOR,
    TARGETS_FILE,
    Row,
    build_pool,
    build_pools,
    build_question,
    load_rows,
    noisy_priors,
    p_correct,
    scores_of,
    tokens_of,
    truncnorm_draw,
)
from semisynthetic_paper import (
    PoolSummary,
    majority_correct,
    measure_predictor_error,
    paper_bon,
    paper_sc,
    paper_table,
    summary,
    within_auroc,
)

__all__ = [
    "CAL_GAMMA",
    "CAL_HARD_BY_LEVEL",
    "CAL_HARD_SHIFT",
    "CAL_LEVEL",
    "CAL_TAU",
    "DISTRACTOR_P",
    "LEVEL_MEAN_TOKENS",
    "MAX_TOKENS",
    "MIN_TOKENS",
    "MODELS",
    "MU_MEAN",
    "MU_SD",
    "NOISY_A",
    "NOISY_B",
    "NOISY_KAPPA",
    "NOISY_TAU",
    "N_SAMPLES",
    "OTHER_WRONG",
    "PREDICTOR_ERROR",
    "QUESTION_TOKEN_SPREAD",
    "SAMPLE_TOKEN_SPREAD",
    "SIGMA_FLOOR",
    "TARGETS_FILE",
    "PoolSummary",
    "Row",
    "build_pool",
    "build_pools",
    "build_question",
    "load_rows",
    "majority_correct",
    "measure_predictor_error",
    "noisy_priors",
    "p_correct",
    "paper_bon",
    "paper_sc",
    "paper_table",
    "scores_of",
    "summary",
    "tokens_of",
    "truncnorm_draw",
    "within_auroc",
]


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
