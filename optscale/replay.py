"""Offline replay of stopping policies on a recorded pool (the paper's Table 1).

For every question of a pool, ``orders`` seeded random permutations of its samples are drawn
once and shared by every policy and every N_max (common random numbers, so differences between
policies are not sampling noise of the orders). One *episode* = one policy, one N_max, one
question, one order, driven through the same :class:`~optscale.loop.QuestionLoop` as the
streaming solver and the controller:

1. the loop's dispatches take the next samples of the order (sample index ``i`` is
   ``order[i]``);
2. the oldest in-flight sample "finishes" and is fed to the loop, which decides again — one
   decision per arriving score;
3. on stop the answer is the loop's chosen sample; samples still in flight are cancelled.

Accounting (documented in docs/pool-format.md):

* ``accuracy`` — the chosen sample's ``correct``, averaged over questions and orders.
* ``tokens`` — completion tokens of the *observed* samples, per question (paper-compatible:
  cancelled samples count 0, as if cancelling were free).
* ``inflight_tokens`` — full token count of samples dispatched but still unfinished at the stop
  (an upper bound of what cancelled generations had already cost; with sequential generation
  only the sample being decoded costs anything).

N_max values: ``{1, 2, 4, 8, 16, 32, 64}`` up to the *smallest* per-question sample count of
the pool (questions never get fewer samples than N_max; a column is dropped instead).

Oracle: its target is the answer BoN at N_max returns on the same order; it stops at the first
observed sample with that answer — the fewest tokens that still return BoN's answer.
OptScale^t needs a per-question prior (``priors``: question id -> (mu_bar, sigma_bar)); without
priors it is left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optscale.bon_curve import BonCurve, Standing
from optscale.episode import Episode, FinishModel, run_episode
from optscale.errors import InvalidArgumentError
from optscale.policies import DEFAULT_ALPHA, DEFAULT_S_MIN
from optscale.pools import Pool, PoolQuestion, PoolSample
from optscale.pruning import PrefixPruning

N_GRID: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_POLICIES: tuple[str, ...] = (
    "bon",
    "sc",
    "wsc",
    "esc",
    "asc",
    "optscale0",
    "optscalet",
    "oracle",
)
POLICY_LABELS = {
    "bon": "Best-of-N (BoN)",
    "sc": "Self-Consistency (SC)",
    "wsc": "Weighted SC",
    "esc": "Early-stopping SC (ESC)",
    "asc": "Adaptive SC (ASC)",
    "optscale0": "OptScale^0 (MLE)",
    "optscalet": "OptScale^t (MAP)",
    "oracle": "Oracle (limit)",
    "dsc": "Difficulty-adaptive SC (DSC)",
    "dsc_prior": "DSC per question (prior)",
    "bayes": "Bayesian stop (priced)",
    "hybrid": "Hybrid (bound|Bayes|agreement)",
}


@dataclass(slots=True)
class Cell:
    """Aggregate of one policy at one N_max over all questions × orders."""

    policy: str
    n_max: int
    n_questions: int = 0
    n_episodes: int = 0
    correct: float = 0.0
    tokens: float = 0.0
    inflight_tokens: float = 0.0
    cut_tokens: float = 0.0
    samples: float = 0.0
    single_wave: int = 0  # episodes that never dispatched past their first batch
    waves: float = 0.0  # dispatches, summed over episodes
    pruned: int = 0  # samples aborted by prefix pruning, summed over episodes
    end_time: float = 0.0  # "length" model latencies (token-times), summed over episodes
    # per question: mean final N* over orders (inf when the bound never closed)
    n_star_by_question: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n_episodes if self.n_episodes else float("nan")

    @property
    def tokens_per_question(self) -> float:
        return self.tokens / self.n_episodes if self.n_episodes else float("nan")

    @property
    def inflight_per_question(self) -> float:
        return self.inflight_tokens / self.n_episodes if self.n_episodes else float("nan")

    @property
    def served_tokens_per_question(self) -> float:
        """Completed plus cut-at-the-stop tokens: what a serving system pays (the headline)."""
        total = self.tokens + self.cut_tokens
        return total / self.n_episodes if self.n_episodes else float("nan")

    @property
    def single_wave_fraction(self) -> float:
        """1.0: the policy never waited past its first batch — a smaller fixed N."""
        return self.single_wave / self.n_episodes if self.n_episodes else float("nan")

    @property
    def waves_per_question(self) -> float:
        return self.waves / self.n_episodes if self.n_episodes else float("nan")

    @property
    def latency_per_question(self) -> float:
        """Mean token-times from the first dispatch to the stop ("length" finish model)."""
        return self.end_time / self.n_episodes if self.n_episodes else float("nan")

    @property
    def samples_per_question(self) -> float:
        return self.samples / self.n_episodes if self.n_episodes else float("nan")

    def add(self, qid: str, episodes: Sequence[Episode]) -> None:
        self.n_questions += 1
        stars: list[float] = []
        for e in episodes:
            self.n_episodes += 1
            self.correct += e.correct
            self.tokens += e.tokens
            self.inflight_tokens += e.inflight_tokens
            self.cut_tokens += e.cut_tokens
            self.samples += e.samples
            self.single_wave += e.waves <= 1
            self.waves += e.waves
            self.pruned += e.pruned
            self.end_time += e.end_time
            self.reasons[e.reason] = self.reasons.get(e.reason, 0) + 1
            if e.n_star is not None:
                stars.append(e.n_star)
        if stars:
            self.n_star_by_question[qid] = float(np.mean(stars))

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "n_max": self.n_max,
            "questions": self.n_questions,
            "episodes": self.n_episodes,
            "accuracy": self.accuracy,
            "tokens_per_question": self.tokens_per_question,
            "served_tokens_per_question": self.served_tokens_per_question,
            "inflight_tokens_per_question": self.inflight_per_question,
            "single_wave_fraction": self.single_wave_fraction,
            "samples_per_question": self.samples_per_question,
            "waves_per_question": self.waves_per_question,
            "latency_per_question": self.latency_per_question,
            "reasons": dict(self.reasons),
        }


@dataclass(slots=True)
class ReplayConfig:
    policies: tuple[str, ...] = DEFAULT_POLICIES
    n_max: tuple[int, ...] = N_GRID
    orders: int = 100
    seed: int = 0
    alpha: float = DEFAULT_ALPHA
    s_min: float = DEFAULT_S_MIN
    priors: Mapping[str, tuple[float, float]] | None = None
    policy_kwargs: Mapping[str, Any] = field(default_factory=dict)
    finish: FinishModel = "length"  # when samples finish (optscale.episode)
    pruning: PrefixPruning | None = None  # prefix pruning at recorded step ends (optscale.pruning)


@dataclass(slots=True)
class ReplayResult:
    pool: str
    config: ReplayConfig
    n_values: tuple[int, ...]
    cells: dict[tuple[str, int], Cell]
    notes: list[str] = field(default_factory=list)
    curve: BonCurve | None = None  # BoN(k), k = 1..max N_max, on the same orders

    def cell(self, policy: str, n_max: int) -> Cell:
        return self.cells[(policy, n_max)]

    def standing(self, policy: str, n_max: int) -> Standing | None:
        """The cell's served tokens and accuracy against BoN(k), k <= n_max."""
        c = self.cells.get((policy, n_max))
        if c is None or not c.n_episodes or self.curve is None:
            return None
        return self.curve.standing(c.served_tokens_per_question, c.accuracy, n_max)

    @property
    def policies(self) -> list[str]:
        seen: list[str] = []
        for p, _ in self.cells:
            if p not in seen:
                seen.append(p)
        return seen

    def as_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "alpha": self.config.alpha,
            "s_min": self.config.s_min,
            "orders": self.config.orders,
            "seed": self.config.seed,
            "n_values": list(self.n_values),
            "finish_model": self.config.finish,
            "cells": [self._cell_dict(c) for c in self.cells.values()],
            "bon_curve": []
            if self.curve is None
            else [
                {"k": k, "tokens_per_question": t, "accuracy": a} for k, t, a in self.curve.points()
            ],
            "notes": list(self.notes),
        }

    def _cell_dict(self, c: Cell) -> dict[str, Any]:
        d = c.as_dict()
        st = self.standing(c.policy, c.n_max)
        if st is not None:
            d["vs_bon_curve"] = {"gain": st.gain, "token_ratio": st.ratio, "equal_k": st.curve_k}
        return d


# ---------------------------------------------------------------------------------------------
# orders


def _question_seed(seed: int, qid: str) -> int:
    h = hashlib.sha256(f"{seed}:{qid}".encode()).digest()
    return int.from_bytes(h[:8], "big")


def sample_orders(question: PoolQuestion, orders: int, seed: int) -> list[list[PoolSample]]:
    """``orders`` seeded permutations of the question's samples (stable per question id)."""
    rng = np.random.default_rng(_question_seed(seed, question.question_id))
    n = len(question.samples)
    return [[question.samples[i] for i in rng.permutation(n)] for _ in range(orders)]


def bon_answer(order: Sequence[PoolSample], n_max: int) -> PoolSample:
    """The sample BoN at ``n_max`` returns on this order (first of the highest scores)."""
    best = order[0]
    for s in order[1:n_max]:
        if s.score > best.score:
            best = s
    return best


# ---------------------------------------------------------------------------------------------
# one episode


# ---------------------------------------------------------------------------------------------
# the whole replay


def usable_n_values(pool: Pool, requested: Sequence[int] = N_GRID) -> tuple[int, ...]:
    m = pool.min_samples
    return tuple(n for n in requested if 1 <= n <= m)


def _make(name: str, n_max: int, cfg: ReplayConfig, **kw: Any) -> Any:
    from optscale.policies import make_policy

    kwargs = dict(cfg.policy_kwargs)
    kwargs.update(kw)
    return make_policy(name, n_max=n_max, alpha=cfg.alpha, s_min=cfg.s_min, **kwargs)


def _prior(mu_sigma: tuple[float, float]) -> Any:
    from optscale.stats import GaussianPrior

    return GaussianPrior(mu_bar=float(mu_sigma[0]), sigma_bar=float(mu_sigma[1]))


def replay(
    pool: Pool,
    config: ReplayConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    cfg = config or ReplayConfig()
    notes: list[str] = []
    n_values = usable_n_values(pool, cfg.n_max)
    dropped = [n for n in cfg.n_max if n not in n_values]
    if dropped:
        notes.append(
            f"N_max {dropped} dropped: the pool has only {pool.min_samples} samples "
            "for some question"
        )
    policies = list(cfg.policies)
    if "mr_thinking" in policies:
        raise InvalidArgumentError(
            "policies",
            "mr_thinking",
            "its rounds see the previous answer: a pool of independent samples cannot replay "
            "it (benchmarks/mr_thinking.py runs and reports it)",
        )
    for p in ("optscalet", "dsc_prior"):
        if p in policies and not cfg.priors:
            policies.remove(p)
            notes.append(f"{POLICY_LABELS[p]} left out: no per-question priors given (--priors)")
    cells = {(p, n): Cell(p, n) for p in policies for n in n_values}
    shared = {
        (p, n): _make(p, n, cfg)
        for p in policies
        if p not in ("oracle", "optscalet", "dsc_prior", "dsc")
        for n in n_values
    }
    missing_prior = 0
    curve = BonCurve(max(n_values)) if n_values else None

    def episode(pol: Any, order: Sequence[PoolSample]) -> Episode:
        return run_episode(pol, order, finish=cfg.finish, pruning=cfg.pruning)

    if "dsc" in policies:
        _replay_dsc(pool, cfg, n_values, cells)
    for q in pool.questions:
        orders = sample_orders(q, cfg.orders, cfg.seed)
        if curve is not None:
            for o in orders:
                curve.add(o)
        for n in n_values:
            for p in policies:
                if p == "dsc":
                    continue  # a batch policy: done above
                if p in ("optscalet", "dsc_prior"):
                    assert cfg.priors is not None
                    ms = cfg.priors.get(q.question_id)
                    if ms is None:
                        missing_prior += 1
                        continue
                    pol = _make(p, n, cfg, prior=_prior(ms))
                    eps = [episode(pol, o) for o in orders]
                elif p == "oracle":
                    eps = []
                    for o in orders:
                        target = bon_answer(o, n).answer
                        eps.append(episode(_make(p, n, cfg, target_answer=target), o))
                else:
                    pol = shared[(p, n)]
                    eps = [episode(pol, o) for o in orders]
                cells[(p, n)].add(q.question_id, eps)
        if progress is not None:
            progress(1)
    if missing_prior:
        notes.append(f"{missing_prior} (question, N, prior policy) cells had no prior; skipped")
    return ReplayResult(pool.name, cfg, n_values, cells, notes, curve)


def _replay_dsc(
    pool: Pool, cfg: ReplayConfig, n_values: Sequence[int], cells: dict[tuple[str, int], Cell]
) -> None:
    """DSC decides over the whole batch: one batch per order index (:mod:`optscale.dsc`)."""
    from optscale.dsc import dsc_batch

    orders = {q.question_id: sample_orders(q, cfg.orders, cfg.seed) for q in pool.questions}
    ease = {k: v[0] for k, v in cfg.priors.items()} if cfg.priors else None
    if ease is not None and any(q.question_id not in ease for q in pool.questions):
        ease = None  # not every question has a prior: rank by a pre-sample instead
    window = int(cfg.policy_kwargs.get("dsc_window", 4))
    for n in n_values:
        per_q: dict[str, list[Episode]] = {q.question_id: [] for q in pool.questions}
        for o in range(cfg.orders):
            batch = {qid: os[o] for qid, os in orders.items()}
            got = dsc_batch(pool.questions, batch, n_max=n, window=window, difficulty=ease)
            for qid, ep in got.items():
                per_q[qid].append(ep)
        for qid, eps in per_q.items():
            cells[("dsc", n)].add(qid, eps)
