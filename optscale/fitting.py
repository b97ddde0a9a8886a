"""Bounded fits of the truncated normal: maximum likelihood, MAP, and moment matching.

Fits are bounded (:class:`Bounds`): the unbounded MLE of a question whose scores all sit near 1
runs ``mu`` off to 30-50 (the reference implementation's failure); ours stays in the box.
All-equal scores drive sigma to ``bounds.sigma_lo`` (the likelihood grows without limit as sigma
shrinks); with no scores the MLE is the (clipped) start and the MAP the (clipped) prior mean.
The MLE's objective has one local maximum in the box; the MAP's can have several, so
:func:`fit_map` starts the ascent from several points and keeps the highest end point.

The optimizer is a projected Newton method with backtracking on analytic derivatives. The
Hessian comes from the exponential-family form: with natural parameters
``eta = (mu / sigma^2, -1 / (2 sigma^2))`` the log-likelihood is
``eta . (s1, s2) - n A(eta)``, whose derivatives are moments of the truncated normal (from
:mod:`optscale.truncnorm`). A coordinate on its bound whose gradient pushes outward is held fixed
(active set); where the Hessian is not negative definite a diagonally scaled gradient step is
taken instead. A 2-D fit takes tens of microseconds, so the controller can refit after every
score.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from optscale.errors import InvalidArgumentError
from optscale.truncnorm import _LOG_SQRT_2PI, SuffStats, _moments, validate_score

__all__ = [
    "DEFAULT_TAU_MU",
    "DEFAULT_TAU_SIGMA",
    "MIN_TAU",
    "Bounds",
    "Fit",
    "GaussianPrior",
    "fit_map",
    "fit_mle",
    "moment_match",
]


# --------------------------------------------------------------------------- data types


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


MIN_TAU = 1e-6
# Prior widths when the predictor measured none (a checkpoint records its dev RMSE instead).
DEFAULT_TAU_MU = 0.1
DEFAULT_TAU_SIGMA = 0.05


@dataclass(frozen=True, slots=True)
class GaussianPrior:
    """Independent Gaussian priors on mu and sigma (OptScale^t's predicted parameters).

    ``tau_mu`` / ``tau_sigma`` are the prior standard deviations (the predictor's error). Below
    :data:`MIN_TAU` the prior's curvature (``1 / tau^2 >= 1e12``) swamps any realistic number
    of scores at float precision, so the "fit" is the prior mean whatever the scores say: such
    a tau is refused (a mistake, e.g. a variance or a percentage in the wrong unit), as are
    non-finite values and ``sigma_bar <= 0``."""

    mu_bar: float
    sigma_bar: float
    tau_mu: float = DEFAULT_TAU_MU
    tau_sigma: float = DEFAULT_TAU_SIGMA

    def __post_init__(self) -> None:
        for name in ("mu_bar", "sigma_bar", "tau_mu", "tau_sigma"):
            if not math.isfinite(getattr(self, name)):
                raise InvalidArgumentError(name, getattr(self, name), "must be finite")
        if self.sigma_bar <= 0.0:
            raise InvalidArgumentError("sigma_bar", self.sigma_bar, "must be > 0")
        for name in ("tau_mu", "tau_sigma"):
            if getattr(self, name) < MIN_TAU:
                why = f"a prior standard deviation must be >= {MIN_TAU:g}"
                raise InvalidArgumentError(name, getattr(self, name), why)


@dataclass(frozen=True, slots=True)
class Fit:
    """Result of a fit: parameters, objective value (log-likelihood or log-posterior)."""

    mu: float
    sigma: float
    loglik: float
    iterations: int
    converged: bool


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
    """Bounded MAP (mu, sigma) with independent Gaussian priors: the global mode of the
    log-posterior in the box; ``loglik`` is the log-posterior (up to a constant). With no scores
    it returns the prior mean, clipped to the bounds; with ``init`` only that start is tried.

    Unlike the likelihood (concave in the natural parameters, and the box is convex there, so
    every local maximum is global), the posterior can have several modes: a prior that
    conflicts with few scores gives a spike at small sigma around the scores and a broad mode
    between them and the prior, and a Newton step from one start may land in the lower one.
    So the local ascent starts from the data (sample mean and std), the prior mean and the
    highest local maxima of the log-posterior on a coarse grid over the box (:data:`GRID_MU` x
    :data:`GRID_SIGMA`, log-spaced in sigma), and the highest end point wins. About twice the
    cost of one ascent per start; the MLE needs one start."""
    if init is not None or st.n == 0:
        return _maximize(st, prior, bounds, init)
    best: Fit | None = None
    for start in _starts(st, prior, bounds):
        fit = _maximize(st, prior, bounds, start)
        if best is None or fit.loglik > best.loglik:
            best = fit
    assert best is not None
    return best


GRID_MU = 13
GRID_SIGMA = 12
GRID_PEAKS = 3


def _starts(st: SuffStats, prior: GaussianPrior, bounds: Bounds) -> list[tuple[float, float]]:
    """Distinct starting points for :func:`fit_map`: data, prior mean, grid peaks."""
    out: list[tuple[float, float]] = []
    for p in ((st.mean, st.std), (prior.mu_bar, prior.sigma_bar), *_grid_peaks(st, prior, bounds)):
        c = bounds.clip(*p)
        if c not in out:
            out.append(c)
    return out


def _grid_peaks(st: SuffStats, prior: GaussianPrior, bounds: Bounds) -> list[tuple[float, float]]:
    """The :data:`GRID_PEAKS` highest local maxima (no higher among the 8 neighbours) of the
    log-posterior on the coarse grid: one start in every basin wide enough to hold a peak."""
    n, s1, s2 = st.n, st.s1, st.s2
    mb, sb = prior.mu_bar, prior.sigma_bar
    wm, ws = 0.5 / (prior.tau_mu * prior.tau_mu), 0.5 / (prior.tau_sigma * prior.tau_sigma)
    mus, rows = _grid(bounds)
    prior_mu = [(mu - mb) * (mu - mb) * wm for mu in mus]
    data_mu = [(s2 - 2.0 * mu * s1 + n * mu * mu) for mu in mus]
    f = [
        [
            -n * c - q * w - pm - (sigma - sb) * (sigma - sb) * ws
            for c, q, pm in zip(cs, data_mu, prior_mu, strict=True)
        ]
        for sigma, w, cs in rows
    ]
    peaks = []
    last = len(mus) - 1
    for j, row in enumerate(f):
        near = f[max(j - 1, 0) : j + 2]
        for i, v in enumerate(row):
            if (i > 0 and row[i - 1] > v) or (i < last and row[i + 1] > v):
                continue  # not a peak along mu: the common case, decided cheaply
            lo, hi = max(i - 1, 0), i + 2
            if all(v >= max(r[lo:hi]) for r in near):
                peaks.append((v, mus[i], rows[j][0]))
    peaks.sort(reverse=True)
    return [(mu, sigma) for _, mu, sigma in peaks[:GRID_PEAKS]]


@functools.lru_cache(maxsize=16)
def _grid(
    bounds: Bounds,
) -> tuple[tuple[float, ...], tuple[tuple[float, float, tuple[float, ...]], ...]]:
    """The coarse grid: mu values, and per sigma (log-spaced) ``(sigma, 1 / (2 sigma^2), c)``
    with ``c[i] = log sigma + log sqrt(2 pi) + log Z(mu_i, sigma)``, the data-independent
    per-score part of the negative log-likelihood."""
    span, r = bounds.mu_hi - bounds.mu_lo, math.log(bounds.sigma_hi / bounds.sigma_lo)
    mus = tuple(bounds.mu_lo + span * (i + 0.5) / GRID_MU for i in range(GRID_MU))
    rows = []
    for j in range(GRID_SIGMA):
        sigma = bounds.sigma_lo * math.exp(r * (j + 0.5) / GRID_SIGMA)
        c = math.log(sigma) + _LOG_SQRT_2PI
        rows.append((sigma, 0.5 / (sigma * sigma), tuple(c + _moments(m, sigma)[0] for m in mus)))
    return mus, tuple(rows)


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
