"""Stopping policies: pure, streaming state machines behind one interface.

A solver (the controller, the embedded solver, replay) keeps one immutable
:class:`QuestionState` per question and, after every event, asks the policy for a
:class:`Decision`::

    state = QuestionState()
    decision = policy.decide(state)
    while not decision.stop:
        # keep decision.target samples alive (scored + in flight): dispatch the difference
        ...
        state = state.observe(Observation(sample_id, answer, score, tokens))
        decision = policy.decide(state)
    answer = decision.chosen

``decide`` is a function of the state alone, so a controller that resumes a question from
Redis gets the same decision as the one that died. Policies:

========== ==========================================================================
bon        best-of-N: N_max samples, the highest score wins
sc         self-consistency: N_max samples, majority vote
wsc        PRM-weighted vote: N_max samples, the answer with the largest score sum wins
optscale0  OptScale^0: initial batch ceil(N_max/3), then bounded MLE and N* after every score
optscalet  OptScale^t: the same initial batch, then MAP around a predicted prior and N* after
           every score; ``prior_first=True``: the first dispatch is N* of the prior instead.
           Both: ``pace`` in (0, 1] sizes the waves after the first (see ``OptScale.paced``)
esc        early-stopping self-consistency: windows of ``window`` samples, stop when one
           window agrees unanimously (Li et al., 2024)
asc        adaptive-consistency: one sample at a time, stop when
           P(p_top > p_second | Beta(v1 + 1, v2 + 1)) > ``threshold`` (Aggarwal et al., 2023)
dsc_prior  DSC per question: easy (prior mu_bar >= ``easy_mu``) answers with one sample, hard
           ones sample windows of ``window`` until one agrees; majority vote
dsc        batch DSC (:mod:`optscale.batch_dsc`): one question of a ranked batch; the driver
           shares the batch's easy/hard boundary on a board (options ``dsc_batch``, ``rank``,
           ``batch_size``, ``dsc_window``)
mr_thinking  Multi-round Thinking: one round at a time, each shown the previous answer (the
           driver builds the prompt); the last round answers (``stop_when_unchanged``)
oracle     offline only: stop at the first sample whose answer is ``target_answer``
========== ==========================================================================

Answers vote by :func:`optscale.grading.normalize_answer`; samples without an answer do not
vote. Ties: the earliest sample (best score), the answer whose best sample scores higher
(votes). Failed samples do not count; after ``N_max`` failures every policy stops.
Stop reasons: ``n_max`` (N_max scores in, N* capped at N_max), ``bound`` (n >= N*, N* < N_max).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from optscale.errors import InvalidArgumentError
from optscale.grading import normalize_answer
from optscale.question_state import (
    Chosen,
    Decision,
    Observation,
    Policy,
    QuestionState,
    choose_best,
    choose_majority,
    choose_weighted,
    int_at_least,
    top_votes,
)
from optscale.stats import (
    Bounds,
    Fit,
    GaussianPrior,
    fit_map,
    fit_mle,
    n_star,
    validate_alpha,
    validate_s_min,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_N_MAX",
    "DEFAULT_POLICY",
    "DEFAULT_S_MIN",
    "OPTION_NAMES",
    "POLICY_NAMES",
    "PRIOR_POLICIES",
    "Chosen",
    "Decision",
    "Observation",
    "Policy",
    "QuestionState",
    "make_policy",
]
# The one place for the stopping defaults (the paper's PRM settings). With a weak scorer
# (token confidence) choose alpha / s_min with `optscale calibrate` on a dev split instead.
DEFAULT_POLICY = "optscale0"
DEFAULT_N_MAX = 16
DEFAULT_ALPHA = 0.9
DEFAULT_S_MIN = 0.95


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True, slots=True)
class _Base:
    name: str
    n_max: int
    choose: Callable[[QuestionState], Chosen | None]

    def decide(self, state: QuestionState) -> Decision:
        if state.n_failed >= self.n_max:
            return self._stop(state, "failures")
        if state.n_scored >= self.n_max:
            return self._stop(state, "n_max")
        return self.step(state)

    def step(self, state: QuestionState) -> Decision:
        return Decision(False, self.n_max, None, "sampling")

    def _stop(self, state: QuestionState, reason: str, **kw: object) -> Decision:
        return Decision(True, state.n_scored, self.choose(state), reason, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class FixedN(_Base):
    """bon / sc / wsc: always N_max samples."""


@dataclass(frozen=True, slots=True)
class OptScale(_Base):
    """OptScale^0 (``prior is None``: bounded MLE) or OptScale^t (MAP around ``prior``): after
    ``initial`` scores, refit after every score and stop once ``n >= N*``. ``prior_first``:
    with no score yet, keep N* of the prior alive (``initial`` is then 1)."""

    alpha: float = DEFAULT_ALPHA
    s_min: float = DEFAULT_S_MIN
    bounds: Bounds = Bounds()  # noqa: RUF009 (immutable)
    prior: GaussianPrior | None = None
    initial: int = 1
    prior_first: bool = False
    pace: float = 1.0

    def decide(self, state: QuestionState) -> Decision:
        if state.n_failed >= self.n_max:
            return self._stop(state, "failures")
        return self.step(state)

    def step(self, state: QuestionState) -> Decision:
        n = state.n_scored
        if self.prior_first and self.prior is not None and n == 0:
            mu, sigma = self.bounds.clip(self.prior.mu_bar, self.prior.sigma_bar)
            fit = Fit(mu, sigma, 0.0, 0, True)
            ns = n_star(self.alpha, self.s_min, mu, sigma, self.n_max)
            return Decision(False, ns, None, "prior", n_star=ns, fit=fit)
        if n < self.initial:
            return Decision(False, self.initial, None, "initial batch")
        if self.prior is not None:
            fit = fit_map(state.stats, self.prior, self.bounds)
        else:
            fit = fit_mle(state.stats, self.bounds)
        ns = n_star(self.alpha, self.s_min, fit.mu, fit.sigma, self.n_max)
        if n >= ns:  # N* <= N_max, so this holds at n >= N_max too
            return self._stop(state, "bound" if ns < self.n_max else "n_max", n_star=ns, fit=fit)
        return Decision(False, self.paced(n, ns), None, "bound not met", n_star=ns, fit=fit)

    def paced(self, n: int, ns: int) -> int:
        """Waves: of the ``ns - n`` samples the bound still asks for, keep
        ``ceil(pace * (ns - n))`` (at least one) alive beyond the ``n`` scored ones. N* is an
        estimate that moves with every score, so a sample started now is needed only if the
        bound is still unmet when it would arrive; ``pace < 1`` starts fewer of them and
        re-decides as scores come in (fewer tokens cut or wasted, more waves)."""
        return n + max(1, math.ceil(self.pace * (ns - n) - 1e-9))


@dataclass(frozen=True, slots=True)
class EarlyStoppingSC(_Base):
    window: int = 5

    def step(self, state: QuestionState) -> Decision:
        n = state.n_scored
        if n and n % self.window == 0:
            last = state.answers[-self.window :]
            if last[0] is not None and all(a == last[0] for a in last):
                return self._stop(state, "window agrees")
        target = min(self.n_max, (n // self.window + 1) * self.window)
        return Decision(False, target, None, "window")


def beta_prob_greater(v1: int, v2: int) -> float:
    """P(p1 > p2) for (p1, p2) ~ Dirichlet(v1 + 1, v2 + 1) restricted to the two leaders, i.e.
    P(X > 1/2) for X ~ Beta(v1 + 1, v2 + 1): exactly P(Binomial(v1 + v2 + 1, 1/2) <= v1)."""
    n = v1 + v2 + 1
    return math.fsum(math.comb(n, j) for j in range(v1 + 1)) / 2.0**n


@dataclass(frozen=True, slots=True)
class AdaptiveConsistency(_Base):
    threshold: float = 0.95
    batch: int = 1

    def step(self, state: QuestionState) -> Decision:
        top = top_votes(state, weighted=False)
        if top:
            v1 = top[0].count
            v2 = top[1].count if len(top) > 1 else 0
            if beta_prob_greater(v1, v2) > self.threshold:
                return self._stop(state, "beta stop")
        return Decision(False, min(self.n_max, state.n_scored + self.batch), None, "sampling")


@dataclass(frozen=True, slots=True)
class DifficultyAdaptiveSC(_Base):
    """``dsc_prior``: DSC's split of a batch into easy and hard questions, decided per question
    from the predicted prior instead of by ranking the batch: ``mu_bar >= easy_mu`` (chosen on
    dev, which fixes where the ranking is cut) is easy and answers with one sample; a hard
    question samples windows of ``window`` until a window agrees (DSC's adaptive stop), at most
    N_max; majority vote. (DSC's pre-allocation from the previous hard question needs the
    batch: the replay policy ``dsc`` has it.)"""

    prior: GaussianPrior | None = None
    easy_mu: float = 0.9
    window: int = 4

    def step(self, state: QuestionState) -> Decision:
        n = state.n_scored
        if self.prior is not None and self.prior.mu_bar >= self.easy_mu:
            return self._stop(state, "easy") if n else Decision(False, 1, None, "easy")
        if n and n % self.window == 0:
            last = state.answers[-self.window :]
            if last[0] is not None and all(a == last[0] for a in last):
                return self._stop(state, "window agrees")
        return Decision(False, min(self.n_max, (n // self.window + 1) * self.window), None, "hard")


def choose_last(state: QuestionState) -> Chosen | None:
    return state.last


@dataclass(frozen=True, slots=True)
class MultiRoundThinking(_Base):
    """``mr_thinking`` (Think Twice): one round at a time, each shown the previous round's
    answer by the driver (:func:`optscale.mr_thinking.next_round_prompt`); the last round's
    answer is the result; ``stop_when_unchanged``: stop once a round repeats the previous
    round's answer. Rounds are the question's samples in arrival order (one in flight)."""

    stop_when_unchanged: bool = False

    def step(self, state: QuestionState) -> Decision:
        a = state.answers
        if self.stop_when_unchanged and len(a) >= 2 and a[-1] is not None and a[-1] == a[-2]:
            return self._stop(state, "unchanged")
        return Decision(False, state.n_scored + 1, None, "round")


@dataclass(frozen=True, slots=True)
class Oracle(_Base):
    target_answer: str | None = None

    def step(self, state: QuestionState) -> Decision:
        key = normalize_answer(self.target_answer) if self.target_answer is not None else None
        if key and state.answers and state.answers[-1] == key:
            return Decision(True, state.n_scored, state.votes[key].best, "oracle")
        return Decision(False, min(self.n_max, state.n_scored + 1), None, "oracle search")


# --------------------------------------------------------------------------- factory

POLICY_NAMES = (
    "bon", "sc", "wsc", "optscale0", "optscalet", "esc", "asc", "oracle", "bayes", "hybrid",
    "dsc_prior", "mr_thinking",
)  # fmt: skip
PRIOR_POLICIES = ("optscalet", "dsc_prior")  # policies that need a per-question prior
# The options beyond name / n_max / alpha / s_min / prior that a question's config may carry
# (a params file's tuned ``policy_params``); ``p_correct`` in JSON form {"a": .., "b": ..};
# ``bon_curve_k_eq`` is read by no policy (the controller's metrics; optscale.params).
OPTION_NAMES = (
    "initial", "prior_first", "pace", "window", "threshold", "batch",
    "price", "p_correct", "wave", "select", "easy_mu", "stop_when_unchanged", "bon_curve_k_eq",
    "dsc_batch", "rank", "batch_size", "dsc_window", "give_up", "prune_z", "prune_min_steps",
)  # fmt: skip


def make_policy(
    name: str,
    *,
    n_max: int,
    alpha: float = DEFAULT_ALPHA,
    s_min: float = DEFAULT_S_MIN,
    bounds: Bounds | None = None,
    prior: GaussianPrior | None = None,
    initial: int | None = None,
    prior_first: bool = False,
    window: int = 5,
    threshold: float = 0.95,
    batch: int = 1,
    target_answer: str | None = None,
    pace: float = 1.0,
    easy_mu: float = 0.9,
    stop_when_unchanged: bool = False,
    **bayes: object,
) -> Policy:
    """Build a policy by name. Options that do not apply to ``name`` are ignored; ``bayes``:
    the options of :func:`optscale.bayes.make_bayes_policy` (``price``, ``p_correct``,
    ``wave``, ``select``) for ``bayes`` and ``hybrid``. ``initial``:
    OptScale's initial batch (default ceil(N_max/3)); ``prior_first`` (optscalet, without
    ``initial``): the first dispatch is N* of the prior, the bound is checked from score 1."""
    n_max = int_at_least("n_max", n_max, 1)
    if "give_up" in bayes:  # read by the controller (optscale.give_up), by no policy: checked
        from optscale.give_up import give_up_setting

        give_up_setting([("give_up", bayes.pop("give_up"))])
    if "prune_z" in bayes or "prune_min_steps" in bayes:  # the controller's prefix pruning
        from optscale.pruning import PRUNE_OPTIONS, pruning_setting

        pruning_setting([(k, bayes.pop(k)) for k in PRUNE_OPTIONS if k in bayes])
    if name == "dsc":  # a batch policy: not in POLICY_NAMES (replay runs it over the batch)
        from optscale.batch_dsc import make_batch_dsc

        return make_batch_dsc(n_max, bayes)
    if name in ("bayes", "hybrid"):
        from optscale.bayes import make_bayes_policy

        kw = dict(alpha=alpha, s_min=s_min, threshold=threshold, prior=prior, bounds=bounds)
        return make_bayes_policy(name, n_max=n_max, **kw, **bayes)  # type: ignore[arg-type]
    if name in ("bon", "sc", "wsc"):
        choose = {"bon": choose_best, "sc": choose_majority, "wsc": choose_weighted}[name]
        return FixedN(name, n_max, choose)
    if name in ("optscale0", "optscalet"):
        if name == "optscalet" and prior is None:
            raise InvalidArgumentError("prior", None, "optscalet needs a prior (mu_bar, sigma_bar)")
        prior_first = prior_first is True and name == "optscalet"
        if prior_first and initial is not None:
            raise InvalidArgumentError("initial", initial, "prior_first sets the first dispatch")
        default = 1 if prior_first else math.ceil(n_max / 3)
        init = default if initial is None else int_at_least("initial", initial, 1)
        return OptScale(
            name,
            n_max,
            choose_best,
            alpha=validate_alpha(alpha),
            s_min=validate_s_min(s_min),
            bounds=bounds or Bounds(),
            prior=prior if name == "optscalet" else None,
            initial=min(init, n_max),
            prior_first=prior_first,
            pace=_pace(pace),
        )
    if name == "esc":
        return EarlyStoppingSC(name, n_max, choose_majority, int_at_least("window", window, 1))
    if name == "asc":
        if not (math.isfinite(threshold) and 0.5 <= threshold < 1.0):
            raise InvalidArgumentError("threshold", threshold, "must be in [0.5, 1)")
        return AdaptiveConsistency(
            name, n_max, choose_majority, threshold, int_at_least("batch", batch, 1)
        )
    if name == "dsc_prior":
        if prior is None:
            raise InvalidArgumentError("prior", None, "dsc_prior needs a prior (mu_bar, sigma_bar)")
        if isinstance(easy_mu, bool) or not isinstance(easy_mu, int | float):
            raise InvalidArgumentError("easy_mu", easy_mu, "must be a number")
        w = int_at_least("window", window, 1)
        return DifficultyAdaptiveSC(name, n_max, choose_majority, prior, float(easy_mu), w)
    if name == "mr_thinking":
        if not isinstance(stop_when_unchanged, bool):
            raise InvalidArgumentError("stop_when_unchanged", stop_when_unchanged, "true or false")
        return MultiRoundThinking(name, n_max, choose_last, stop_when_unchanged)
    if name == "oracle":
        return Oracle(name, n_max, choose_best, target_answer)
    raise InvalidArgumentError("policy", name, f"must be one of {', '.join(POLICY_NAMES)}, dsc")


def _pace(pace: object) -> float:
    if isinstance(pace, bool) or not isinstance(pace, int | float):
        raise InvalidArgumentError("pace", pace, "must be a number in (0, 1]")
    if not (math.isfinite(pace) and 0.0 < pace <= 1.0):
        raise InvalidArgumentError("pace", pace, "must be in (0, 1]")
    return float(pace)
