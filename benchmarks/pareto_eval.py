"""``benchmarks/pareto.py``: the tuned policies on the test half, and one (pool, N_max) job
(dev tuning, then the test half)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


from pareto_allocation import ALLOCATION_ROWS, run_allocation
from pareto_common import BATCH_POLICIES, CellData, JobResult, Options, Tuned, load_pool, priors_for
from pareto_tuning import tune

from optscale.allocation import PosteriorCache
from optscale.episode import run_episode
from optscale.errors import InvalidArgumentError
from optscale.policies import make_policy
from optscale.pools import Pool, split_pool
from optscale.replay import bon_answer, sample_orders
from optscale.stats import GaussianPrior

# ---------------------------------------------------------------------------------------------
# the test half


def _build(policy: str, n: int, kwargs: dict[str, Any], prior: GaussianPrior | None) -> Any:
    kw = dict(kwargs)
    if prior is not None:
        kw["prior"] = prior
    return make_policy(policy, n_max=n, **kw)


def _needs_prior(policy: str, n: int, kwargs: dict[str, Any]) -> bool:
    if policy == "oracle":
        return False
    try:
        make_policy(policy, n_max=n, **kwargs)
    except InvalidArgumentError as exc:
        if "prior" in str(exc):
            return True
        raise
    return False


def evaluate(
    test: Pool,
    n: int,
    tuned: Sequence[Tuned],
    priors: dict[str, tuple[float, float]],
    o: Options,
) -> tuple[list[CellData], list[str]]:
    notes: list[str] = []
    nq = len(test.questions)
    per_question = [t for t in tuned if t.policy not in BATCH_POLICIES]
    per_prior = {t.policy: _needs_prior(t.policy, n, t.kwargs) for t in per_question}
    shared = {
        t.policy: _build(t.policy, n, t.kwargs, None)
        for t in per_question
        if t.policy != "oracle" and not per_prior[t.policy]
    }
    arrays = {t.policy: np.zeros((5, nq)) for t in tuned}

    def put(policy: str, qi: int, eps: Sequence[Any]) -> None:
        a = arrays[policy]
        a[0, qi] = np.mean([e.correct for e in eps])
        a[1, qi] = np.mean([e.served_tokens for e in eps])
        a[2, qi] = np.mean([e.tokens for e in eps])
        a[3, qi] = np.mean([e.samples for e in eps])
        a[4, qi] = np.mean([e.waves <= 1 for e in eps])

    orders = [sample_orders(q, o.orders, o.seed) for q in test.questions]
    missing = 0
    for qi, q in enumerate(test.questions):
        for t in per_question:
            if t.policy == "oracle":
                eps = [
                    run_episode(
                        make_policy("oracle", n_max=n, target_answer=bon_answer(od, n).answer), od
                    )
                    for od in orders[qi]
                ]
            elif per_prior[t.policy]:
                ms = priors.get(q.question_id)
                if ms is None:
                    missing += 1
                    continue
                pol = _build(t.policy, n, t.kwargs, GaussianPrior(ms[0], ms[1]))
                eps = [run_episode(pol, od) for od in orders[qi]]
            else:
                eps = [run_episode(shared[t.policy], od) for od in orders[qi]]
            put(t.policy, qi, eps)
    alloc_cache: PosteriorCache = {}  # the allocation rows share their posterior fits
    for t in tuned:
        if t.policy == "dsc":  # decides over the whole batch: one batch per order index
            from optscale.dsc import dsc_batch

            ids = [q.question_id for q in test.questions]
            ease = {i: priors[i][0] for i in ids} if all(i in priors for i in ids) else None
            got: list[list[Any]] = [[] for _ in ids]
            for oi in range(o.orders):
                batch = {q.question_id: orders[qi][oi] for qi, q in enumerate(test.questions)}
                eps_by_id = dsc_batch(
                    test.questions,
                    batch,
                    n_max=n,
                    window=int(t.kwargs.get("dsc_window", 4)),
                    difficulty=ease,
                )
                for qi, i in enumerate(ids):
                    got[qi].append(eps_by_id[i])
            for qi in range(nq):
                put(t.policy, qi, got[qi])
        elif t.policy in ALLOCATION_ROWS:  # one batch per order index (optscale.allocation)
            for qi, eps_q in enumerate(run_allocation(test, n, t.kwargs, orders, alloc_cache)):
                put(t.policy, qi, eps_q)
    if missing:
        notes.append(f"{missing} (question, policy) pairs had no prior and were skipped")
    cells = []
    for t in tuned:
        a = arrays[t.policy]
        cells.append(CellData(t.policy, n, t.note, a[0], a[1], a[2], a[3], float(a[4].mean())))
    return cells, notes


def run_job(key: str, n: int, policies: Sequence[str], o: Options) -> JobResult:
    t0 = time.perf_counter()
    pool = load_pool(key, o)
    dev, test = split_pool(pool)
    priors = priors_for(key, pool, o.seed)
    tuned, notes = tune(dev, n, policies, o, priors)
    cells, more = evaluate(test, n, tuned, priors, o)
    return JobResult(key, n, tuned, cells, notes + more, time.perf_counter() - t0)
