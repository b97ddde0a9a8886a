"""Beyond the paper: a Bayesian stopping rule priced in tokens, and a hybrid with the bound and
answer agreement.

**P(correct | score).** A verifier score is not a probability of being right. A logistic
curve ``g(s) = 1 / (1 + exp(-(a + b s)))`` fitted on the dev split's samples (maximum
likelihood, :meth:`CorrectnessModel.fit`) maps a score to P(correct); it is stored with the
params.

**Bayesian stop (``bayes``).** The question's scores are modelled as the truncated normal
TN(mu, sigma) on [0, 1] of the paper, fitted by MAP around a prior (the predicted prior when
given, else a weak default, so one score suffices). With best score ``b`` so far, one more
sample ``S`` changes the answer only if ``S > b``; the expected gain in P(correct) of the
chosen answer is

    gain(b) = E[max(g(S), g(b))] - g(b) = integral_b^1 (g(s) - g(b)) f(s) ds

(f the fitted density; computed by 64-point Gauss-Legendre on [b, 1]). Stop when
``gain(b) < price * E[tokens of one sample]`` (the mean of the scored samples so far; with none
yet, always sample): the myopic, Pandora's-box rule, optimal for i.i.d. draws from a known
distribution. ``price`` (P(correct) per token) is the one parameter, chosen on dev. Waves:
``wave`` samples are kept in flight (default 1, the fewest tokens).

**Hybrid (``hybrid``).** Stops at whichever comes first of: the OptScale bound (N* reached,
``alpha``, ``s_min``), the Bayesian rule, or answer agreement — the ASC-style Beta test on the
score-weighted vote: P(X > 1/2) for X ~ Beta(w1 + 1, w2 + 1), with w1, w2 the score sums of the
two leading answers, above ``threshold``. Selection: best score (``select="best"``) or the
weighted vote (``select="vote"``), chosen on dev. No initial batch: the first wave is ``wave``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from optscale.errors import InvalidArgumentError
from optscale.fitting import Bounds, Fit, GaussianPrior, fit_map
from optscale.policies import _Base
from optscale.question_state import (
    Chosen,
    Decision,
    QuestionState,
    choose_best,
    choose_weighted,
    top_votes,
)
from optscale.stats import n_star, validate_alpha, validate_s_min

__all__ = [
    "BAYES_POLICIES",
    "DEFAULT_BAYES_PRIOR",
    "BayesStop",
    "CorrectnessModel",
    "Hybrid",
    "expected_gain",
    "make_bayes_policy",
    "weighted_agreement",
]

# The prior for questions without a predicted one: mu weak (centred, wide), sigma held near
# 0.2 until the scores say otherwise — a looser sigma prior lets one or two scores collapse the
# fit to sigma ~ 0, which says "no sample will ever beat this one" after a single draw.
DEFAULT_BAYES_PRIOR = GaussianPrior(0.5, 0.2, tau_mu=0.5, tau_sigma=0.05)

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)
_GL_X: tuple[float, ...] = tuple(float(x) for x in _NODES)
_GL_W: tuple[float, ...] = tuple(float(w) for w in _WEIGHTS)


@dataclass(frozen=True, slots=True)
class CorrectnessModel:
    """P(correct | score) = 1 / (1 + exp(-(a + b * score)))."""

    a: float = -4.0
    b: float = 8.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and math.isfinite(self.b)):
            raise InvalidArgumentError("p_correct", (self.a, self.b), "must be finite")

    def p(self, score: float) -> float:
        z = self.a + self.b * score
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    @classmethod
    def fit(
        cls, scores: Sequence[float], correct: Sequence[bool], l2: float = 1e-3
    ) -> CorrectnessModel:
        """Maximum likelihood (Newton on the 2-parameter logistic, a tiny ridge keeps it finite
        when the classes separate)."""
        if len(scores) != len(correct) or not scores:
            raise InvalidArgumentError("scores", len(scores), "need as many labels, at least one")
        a, b = 0.0, 0.0
        for _ in range(50):
            ga, gb = -l2 * a, -l2 * b
            haa = hab = hbb = l2
            for s, y in zip(scores, correct, strict=True):
                p = cls(a, b).p(s)
                r = float(y) - p
                ga += r
                gb += r * s
                w = p * (1.0 - p)
                haa += w
                hab += w * s
                hbb += w * s * s
            det = haa * hbb - hab * hab
            if det <= 0:
                break
            da = (hbb * ga - hab * gb) / det
            db = (haa * gb - hab * ga) / det
            a, b = a + da, b + db
            if abs(da) + abs(db) < 1e-10:
                break
        return cls(a, b)


def _tn_pdf(s: float, mu: float, sigma: float, z: float) -> float:
    return math.exp(-0.5 * ((s - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi) * z)


def _phi_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def expected_gain(best: float, mu: float, sigma: float, g: CorrectnessModel) -> float:
    """E[max(g(S), g(best))] - g(best) for S ~ TN(mu, sigma) on [0, 1]."""
    if best >= 1.0:
        return 0.0
    lo = max(0.0, best)
    z = _phi_cdf((1.0 - mu) / sigma) - _phi_cdf(-mu / sigma)
    if z <= 1e-300:
        return 0.0
    gb = g.p(best) if best > -math.inf else 0.0
    half = (1.0 - lo) / 2.0
    total = 0.0
    for x, w in zip(_GL_X, _GL_W, strict=True):
        s = lo + half * (x + 1.0)
        total += w * (g.p(s) - gb) * _tn_pdf(s, mu, sigma, z)
    return max(0.0, total * half)


def weighted_agreement(state: QuestionState) -> float:
    """P(X > 1/2), X ~ Beta(w1 + 1, w2 + 1): w1, w2 the score sums of the two leading answers."""
    top = top_votes(state, weighted=True)
    if not top:
        return 0.0
    w1 = top[0].score_sum
    w2 = top[1].score_sum if len(top) > 1 else 0.0
    # regularized incomplete beta I_{1/2}(w2 + 1, w1 + 1) = P(X > 1/2); scipy-free via lgamma
    return _beta_sf_half(w1 + 1.0, w2 + 1.0)


def _beta_sf_half(a: float, b: float) -> float:
    """P(X > 1/2) for X ~ Beta(a, b), by 64-point Gauss-Legendre on [1/2, 1] (a, b >= 1)."""
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    total = 0.0
    for x, w in zip(_GL_X, _GL_W, strict=True):
        t = 0.5 + 0.25 * (x + 1.0)
        total += w * math.exp(log_norm + (a - 1) * math.log(t) + (b - 1) * math.log1p(-t))
    return min(1.0, max(0.0, 0.25 * total))


@dataclass(frozen=True, slots=True)
class BayesStop(_Base):
    price: float = 1e-4  # P(correct) one token must buy
    p_correct: CorrectnessModel = CorrectnessModel()
    prior: GaussianPrior = DEFAULT_BAYES_PRIOR
    bounds: Bounds = Bounds()  # noqa: RUF009 (immutable)
    wave: int = 1

    def value(self, state: QuestionState, fit: Fit | None = None) -> float:
        """One more sample's expected gain per expected token (``inf`` with nothing scored or
        no tokens yet); ``fit``: the MAP fit of ``state`` when the caller has it already (one
        fit per decision)."""
        if state.n_scored == 0 or state.best is None or state.tokens <= 0:
            return math.inf
        if fit is None:
            fit = fit_map(state.stats, self.prior, self.bounds)
        gain = expected_gain(state.best.score, fit.mu, fit.sigma, self.p_correct)
        return gain / (state.tokens / state.n_scored)

    def worth_another(self, state: QuestionState, fit: Fit | None = None) -> bool:
        """Whether one more sample's expected gain is worth its tokens (``price`` each)."""
        return self.value(state, fit) >= self.price

    def _sample_or_stop(self, state: QuestionState, fit: Fit | None = None) -> Decision:
        v = self.value(state, fit)
        if v < self.price:
            return self._stop(state, "bayes")
        target = min(self.n_max, state.n_scored + self.wave)
        return Decision(False, target, None, "bayes: sample", priority=v)

    def step(self, state: QuestionState) -> Decision:
        return self._sample_or_stop(state)


@dataclass(frozen=True, slots=True)
class Hybrid(BayesStop):
    alpha: float = 0.9
    s_min: float = 0.95
    threshold: float = 0.95
    select: str = "best"

    def step(self, state: QuestionState) -> Decision:
        n = state.n_scored
        if n == 0:
            return self._sample_or_stop(state)
        if weighted_agreement(state) > self.threshold:
            return self._stop(state, "agreement")
        fit = fit_map(state.stats, self.prior, self.bounds)
        ns = n_star(self.alpha, self.s_min, fit.mu, fit.sigma, self.n_max)
        if n >= ns and ns < self.n_max:
            return self._stop(state, "bound", n_star=ns, fit=fit)
        return self._sample_or_stop(state, fit)


BAYES_POLICIES = ("bayes", "hybrid")


def make_bayes_policy(
    name: str,
    *,
    n_max: int,
    price: float = 1e-4,
    p_correct: CorrectnessModel | None = None,
    prior: GaussianPrior | None = None,
    wave: int = 1,
    alpha: float = 0.9,
    s_min: float = 0.95,
    threshold: float = 0.95,
    select: str = "best",
    bounds: Bounds | None = None,
) -> BayesStop:
    """``bayes`` or ``hybrid`` (called by :func:`optscale.policies.make_policy`)."""
    if not (math.isfinite(price) and price >= 0):
        raise InvalidArgumentError("price", price, "must be a number >= 0")
    if isinstance(wave, bool) or not isinstance(wave, int) or wave < 1:
        raise InvalidArgumentError("wave", wave, "must be an integer >= 1")
    choose: Callable[[QuestionState], Chosen | None]
    if select == "best":
        choose = choose_best
    elif select == "vote":
        choose = choose_weighted
    else:
        raise InvalidArgumentError("select", select, "one of best, vote")
    pc, pr, bd = p_correct or CorrectnessModel(), prior or DEFAULT_BAYES_PRIOR, bounds or Bounds()
    if name == "bayes":
        return BayesStop(name, n_max, choose, float(price), pc, pr, bd, wave)
    if name == "hybrid":
        if not (math.isfinite(threshold) and 0.5 <= threshold < 1.0):
            raise InvalidArgumentError("threshold", threshold, "must be in [0.5, 1)")
        a, sm = validate_alpha(alpha), validate_s_min(s_min)
        return Hybrid(name, n_max, choose, float(price), pc, pr, bd, wave, a, sm, threshold, select)
    raise InvalidArgumentError("policy", name, f"one of {', '.join(BAYES_POLICIES)}")
