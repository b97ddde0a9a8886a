"""The OptScale statistics core: a normal truncated to [0, 1], its fits, and the bound N*.

Pure functions on Python floats (``math`` only): a 2-D fit takes tens of microseconds, so the
controller can refit after every score. No I/O, no numpy in the hot path.

Model: verifier scores ``s`` of one question are i.i.d. ``N(mu, sigma^2)`` truncated to
``[0, 1]``. The log-likelihood depends on the scores only through the sufficient statistics
``n, s1 = sum s, s2 = sum s^2`` (:class:`SuffStats`), which is also what the controller keeps in
Redis. Fits are bounded (:class:`Bounds`): the unbounded MLE of a question whose scores all sit
near 1 runs ``mu`` off to 30-50 (the reference implementation's failure); ours stays in the box.

The optimizer is a projected Newton method with backtracking on analytic derivatives. The
Hessian comes from the exponential-family form: with natural parameters
``eta = (mu / sigma^2, -1 / (2 sigma^2))`` the log-likelihood is
``eta . (s1, s2) - n A(eta)``, whose derivatives are moments of the truncated normal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from optscale.errors import InvalidArgumentError, InvalidScoreError

__all__ = [
    "Bounds",
    "Fit",
    "GaussianPrior",
    "SuffStats",
    "fit_map",
    "fit_mle",
    "log_ndtr",
    "loglik",
    "loglik_grad",
    "moment_match",
    "n_star",
    "trunc_cdf",
    "truncnorm_moments",
    "validate_alpha",
    "validate_s_min",
    "validate_score",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT1_2 = math.sqrt(0.5)


# --------------------------------------------------------------------------- validation


def validate_score(x: float) -> float:
    """Return ``x`` as a float if it is a finite score in [0, 1], else raise InvalidScoreError."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvalidScoreError(x, "scores must be numbers in [0, 1]") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise InvalidScoreError(x)
    return v


def _validate_open_unit(name: str, x: float) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvalidArgumentError(name, x, "must be a number in (0, 1)") from None
    if not (math.isfinite(v) and 0.0 < v < 1.0):
        raise InvalidArgumentError(name, x, "must be in the open interval (0, 1)")
    return v


def validate_alpha(alpha: float) -> float:
    """``alpha`` is the probability that N* samples contain one scoring above ``s_min``."""
    return _validate_open_unit("alpha", alpha)


def validate_s_min(s_min: float) -> float:
    """``s_min`` is the score a sample must exceed to count as good enough."""
    return _validate_open_unit("s_min", s_min)


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True, slots=True)
class SuffStats:
    """Sufficient statistics of scores in [0, 1]: count, sum, sum of squares, min, max."""

    n: int = 0
    s1: float = 0.0
    s2: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, score: float) -> SuffStats:
        s = validate_score(score)
        return SuffStats(
            self.n + 1, self.s1 + s, self.s2 + s * s, min(self.lo, s), max(self.hi, s)
        )

    @classmethod
    def of(cls, scores: Iterable[float]) -> SuffStats:
        n, s1, s2, lo, hi = 0, 0.0, 0.0, math.inf, -math.inf
        for x in scores:
            s = validate_score(x)
            n += 1
            s1 += s
            s2 += s * s
            lo = min(lo, s)
            hi = max(hi, s)
        return cls(n, s1, s2, lo, hi)

    @property
    def mean(self) -> float:
        return self.s1 / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (ddof = 0), never negative."""
        if not self.n:
            return math.nan
        m = self.s1 / self.n
        return math.sqrt(max(self.s2 / self.n - m * m, 0.0))


@dataclass(frozen=True, slots=True)
class Bounds:
    """Box for (mu, sigma). Keeps fits of all-high or all-equal scores finite."""

    mu_lo: float = -1.0
    mu_hi: float = 2.0
    sigma_lo: float = 1e-3
    sigma_hi: float = 10.0

    def __post_init__(self) -> None:
        vals = (self.mu_lo, self.mu_hi, self.sigma_lo, self.sigma_hi)
        if not all(math.isfinite(v) for v in vals):
            raise InvalidArgumentError("bounds", self, "must be finite")
        if not (self.mu_lo < self.mu_hi and 0.0 < self.sigma_lo < self.sigma_hi):
            raise InvalidArgumentError(
                "bounds", self, "need mu_lo < mu_hi and 0 < sigma_lo < sigma_hi"
            )

    def clip(self, mu: float, sigma: float) -> tuple[float, float]:
        return (
            min(max(mu, self.mu_lo), self.mu_hi),
            min(max(sigma, self.sigma_lo), self.sigma_hi),
        )


@dataclass(frozen=True, slots=True)
class GaussianPrior:
    """Independent Gaussian priors on mu and sigma (OptScale^t's predicted parameters)."""

    mu_bar: float
    sigma_bar: float
    tau_mu: float = 0.1
    tau_sigma: float = 0.05

    def __post_init__(self) -> None:
        for name in ("mu_bar", "sigma_bar", "tau_mu", "tau_sigma"):
            if not math.isfinite(getattr(self, name)):
                raise InvalidArgumentError(name, getattr(self, name), "must be finite")
        if self.sigma_bar <= 0.0:
            raise InvalidArgumentError("sigma_bar", self.sigma_bar, "must be > 0")
        if self.tau_mu <= 0.0 or self.tau_sigma <= 0.0:
            raise InvalidArgumentError(
                "tau", (self.tau_mu, self.tau_sigma), "prior standard deviations must be > 0"
            )


@dataclass(frozen=True, slots=True)
class Fit:
    """Result of a fit: parameters, objective value (log-likelihood or log-posterior)."""

    mu: float
    sigma: float
    loglik: float
    iterations: int
    converged: bool


# --------------------------------------------------------------------------- normal tails


def log_ndtr(x: float) -> float:
    """log Phi(x), accurate in both tails (erfc above -35, asymptotic series below)."""
    if x > 5.0:
        return math.log1p(-0.5 * math.erfc(x * _SQRT1_2))
    if x > -35.0:
        return math.log(0.5 * math.erfc(-x * _SQRT1_2))
    z2 = 1.0 / (x * x)
    series = 1.0 - z2 * (1.0 - 3.0 * z2 * (1.0 - 5.0 * z2 * (1.0 - 7.0 * z2)))
    return -0.5 * x * x - math.log(-x) - _LOG_SQRT_2PI + math.log(series)


def _log1mexp(d: float) -> float:
    """log(1 - exp(d)) for d <= 0."""
    if d >= 0.0:
        return -math.inf
    if d > -0.6931471805599453:
        return math.log(-math.expm1(d))
    return math.log1p(-math.exp(d))


def _log_phi_diff(lo: float, hi: float) -> float:
    """log(Phi(hi) - Phi(lo)) for lo < hi, without cancellation in either tail."""
    if lo >= hi:
        return -math.inf
    if hi - lo < 1e-7:  # midpoint rule; error O((hi - lo)^2), far below float noise here
        return math.log(hi - lo) + _log_pdf(0.5 * (lo + hi))
    if lo > 0.0:  # both in the upper tail: Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi)
        a, b = log_ndtr(-lo), log_ndtr(-hi)
    else:
        a, b = log_ndtr(hi), log_ndtr(lo)
    return a + _log1mexp(b - a)


def _log_pdf(x: float) -> float:
    return -0.5 * x * x - _LOG_SQRT_2PI


# --------------------------------------------------------------------------- likelihood


def _check_params(mu: float, sigma: float) -> None:
    if not (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0.0):
        raise InvalidArgumentError("(mu, sigma)", (mu, sigma), "need finite mu and sigma > 0")


def loglik(mu: float, sigma: float, st: SuffStats) -> float:
    """Log-likelihood of (mu, sigma) for the scores summarised by ``st``."""
    _check_params(mu, sigma)
    n = st.n
    if n == 0:
        return 0.0
    q = st.s2 - 2.0 * mu * st.s1 + n * mu * mu
    log_z = _log_phi_diff(-mu / sigma, (1.0 - mu) / sigma)
    return -n * (math.log(sigma) + _LOG_SQRT_2PI + log_z) - q / (2.0 * sigma * sigma)


def loglik_grad(mu: float, sigma: float, st: SuffStats) -> tuple[float, float]:
    """Analytic gradient (d/dmu, d/dsigma) of :func:`loglik`."""
    _check_params(mu, sigma)
    n = st.n
    if n == 0:
        return 0.0, 0.0
    a, b = -mu / sigma, (1.0 - mu) / sigma
    log_z = _log_phi_diff(a, b)
    ra = math.exp(_log_pdf(a) - log_z)
    rb = math.exp(_log_pdf(b) - log_z)
    q = st.s2 - 2.0 * mu * st.s1 + n * mu * mu
    s2_ = sigma * sigma
    d_mu = (st.s1 - n * mu) / s2_ - n * (ra - rb) / sigma
    d_sigma = -n / sigma + q / (s2_ * sigma) - n * (a * ra - b * rb) / sigma
    return d_mu, d_sigma


def _moments(mu: float, sigma: float) -> tuple[float, float, float, float, float]:
    """(log Z, E x, E x^2, E x^3, E x^4) of N(mu, sigma) truncated to [0, 1]."""
    a, b = -mu / sigma, (1.0 - mu) / sigma
    log_z = _log_phi_diff(a, b)
    ra = math.exp(_log_pdf(a) - log_z) if math.isfinite(log_z) else 0.0
    rb = math.exp(_log_pdf(b) - log_z) if math.isfinite(log_z) else 0.0
    # Moments of the standardised variable Y on [a, b]: E Y^k = (k-1) E Y^(k-2) - [y^(k-1) r].
    y1 = ra - rb
    y2 = 1.0 + a * ra - b * rb
    y3 = 2.0 * y1 + a * a * ra - b * b * rb
    y4 = 3.0 * y2 + a * a * a * ra - b * b * b * rb
    s, m = sigma, mu
    e1 = m + s * y1
    e2 = m * m + 2.0 * m * s * y1 + s * s * y2
    mm, ss = m * m, s * s
    e3 = mm * m + 3.0 * mm * s * y1 + 3.0 * m * ss * y2 + ss * s * y3
    e4 = mm * mm + 4.0 * mm * m * s * y1 + 6.0 * mm * ss * y2 + 4.0 * m * ss * s * y3 + ss * ss * y4
    # Clamp into the support: a distribution on [0, 1] has 0 <= E x^k <= E x^(k-1).
    e1 = min(max(e1, 0.0), 1.0)
    e2 = min(max(e2, e1 * e1), e1)
    e3 = min(max(e3, 0.0), e2)
    e4 = min(max(e4, e2 * e2), e3)
    return log_z, e1, e2, e3, e4


def truncnorm_moments(mu: float, sigma: float) -> tuple[float, float]:
    """Mean and standard deviation of N(mu, sigma) truncated to [0, 1]."""
    _check_params(mu, sigma)
    _, e1, e2, _, _ = _moments(mu, sigma)
    return e1, math.sqrt(max(e2 - e1 * e1, 0.0))


def trunc_cdf(x: float, mu: float, sigma: float) -> float:
    """CDF at ``x`` of N(mu, sigma) truncated to [0, 1]."""
    _check_params(mu, sigma)
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return math.exp(_log_trunc_cdf(x, mu, sigma))


def _log_trunc_cdf(x: float, mu: float, sigma: float) -> float:
    a, xs, b = -mu / sigma, (x - mu) / sigma, (1.0 - mu) / sigma
    log_z = _log_phi_diff(a, b)
    log_below = _log_phi_diff(a, xs) - log_z
    log_above = _log_phi_diff(xs, b) - log_z
    if log_above < -0.6931471805599453:  # F > 1/2: log F = log1p(-(1 - F)), precise near 1
        return math.log1p(-math.exp(log_above))
    return min(log_below, 0.0)


# --------------------------------------------------------------------------- fits


def _objective(
    mu: float, sigma: float, st: SuffStats, prior: GaussianPrior | None
) -> tuple[float, float, float, float, float, float]:
    """Value, gradient and Hessian (h_mm, h_ms, h_ss) of the log-likelihood (+ log prior)."""
    n = st.n
    log_z, e1, e2, e3, e4 = _moments(mu, sigma)
    s2_ = sigma * sigma
    q = st.s2 - 2.0 * mu * st.s1 + n * mu * mu
    f = -n * (math.log(sigma) + _LOG_SQRT_2PI + log_z) - q / (2.0 * s2_)
    # Natural-parameter form: eta1 = mu / sigma^2, eta2 = -1 / (2 sigma^2).
    g1 = st.s1 - n * e1  # dL/deta1
    g2 = st.s2 - n * e2  # dL/deta2
    v11 = e2 - e1 * e1
    v12 = e3 - e1 * e2
    v22 = e4 - e2 * e2
    s3 = s2_ * sigma
    s4 = s2_ * s2_
    j11, j12 = 1.0 / s2_, -2.0 * mu / s3  # d eta1 / d(mu, sigma)
    j22 = 1.0 / s3  # d eta2 / d sigma (d eta2 / d mu = 0)
    d_mu = g1 * j11
    d_sigma = g1 * j12 + g2 * j22
    # J^T (-n V) J + sum_k g_k * (second derivatives of eta_k)
    h_mm = -n * v11 * j11 * j11
    h_ms = -n * (v11 * j11 * j12 + v12 * j11 * j22) + g1 * (-2.0 / s3)
    h_ss = (
        -n * (v11 * j12 * j12 + 2.0 * v12 * j12 * j22 + v22 * j22 * j22)
        + g1 * (6.0 * mu / s4)
        + g2 * (-3.0 / s4)
    )
    if prior is not None:
        dm, ds = mu - prior.mu_bar, sigma - prior.sigma_bar
        tm, ts = prior.tau_mu * prior.tau_mu, prior.tau_sigma * prior.tau_sigma
        f -= 0.5 * (dm * dm / tm + ds * ds / ts)
        d_mu -= dm / tm
        d_sigma -= ds / ts
        h_mm -= 1.0 / tm
        h_ss -= 1.0 / ts
    return f, d_mu, d_sigma, h_mm, h_ms, h_ss


def _maximize(
    st: SuffStats,
    prior: GaussianPrior | None,
    bounds: Bounds,
    init: tuple[float, float] | None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> Fit:
    if init is None:
        if st.n:
            init = (st.mean, st.std)
        elif prior is not None:
            init = (prior.mu_bar, prior.sigma_bar)
        else:
            init = (0.5, 0.25)
    mu, sigma = bounds.clip(*init)
    if not (math.isfinite(mu) and math.isfinite(sigma)):
        raise InvalidArgumentError("init", init, "must be finite")
    if st.n == 0 and prior is None:
        return Fit(mu, sigma, 0.0, 0, True)
    lo = (bounds.mu_lo, bounds.sigma_lo)
    hi = (bounds.mu_hi, bounds.sigma_hi)
    f, gm, gs, hmm, hms, hss = _objective(mu, sigma, st, prior)
    for it in range(1, max_iter + 1):
        snapped = _snap_to_bounds(mu, sigma, (gm, gs, hmm, hms, hss), lo, hi)
        if snapped is not None:
            new = _objective(snapped[0], snapped[1], st, prior)
            if new[0] >= f:  # keep the iteration monotone
                mu, sigma = snapped
                f, gm, gs, hmm, hms, hss = new
        x = (mu, sigma)
        g = (gm, gs)
        # Active set: a coordinate on its bound whose gradient pushes outward stays fixed.
        free = [
            not ((x[i] <= lo[i] and g[i] < 0.0) or (x[i] >= hi[i] and g[i] > 0.0))
            for i in (0, 1)
        ]
        if free[0] and free[1]:
            det = hmm * hss - hms * hms
            if hmm < 0.0 and det > 0.0:  # negative definite: Newton step
                d = ((-hss * gm + hms * gs) / det, (hms * gm - hmm * gs) / det)
            else:
                d = _scaled_ascent(g, (hmm, hss), x)
        elif free[0]:
            d = (-gm / hmm if hmm < 0.0 else _scaled_ascent(g, (hmm, hss), x)[0], 0.0)
        elif free[1]:
            d = (0.0, -gs / hss if hss < 0.0 else _scaled_ascent(g, (hmm, hss), x)[1])
        else:
            return Fit(mu, sigma, f, it - 1, True)
        t = 1.0
        accepted = False
        for _ in range(40):
            nm = min(max(mu + t * d[0], lo[0]), hi[0])
            ns = min(max(sigma + t * d[1], lo[1]), hi[1])
            step = (nm - mu) * gm + (ns - sigma) * gs
            if nm == mu and ns == sigma:
                break
            new = _objective(nm, ns, st, prior)
            if new[0] >= f + 1e-4 * step:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            return Fit(mu, sigma, f, it, True)  # no ascent possible at float precision
        moved = abs(nm - mu) + abs(ns - sigma)
        mu, sigma = nm, ns
        f_old = f
        f, gm, gs, hmm, hms, hss = new
        if moved <= tol * (1.0 + abs(mu) + sigma) or abs(f - f_old) <= 1e-13 * (1.0 + abs(f)):
            return Fit(mu, sigma, f, it, True)
    return Fit(mu, sigma, f, max_iter, False)


def _snap_to_bounds(
    mu: float,
    sigma: float,
    derivs: tuple[float, float, float, float, float],
    lo: tuple[float, float],
    hi: tuple[float, float],
) -> tuple[float, float] | None:
    """Where the Newton step crosses a bound that the gradient pushes against, put that
    coordinate on the bound, so the active set is found in one step, not by creeping."""
    gm, gs, hmm, hms, hss = derivs
    det = hmm * hss - hms * hms
    if not (hmm < 0.0 and det > 0.0):
        return None
    d = ((-hss * gm + hms * gs) / det, (hms * gm - hmm * gs) / det)
    x, g = [mu, sigma], (gm, gs)
    changed = False
    for i in (0, 1):
        if x[i] + d[i] > hi[i] and g[i] > 0.0 and x[i] < hi[i]:
            x[i], changed = hi[i], True
        elif x[i] + d[i] < lo[i] and g[i] < 0.0 and x[i] > lo[i]:
            x[i], changed = lo[i], True
    return (x[0], x[1]) if changed else None


def _scaled_ascent(
    g: tuple[float, float], h: tuple[float, float], x: tuple[float, float]
) -> tuple[float, float]:
    """Diagonally scaled gradient step, used where the Hessian is not negative definite."""
    out = []
    for gi, hi_, xi in zip(g, h, x, strict=True):
        scale = 1.0 / -hi_ if hi_ < 0.0 else 0.1 * (abs(xi) + 0.1) / (abs(gi) + 1e-300)
        out.append(gi * scale)
    return out[0], out[1]


def fit_mle(
    st: SuffStats, bounds: Bounds = Bounds(), init: tuple[float, float] | None = None
) -> Fit:
    """Bounded maximum-likelihood (mu, sigma); starts from the sample mean/std by default.

    ``n == 0`` returns the (clipped) start with ``loglik = 0``; all-equal scores drive sigma to
    ``bounds.sigma_lo`` (the likelihood grows without limit as sigma shrinks).
    """
    return _maximize(st, None, bounds, init)


def fit_map(
    st: SuffStats,
    prior: GaussianPrior,
    bounds: Bounds = Bounds(),
    init: tuple[float, float] | None = None,
) -> Fit:
    """Bounded MAP (mu, sigma) with independent Gaussian priors; ``loglik`` is the log-posterior
    (up to a constant). With no scores it returns the prior mean, clipped to the bounds.

    The posterior can have two modes (few scores: a spike at sigma -> 0 around them, and one
    near the prior), so without ``init`` both the data and the prior start are tried."""
    if init is not None or st.n == 0:
        return _maximize(st, prior, bounds, init)
    from_data = _maximize(st, prior, bounds, None)
    from_prior = _maximize(st, prior, bounds, (prior.mu_bar, prior.sigma_bar))
    return from_prior if from_prior.loglik > from_data.loglik else from_data


def moment_match(mean: float, std: float, bounds: Bounds = Bounds()) -> tuple[float, float]:
    """(mu, sigma) whose truncated normal on [0, 1] has this mean and standard deviation.

    The truncated normal is an exponential family in (x, x^2), so matching E x and E x^2 is the
    maximum-likelihood fit of the sufficient statistics ``(1, mean, mean^2 + std^2)``. Moments
    no truncated normal inside ``bounds`` can reach (std about 0, or more spread than the box
    allows) give the closest parameters on the boundary.
    """
    m = validate_score(mean)
    if not (math.isfinite(std) and 0.0 <= std <= 0.5):
        raise InvalidArgumentError("std", std, "must be finite and in [0, 0.5]")
    st = SuffStats(1, m, min(m * m + std * std, m if m > 0 else 0.0), m, m)
    fit = _maximize(st, None, bounds, (m, max(std, bounds.sigma_lo)), max_iter=200)
    return fit.mu, fit.sigma


# --------------------------------------------------------------------------- the bound


def n_star(alpha: float, s_min: float, mu: float, sigma: float, n_max: int) -> int:
    """``N* = ceil(log(1 - alpha) / log F(s_min))``, clipped to ``[1, n_max]``.

    ``F`` is the truncated-normal CDF: with N* samples, at least one scores above ``s_min`` with
    probability ``alpha``. ``F = 1`` (no sample can pass) gives ``n_max``; ``F = 0`` gives 1.
    """
    a = validate_alpha(alpha)
    s = validate_s_min(s_min)
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 1:
        raise InvalidArgumentError("n_max", n_max, "must be an integer >= 1")
    _check_params(mu, sigma)
    log_f = _log_trunc_cdf(s, mu, sigma)
    if log_f >= 0.0:
        return n_max
    if log_f == -math.inf:
        return 1
    ratio = math.log1p(-a) / log_f
    if not math.isfinite(ratio) or ratio >= n_max:
        return n_max
    return max(1, min(n_max, math.ceil(ratio - 1e-9)))
