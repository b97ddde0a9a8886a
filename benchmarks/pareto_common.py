"""Shared pieces of ``benchmarks/pareto.py``: constants, options, the result records, the
pools (``load_pool``), the OptScale^t priors (``priors_for``), the N_max grid and the policy
list."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import semisynthetic
from pareto_allocation import ALLOCATION_LABELS
from pareto_allocation import BUDGET_PRICE_GRID as ALLOC_BUDGET_PRICE_GRID
from pareto_allocation import GIVE_UP_GRID as ALLOC_GIVE_UP_GRID
from pareto_allocation import PRICE_GRID as ALLOC_PRICE_GRID
from recorded_pools import GSM8K_POOL_GLOB, read_recorded_gsm8k

from optscale.calibrate import ALPHA_GRID, S_MIN_GRID
from optscale.datasets import datasets_dir
from optscale.policies import POLICY_NAMES
from optscale.pools import Pool, read_pool
from optscale.replay import POLICY_LABELS

ROOT = Path(__file__).resolve().parent
GSM8K_POOL = GSM8K_POOL_GLOB  # every recorded GSM8K file, read as one pool
POOLS: tuple[str, ...] = ("math100", "gsm8k", "semi-calibrated", "semi-noisy")
N_PREFERRED: tuple[int, ...] = (8, 16, 64)
N_FILL: tuple[int, ...] = (4, 2, 1)
ASC_GRID: tuple[float, ...] = (0.8, 0.9, 0.95, 0.99)
ESC_GRID: tuple[int, ...] = (2, 3, 4, 5, 8)
TARGET_RATIO, TARGET_SEMI_FRACTION = 0.5, 0.25
NOT_A_POLICY = frozenset({"oracle"})
# decide over the whole batch (optscale.dsc, optscale.allocation), not through the loop; the
# module each comes from
BATCH_POLICIES: dict[str, str] = {
    "dsc": "dsc",
    "allocation": "allocation",
    "allocation-b25": "allocation",
    "allocation-b50": "allocation",
}


@dataclass(frozen=True, slots=True)
class Options:
    orders: int = 20
    cal_orders: int = 6
    seed: int = 0
    questions: int | None = None  # the first questions of every pool (smoke tests)
    alphas: tuple[float, ...] = ALPHA_GRID
    s_mins: tuple[float, ...] = S_MIN_GRID
    asc_grid: tuple[float, ...] = ASC_GRID
    esc_grid: tuple[int, ...] = ESC_GRID
    alloc_prices: tuple[float, ...] = ALLOC_PRICE_GRID  # the allocation rows (pareto_allocation)
    alloc_budget_prices: tuple[float, ...] = ALLOC_BUDGET_PRICE_GRID
    alloc_give_ups: tuple[float, ...] = ALLOC_GIVE_UP_GRID


@dataclass(slots=True)
class Tuned:
    policy: str
    kwargs: dict[str, Any]
    note: str


@dataclass(slots=True)
class CellData:
    """One policy at one N_max on the test half: per-question means over the orders."""

    policy: str
    n_max: int
    params: str
    acc: np.ndarray
    served: np.ndarray
    paper: np.ndarray
    samples: np.ndarray
    single_wave: float


@dataclass(slots=True)
class JobResult:
    pool: str
    n_max: int
    tuned: list[Tuned]
    cells: list[CellData]
    notes: list[str]
    seconds: float


# ---------------------------------------------------------------------------------------------
# pools and priors

_CACHE: dict[tuple[str, int | None, int], Pool] = {}


def load_pool(key: str, opts: Options) -> Pool:
    ck = (key, opts.questions, opts.seed)
    if ck not in _CACHE:
        if key == "math100":
            pool = read_pool(str(datasets_dir() / "samples" / "qwen25math_rm8_math100.jsonl"))
        elif key == "gsm8k":
            pool = read_recorded_gsm8k()
        elif key.startswith("semi-"):
            pool = semisynthetic.build_pool(key[len("semi-") :], seed=opts.seed)
        else:
            raise SystemExit(f"unknown pool {key!r} (one of {', '.join(POOLS)})")
        if opts.questions is not None:
            pool = Pool(pool.name, pool.questions[: opts.questions])
        _CACHE[ck] = pool
    return _CACHE[ck]


def priors_for(key: str, pool: Pool, seed: int) -> dict[str, tuple[float, float]]:
    """The question's own score statistics plus the predictor's measured error."""
    if key.startswith("semi-"):
        rows = semisynthetic.load_rows()
        ids = {q.question_id for q in pool.questions}
        return semisynthetic.noisy_priors([r for r in rows if r.question_id in ids], seed=seed)
    own = [
        semisynthetic.Row(
            q.question_id,
            q.question or "",
            q.reference or "",
            3,
            float(np.mean([s.score for s in q.samples])),
            max(float(np.std([s.score for s in q.samples])), semisynthetic.SIGMA_FLOOR),
        )
        for q in pool.questions
    ]
    return semisynthetic.noisy_priors(own, seed=seed)


def n_values(pool: Pool) -> list[int]:
    m = pool.min_samples
    ns = [n for n in N_PREFERRED if n <= m]
    for n in N_FILL:
        if len(ns) >= 3:
            break
        if n <= m and n not in ns:
            ns.append(n)
    return sorted(ns)


def policies_now() -> list[str]:
    """``optscale.policies.POLICY_NAMES`` as it is when this runs, and the batch policies run
    beside them (``dsc``, the ``allocation`` rows) when their modules exist."""
    out = list(POLICY_NAMES)
    for p, module in BATCH_POLICIES.items():
        if p not in out and importlib.util.find_spec(f"optscale.{module}") is not None:
            out.append(p)
    return out


def label(p: str) -> str:
    return POLICY_LABELS.get(p) or ALLOCATION_LABELS.get(p, p)
