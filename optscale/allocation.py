"""Batch budget allocation: one token budget (or a price per token) shared by a batch of
questions; each next sample goes where it buys the most expected accuracy per expected token.

Like DSC (:mod:`optscale.dsc`) it decides over the whole batch, so it does not run through the
per-question loop; replay simulates it on one sample order per question (one batch per order
index, the orders every other policy uses).

**Model.** Per question: its :class:`~optscale.question_state.QuestionState`, the truncated
normal TN(mu, sigma) on [0, 1] fitted by MAP around a prior (the question's own prior when
given, else :data:`optscale.bayes.DEFAULT_BAYES_PRIOR`), and P(correct | score) = g(s), a
logistic calibrated on dev (:class:`optscale.bayes.CorrectnessModel`). The answer is the
best-scored sample so far, ``b`` its score. One more sample is worth

    gain = E[max(g(S), g(b))] - g(b)            (:func:`optscale.bayes.expected_gain`)

and costs ``cost`` = the mean tokens of the question's scored samples (at least 1). Its
*priority* is ``gain / cost``; a question without a scored sample has no fit and no cost yet
and comes first (rule 2).

**Rule.**

1. Repeatedly: the ``wave`` active questions of highest priority (at most one sample each)
   get one sample each, decoded in parallel, and the wave's scores update their states. Stop
   when the budget is spent, or no active question's priority reaches ``price``
   (``gain < price * cost``: the myopic rule of :class:`optscale.bayes.BayesStop`, now over
   the batch), or none is active.
2. Fresh questions first: a question with fewer than ``initial`` samples dispatched has
   infinite priority, so the first waves give every question its ``initial`` samples in batch
   order, ``wave`` at a time. (Not all at once: a budget below one sample per question then
   answers the questions it pays for instead of cutting every first sample.)
3. A question leaves the active set when it has ``n_max`` samples (or its order has no more:
   ``"n_max"``), or when its posterior P(some sample correct) is below ``give_up``
   (``"give up"``). That probability treats the samples as independent given the fit:
   ``1 - prod_i (1 - g(s_i)) * (1 - p_new) ** (n_max - n)``, ``p_new = E[g(S)]`` over the fit,
   i.e. drawn samples and every sample it may still get.

**Tokens.** Counted as for every other policy (:mod:`optscale.episode`): ``tokens`` are the
scored samples', ``cut_tokens`` what a sample cut at the budget had decoded. The samples of a
wave decode in parallel at one token per time unit (the ``length`` finish model), so when a
wave's tokens would overrun the budget it is cut at the largest whole time ``t`` with
``sum_i min(T_i, t) <= remaining``: samples with ``T_i <= t`` finish and are scored, the
others are cut after ``t`` tokens (counted, not scored). The batch's served tokens therefore
never exceed the budget. A wave that finishes is never cut: the price rule only decides
between waves.

**Edge cases.** An empty batch gives no episodes. A question whose every sample was cut (the
budget ran out before one finished) has no answer and counts as wrong (``"budget"``). Ties in
priority go to the question that comes first in ``orders``; within a wave, samples are scored
shortest first (ties: wave order). Nothing is random: the result is a function of the orders
and the configuration. Per-question ``reason``: ``"n_max"``, ``"give up"``, ``"price"``
(still active when no priority reached the price), ``"budget"`` (still active when the budget
ran out).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from optscale.bayes import DEFAULT_BAYES_PRIOR, CorrectnessModel, expected_gain
from optscale.episode import Episode
from optscale.errors import InvalidArgumentError
from optscale.fitting import Bounds, GaussianPrior, fit_map
from optscale.pool_model import PoolSample
from optscale.question_state import Observation, QuestionState, int_at_least
from optscale.truncnorm import SuffStats

__all__ = [
    "AllocationConfig",
    "PosteriorCache",
    "allocate_batch",
    "allocate_orders",
    "log_wrong",
    "p_some_correct",
    "posterior",
]

# (stats, best score, prior, bounds, P(correct | score)) -> (gain, E[g(S)]): both pure functions
# of the key, so a cache shared by runs over the same orders (a grid of budgets and prices)
# returns exactly what computing them again would
PosteriorCache = dict[
    tuple[SuffStats, float, GaussianPrior, Bounds, CorrectnessModel], tuple[float, float]
]


def log_wrong(score: float, g: CorrectnessModel) -> float:
    """log(1 - g(s)): one scored sample's term of log P(every sample so far is wrong)."""
    return math.log1p(-min(g.p(score), 1.0 - 1e-12))


def p_some_correct(log_all_wrong: float, p_new: float, left: int) -> float:
    """The give-up posterior: P(some sample is right) = ``1 - prod_i (1 - g(s_i)) * (1 -
    p_new) ** left`` (``log_all_wrong`` = the sum of :func:`log_wrong` over the scored samples,
    ``left`` samples still possible, each right with ``p_new`` = E[g(S)])."""
    return 1.0 - math.exp(log_all_wrong) * (1.0 - min(p_new, 1.0)) ** left


def posterior(
    stats: SuffStats, best: float, prior: GaussianPrior, bounds: Bounds, g: CorrectnessModel
) -> tuple[float, float]:
    """(gain of one more sample, E[g(S)]) under the MAP fit around ``prior``."""
    fit = fit_map(stats, prior, bounds)
    return (
        expected_gain(best, fit.mu, fit.sigma, g),
        expected_gain(-math.inf, fit.mu, fit.sigma, g),  # E[g(S)]
    )


@dataclass(frozen=True, slots=True)
class AllocationConfig:
    """``budget``: served tokens for the whole batch (None: unlimited); ``price``: P(correct)
    one token must buy (0: only the budget and ``n_max`` stop); ``give_up``: abandon a question
    whose P(some sample correct) is below it (0: never)."""

    n_max: int
    budget: float | None = None
    price: float = 0.0
    give_up: float = 0.0
    initial: int = 1
    wave: int = 1
    p_correct: CorrectnessModel = field(default_factory=CorrectnessModel)
    prior: GaussianPrior = DEFAULT_BAYES_PRIOR
    bounds: Bounds = field(default_factory=Bounds)

    def __post_init__(self) -> None:
        int_at_least("n_max", self.n_max, 1)
        int_at_least("initial", self.initial, 1)
        int_at_least("wave", self.wave, 1)
        if self.initial > self.n_max:
            raise InvalidArgumentError("initial", self.initial, f"must be <= n_max {self.n_max}")
        if self.budget is not None and not (math.isfinite(self.budget) and self.budget >= 0):
            raise InvalidArgumentError("budget", self.budget, "must be a number >= 0 or None")
        if not (math.isfinite(self.price) and self.price >= 0):
            raise InvalidArgumentError("price", self.price, "must be a number >= 0")
        if not (math.isfinite(self.give_up) and 0 <= self.give_up < 1):
            raise InvalidArgumentError("give_up", self.give_up, "must be in [0, 1)")


@dataclass(slots=True)
class _Question:
    order: Sequence[PoolSample]
    prior: GaussianPrior
    state: QuestionState = field(default_factory=QuestionState)
    next_index: int = 0
    log_all_wrong: float = 0.0  # sum of log(1 - g(s_i)) over scored samples
    cut_tokens: int = 0
    cut_full: int = 0
    waves: int = 0
    reason: str | None = None  # set when the question leaves the active set
    version: int = 0


def _cut_time(lengths: Sequence[int], remaining: int) -> int:
    """The largest whole t with sum(min(T, t)) <= remaining (the lengths' sum exceeds it)."""
    lo, hi = 0, max(lengths)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= remaining:
            lo = mid
        else:
            hi = mid - 1
    return lo


class _Batch:
    def __init__(
        self,
        orders: Mapping[str, Sequence[PoolSample]],
        cfg: AllocationConfig,
        priors: Mapping[str, GaussianPrior] | None,
        cache: PosteriorCache | None,
    ) -> None:
        self.cfg = cfg
        self.cache: PosteriorCache = {} if cache is None else cache
        self.ids = list(orders)
        self.qs = {
            qid: _Question(o, (priors or {}).get(qid, cfg.prior)) for qid, o in orders.items()
        }
        self.spent = 0
        self.exhausted = False

    def _limit(self, q: _Question) -> int:
        return min(self.cfg.n_max, len(q.order))

    def run_wave(self, picks: Sequence[str]) -> None:
        """Dispatch one sample per entry of ``picks`` (a question may repeat), decode them in
        parallel, cut at the budget, score the finished ones shortest first."""
        wave: list[tuple[int, int, str, PoolSample]] = []
        for j, qid in enumerate(picks):
            q = self.qs[qid]
            if q.next_index >= self._limit(q):
                continue
            s = q.order[q.next_index]
            q.next_index += 1
            wave.append((s.tokens, j, qid, s))
        for qid in {w[2] for w in wave}:
            self.qs[qid].waves += 1
        total = sum(w[0] for w in wave)
        t_cut: int | None = None
        if self.cfg.budget is not None:
            remaining = int(self.cfg.budget - self.spent)
            if total > remaining:
                t_cut = _cut_time([w[0] for w in wave], remaining)
                self.exhausted = True
        for length, _, qid, s in sorted(wave, key=lambda w: (w[0], w[1])):
            q = self.qs[qid]
            if t_cut is not None and length > t_cut:
                q.cut_tokens += t_cut
                q.cut_full += length
                self.spent += t_cut
                continue
            self.spent += length
            q.state = q.state.observe(Observation(s.sample_id, s.answer, s.score, s.tokens))
            q.log_all_wrong += log_wrong(s.score, self.cfg.p_correct)
            q.version += 1

    def priority(self, q: _Question) -> float | None:
        """gain / cost, or None when the question leaves the active set (reason set)."""
        st, cfg = q.state, self.cfg
        if st.n_scored >= cfg.n_max or q.next_index >= self._limit(q):
            q.reason = "n_max"
            return None
        if q.next_index < cfg.initial or st.best is None:  # fresh (or its first sample cut)
            return math.inf
        gain, p_new = self.posterior(st.stats, st.best.score, q.prior)
        if cfg.give_up > 0:
            left = cfg.n_max - st.n_scored
            if p_some_correct(q.log_all_wrong, p_new, left) < cfg.give_up:
                q.reason = "give up"
                return None
        return gain / max(st.tokens / st.n_scored, 1.0)

    def posterior(self, stats: SuffStats, best: float, prior: GaussianPrior) -> tuple[float, float]:
        """(gain of one more sample, E[g(S)]) under the MAP fit."""
        g, bounds = self.cfg.p_correct, self.cfg.bounds
        key = (stats, best, prior, bounds, g)
        got = self.cache.get(key)
        if got is None:
            got = self.cache[key] = posterior(stats, best, prior, bounds, g)
        return got

    def episodes(self, stop_reason: str) -> dict[str, Episode]:
        out: dict[str, Episode] = {}
        for qid in self.ids:
            q = self.qs[qid]
            st = q.state
            chosen = st.best
            by_id = {s.sample_id: s for s in q.order[: q.next_index]}
            sample = by_id.get(chosen.sample_id) if chosen is not None else None
            reason = q.reason or ("budget" if self.exhausted else stop_reason)
            out[qid] = Episode(
                correct=bool(sample is not None and sample.correct),
                tokens=int(st.tokens),
                inflight_tokens=q.cut_full,
                samples=int(st.n_scored),
                n_star=None,
                reason=reason,
                chosen_sample_id=chosen.sample_id if chosen is not None else None,
                cut_tokens=q.cut_tokens,
                waves=q.waves,
            )
        return out


def allocate_batch(
    orders: Mapping[str, Sequence[PoolSample]],
    config: AllocationConfig,
    *,
    priors: Mapping[str, GaussianPrior] | None = None,
    cache: PosteriorCache | None = None,
) -> dict[str, Episode]:
    """One allocation run over a batch: question id -> its sample order (in batch order) ->
    each question's episode. ``priors``: per-question priors for the fit (default
    ``config.prior``); ``cache``: fits to reuse and fill (runs over the same orders)."""
    cfg = config
    b = _Batch(orders, cfg, priors, cache)
    if not b.ids:
        return {}
    # max-heap of (-priority, batch position, version); stale entries skipped on pop
    heap: list[tuple[float, int, int]] = []
    pos = {qid: i for i, qid in enumerate(b.ids)}

    def push(qid: str) -> None:
        q = b.qs[qid]
        p = b.priority(q)
        if p is not None:
            heapq.heappush(heap, (-p, pos[qid], q.version))

    for qid in b.ids:
        push(qid)
    stop_reason = "price"
    while not b.exhausted:
        picks: list[str] = []
        while heap and len(picks) < cfg.wave:
            neg, i, version = heap[0]
            q = b.qs[b.ids[i]]
            if version != q.version or q.reason is not None:
                heapq.heappop(heap)
                continue
            if -neg < cfg.price or -neg <= 0.0:
                break
            heapq.heappop(heap)
            picks.append(b.ids[i])
        if not picks:
            break
        b.run_wave(picks)
        for qid in picks:
            push(qid)
    return b.episodes(stop_reason)


def allocate_orders(
    order_lists: Mapping[str, Sequence[Sequence[PoolSample]]],
    config: AllocationConfig,
    *,
    priors: Mapping[str, GaussianPrior] | None = None,
    cache: PosteriorCache | None = None,
) -> dict[str, list[Episode]]:
    """One batch per order index (every question's ``o``-th order forms batch ``o``), as replay
    runs batch policies: question id -> its episodes, one per order. ``cache``: as for
    :func:`allocate_batch`."""
    counts = {len(v) for v in order_lists.values()}
    if len(counts) > 1:
        raise InvalidArgumentError("orders", sorted(counts), "every question needs as many")
    n_orders = counts.pop() if counts else 0
    out: dict[str, list[Episode]] = {qid: [] for qid in order_lists}
    for o in range(n_orders):
        batch = {qid: os[o] for qid, os in order_lists.items()}
        got = allocate_batch(batch, config, priors=priors, cache=cache)
        for qid, ep in got.items():
            out[qid].append(ep)
    return out
