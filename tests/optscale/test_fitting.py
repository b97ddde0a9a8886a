"""The bounded fits find the global maximum of their objective, checked by brute force.

The reference is an independent evaluation of the same objective (scipy's ``log_ndtr`` on a
dense grid over the default box, then L-BFGS-B polished from the best grid points). A fit may
only beat it (the grid is finite), never fall short of it.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special

from optscale.stats import Bounds, GaussianPrior, SuffStats, fit_map, fit_mle, loglik

_BOX = Bounds()


@functools.cache
def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, sigma, log sigma + log sqrt(2 pi) + log Z) on a 301 x 300 grid over the box."""
    mu, sigma = np.meshgrid(
        np.linspace(_BOX.mu_lo, _BOX.mu_hi, 301),
        np.geomspace(_BOX.sigma_lo, _BOX.sigma_hi, 300),
        indexing="ij",
    )
    a, b = -mu / sigma, (1.0 - mu) / sigma
    upper = a > 0.0  # both ends in the upper tail: reflect, Phi(b) - Phi(a) = Phi(-a) - Phi(-b)
    hi = np.where(upper, special.log_ndtr(-a), special.log_ndtr(b))
    lo = np.where(upper, special.log_ndtr(-b), special.log_ndtr(a))
    log_z = hi + np.log1p(-np.exp(lo - hi))
    return mu, sigma, np.log(sigma) + 0.5 * math.log(2.0 * math.pi) + log_z


def _log_prior(mu: float, sigma: float, prior: GaussianPrior | None) -> float:
    if prior is None:
        return 0.0
    return -0.5 * (
        (mu - prior.mu_bar) ** 2 / prior.tau_mu**2
        + (sigma - prior.sigma_bar) ** 2 / prior.tau_sigma**2
    )


def brute_max(s: SuffStats, prior: GaussianPrior | None, polish: int = 3) -> float:
    """Maximum of log-likelihood + log prior over the box: dense grid, then polished."""
    mu, sigma, c = _grid()
    f = -s.n * c - (s.s2 - 2.0 * mu * s.s1 + s.n * mu * mu) / (2.0 * sigma * sigma)
    if prior is not None:
        f -= 0.5 * (
            (mu - prior.mu_bar) ** 2 / prior.tau_mu**2
            + (sigma - prior.sigma_bar) ** 2 / prior.tau_sigma**2
        )
    f = np.nan_to_num(f, nan=-np.inf)
    best = float(f.max())
    for k in np.argsort(f, axis=None)[::-1][:polish]:
        i, j = np.unravel_index(k, f.shape)
        r = optimize.minimize(
            lambda p: -loglik(float(p[0]), float(p[1]), s) - _log_prior(p[0], p[1], prior),
            (float(mu[i, j]), float(sigma[i, j])),
            method="L-BFGS-B",
            bounds=[(_BOX.mu_lo, _BOX.mu_hi), (_BOX.sigma_lo, _BOX.sigma_hi)],
            options={"ftol": 1e-15, "gtol": 1e-12},
        )
        best = max(best, -float(r.fun))
    return best


def _close_or_above(got: float, want: float) -> bool:
    return got >= want - 1e-6 * (1.0 + abs(want))


@pytest.mark.parametrize(
    ("scores", "prior"),
    [
        # two high scores, a low prior: a spike at (0.987, 0.016) (N* = 1) and a higher broad
        # mode near (0.52, 0.205) (N* = N_max)
        ([0.9798, 1.0], GaussianPrior(0.3, 0.1)),
        # an easy-question prior, four scores near 0
        ([0.0014, 0.0055, 0.0132, 0.0015], GaussianPrior(0.99, 0.1)),
        # two modes of nearly equal height: the coarse grid's best point sits in the lower one
        (
            [0.0101, 0.0899, 0.0023, 0.0275, 0.0085, 0.0328, 0.0441, 0.0129],
            GaussianPrior(0.83, 0.1, 0.1, 0.1),
        ),
        (
            [0.0384, 0.0553, 0.0459, 0.0379, 0.0333, 0.0058, 0.1064, 0.01, 0.0038, 0.023],
            GaussianPrior(0.91, 0.08, 0.1, 0.3),
        ),
    ],
)
def test_map_is_the_global_mode_on_two_mode_posteriors(
    scores: list[float], prior: GaussianPrior
) -> None:
    s = SuffStats.of(scores)
    fit = fit_map(s, prior)
    want = brute_max(s, prior)
    assert _close_or_above(fit.loglik, want), (fit, want)
    assert fit.loglik == pytest.approx(
        loglik(fit.mu, fit.sigma, s) + _log_prior(fit.mu, fit.sigma, prior), abs=1e-9
    )


@st.composite
def conflicting(draw: st.DrawFn) -> tuple[list[float], GaussianPrior]:
    """A few scores near one end of [0, 1] (sometimes mirrored: bimodal) and a prior whose mean
    sits near the other end, with narrow to wide prior widths."""
    high = draw(st.booleans())
    centre = draw(st.floats(0.85, 1.0) if high else st.floats(0.0, 0.15))
    xs = draw(st.lists(st.floats(-0.1, 0.1), min_size=1, max_size=8))
    scores = [min(1.0, max(0.0, centre + d * draw(st.sampled_from([0.05, 0.3, 1.0])))) for d in xs]
    if draw(st.booleans()) and len(scores) > 2:
        scores += [1.0 - x for x in scores[: len(scores) // 2]]
    prior = GaussianPrior(
        draw(st.floats(0.0, 0.5) if high else st.floats(0.5, 1.0)),
        draw(st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.4])),
        draw(st.sampled_from([0.01, 0.03, 0.1, 0.3])),
        draw(st.sampled_from([0.005, 0.02, 0.05, 0.1])),
    )
    return scores, prior


@settings(max_examples=80, deadline=None)
@given(conflicting())
def test_map_is_the_global_mode_when_the_prior_conflicts_with_the_data(
    case: tuple[list[float], GaussianPrior],
) -> None:
    scores, prior = case
    s = SuffStats.of(scores)
    fit = fit_map(s, prior)
    assert _BOX.mu_lo <= fit.mu <= _BOX.mu_hi and _BOX.sigma_lo <= fit.sigma <= _BOX.sigma_hi
    want = brute_max(s, prior)
    assert _close_or_above(fit.loglik, want), (scores, prior, fit, want)


@settings(max_examples=50, deadline=None)
@given(conflicting())
def test_mle_is_the_global_maximum_on_conflicting_and_bimodal_scores(
    case: tuple[list[float], GaussianPrior],
) -> None:
    # No prior: the likelihood is concave in the natural parameters and the box is convex
    # there, so one local ascent suffices; this checks it on the same hard score sets.
    s = SuffStats.of(case[0])
    fit = fit_mle(s)
    want = brute_max(s, None)
    assert _close_or_above(fit.loglik, want), (case[0], fit, want)
