"""optscale.stats against scipy, finite differences, a generic optimizer and brute force."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as sps

from optscale.errors import InvalidArgumentError, InvalidScoreError
from optscale.fitting import MIN_TAU
from optscale.stats import (
    Bounds,
    GaussianPrior,
    SuffStats,
    fit_map,
    fit_mle,
    log_ndtr,
    loglik,
    loglik_grad,
    moment_match,
    n_star,
    trunc_cdf,
    truncnorm_moments,
    validate_score,
)

mus = st.floats(-1.0, 2.0)
sigmas = st.floats(0.02, 3.0)
scores = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40)


def scipy_tn(mu: float, sigma: float) -> sps.rv_continuous:
    return sps.truncnorm((0 - mu) / sigma, (1 - mu) / sigma, loc=mu, scale=sigma)


@settings(max_examples=200, deadline=None)
@given(mus, sigmas, scores)
def test_loglik_matches_scipy(mu: float, sigma: float, xs: list[float]) -> None:
    expected = float(np.sum(scipy_tn(mu, sigma).logpdf(np.array(xs))))
    assert loglik(mu, sigma, SuffStats.of(xs)) == pytest.approx(expected, rel=1e-7, abs=1e-7)


@settings(max_examples=200, deadline=None)
@given(mus, sigmas, st.floats(0.0, 1.0))
def test_cdf_matches_scipy(mu: float, sigma: float, x: float) -> None:
    assert trunc_cdf(x, mu, sigma) == pytest.approx(
        float(scipy_tn(mu, sigma).cdf(x)), rel=1e-7, abs=1e-10
    )


@settings(max_examples=200, deadline=None)
@given(mus, st.floats(0.05, 3.0), scores)
def test_gradient_matches_finite_differences(mu: float, sigma: float, xs: list[float]) -> None:
    s = SuffStats.of(xs)
    g_mu, g_sigma = loglik_grad(mu, sigma, s)
    h = 1e-6
    fd_mu = (loglik(mu + h, sigma, s) - loglik(mu - h, sigma, s)) / (2 * h)
    fd_sigma = (loglik(mu, sigma + h, s) - loglik(mu, sigma - h, s)) / (2 * h)
    scale = 1.0 + abs(fd_mu) + abs(fd_sigma)
    assert g_mu == pytest.approx(fd_mu, abs=1e-4 * scale)
    assert g_sigma == pytest.approx(fd_sigma, abs=1e-4 * scale)


def test_tails_are_finite_and_stable() -> None:
    assert log_ndtr(-40.0) == pytest.approx(float(sps.norm.logcdf(-40.0)), rel=1e-10)
    assert log_ndtr(10.0) == pytest.approx(float(sps.norm.logcdf(10.0)), abs=1e-25)
    # Far in either tail the likelihood stays finite (no log(0)).
    s = SuffStats.of([0.99, 1.0, 0.995])
    for mu, sigma in [(2.0, 1e-3), (-1.0, 1e-3), (2.0, 0.01), (0.5, 10.0)]:
        assert math.isfinite(loglik(mu, sigma, s))
        assert all(math.isfinite(g) for g in loglik_grad(mu, sigma, s))


def generic_best(s: SuffStats, prior: GaussianPrior | None, b: Bounds) -> float:
    def neg(p: np.ndarray) -> float:
        v = loglik(float(p[0]), float(p[1]), s)
        if prior is not None:
            v -= 0.5 * ((p[0] - prior.mu_bar) ** 2 / prior.tau_mu**2)
            v -= 0.5 * ((p[1] - prior.sigma_bar) ** 2 / prior.tau_sigma**2)
        return -v

    best = -math.inf
    for x0 in [(0.5, 0.2), (0.9, 0.05), (0.1, 0.5), (1.5, 1.0), (-0.5, 0.1), (1.9, 0.01)]:
        r = optimize.minimize(
            neg,
            x0,
            method="L-BFGS-B",
            bounds=[(b.mu_lo, b.mu_hi), (b.sigma_lo, b.sigma_hi)],
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000},
        )
        best = max(best, -float(r.fun))
    return best


@settings(max_examples=60, deadline=None)
@given(st.floats(-0.5, 1.5), st.floats(0.02, 0.6), st.integers(2, 64), st.integers(0, 10**6))
def test_mle_matches_generic_optimizer(mu: float, sigma: float, n: int, seed: int) -> None:
    xs = scipy_tn(mu, sigma).rvs(size=n, random_state=seed)
    s = SuffStats.of(xs.tolist())
    fit = fit_mle(s)
    b = Bounds()
    assert b.mu_lo <= fit.mu <= b.mu_hi and b.sigma_lo <= fit.sigma <= b.sigma_hi
    assert fit.loglik == pytest.approx(loglik(fit.mu, fit.sigma, s), abs=1e-9)
    assert fit.loglik >= generic_best(s, None, b) - 1e-6


@settings(max_examples=40, deadline=None)
@given(st.floats(0.3, 1.0), st.floats(0.05, 0.3), st.integers(1, 32), st.integers(0, 10**6))
def test_map_matches_generic_optimizer(mu: float, sigma: float, n: int, seed: int) -> None:
    xs = scipy_tn(mu, sigma).rvs(size=n, random_state=seed)
    s = SuffStats.of(xs.tolist())
    prior = GaussianPrior(0.8, 0.15)
    fit = fit_map(s, prior)
    assert fit.loglik >= generic_best(s, prior, Bounds()) - 1e-6


def test_easy_question_mu_stays_bounded() -> None:
    s = SuffStats.of([0.95, 0.97, 0.99, 1.0, 0.98, 0.999])
    fit = fit_mle(s)
    assert fit.mu <= 2.0
    assert fit_mle(s, Bounds(mu_hi=1.2)).mu <= 1.2


def test_map_without_scores_is_prior_mean() -> None:
    fit = fit_map(SuffStats(), GaussianPrior(0.7, 0.2))
    assert (fit.mu, fit.sigma) == pytest.approx((0.7, 0.2), abs=1e-6)


def test_more_data_moves_map_toward_mle() -> None:
    prior = GaussianPrior(0.3, 0.2)
    few = fit_map(SuffStats.of([0.9, 0.92]), prior)
    many = fit_map(SuffStats.of([0.9, 0.92] * 30), prior)
    assert abs(many.mu - 0.91) < abs(few.mu - 0.91)


@settings(max_examples=150, deadline=None)
@given(st.floats(-0.5, 1.5), st.floats(0.02, 1.0))
def test_moment_match_round_trips(mu: float, sigma: float) -> None:
    mean, std = truncnorm_moments(mu, sigma)
    ref = scipy_tn(mu, sigma)
    assert (mean, std) == pytest.approx((float(ref.mean()), float(ref.std())), abs=1e-7)
    m2, s2 = moment_match(mean, std)
    assert truncnorm_moments(m2, s2) == pytest.approx((mean, std), abs=1e-6)


def test_moment_match_degenerate_inputs() -> None:
    mu, sigma = moment_match(0.93, 0.0)
    assert sigma == Bounds().sigma_lo and mu == pytest.approx(0.93, abs=1e-3)
    for mean in (0.0, 1.0):
        mu, sigma = moment_match(mean, 0.0)
        assert -1.0 <= mu <= 2.0
    with pytest.raises(InvalidArgumentError, match="std"):
        moment_match(0.5, -0.1)
    with pytest.raises(InvalidScoreError):
        moment_match(float("nan"), 0.1)


def brute_n_star(alpha: float, s_min: float, mu: float, sigma: float, n_max: int) -> int:
    f = float(scipy_tn(mu, sigma).cdf(s_min))
    for n in range(1, n_max + 1):
        if 1.0 - f**n >= alpha:
            return n
    return n_max


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.05, 0.99),
    st.floats(0.05, 0.95),
    st.floats(-1.0, 2.0),
    st.floats(0.01, 2.0),
    st.integers(1, 128),
)
def test_n_star_matches_brute_force(
    alpha: float, s_min: float, mu: float, sigma: float, n_max: int
) -> None:
    f = float(scipy_tn(mu, sigma).cdf(s_min))
    if 0.0 < f < 1.0:
        ratio = math.log1p(-alpha) / math.log(f)
        if abs(ratio - round(ratio)) < 1e-6:
            return  # on an integer boundary float rounding decides; nothing to compare
    assert n_star(alpha, s_min, mu, sigma, n_max) == brute_n_star(alpha, s_min, mu, sigma, n_max)


def test_n_star_edge_cases() -> None:
    # F = 1: no sample can exceed s_min -> capped at n_max.
    assert n_star(0.9, 0.9, -1.0, 1e-3, 64) == 64
    # F = 0: every sample exceeds s_min -> 1.
    assert n_star(0.9, 0.1, 2.0, 1e-3, 64) == 1
    # n = 1 and all-equal scores: sigma at its lower bound, defined result.
    for xs in ([0.7], [0.7, 0.7, 0.7], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0]):
        fit = fit_mle(SuffStats.of(xs))
        assert 1 <= n_star(0.9, 0.5, fit.mu, fit.sigma, 16) <= 16
    assert fit_mle(SuffStats.of([0.7, 0.7])).sigma == Bounds().sigma_lo
    assert n_star(0.9, 0.5, 0.7, 1e-3, 16) == 1
    assert n_star(0.9, 0.8, 0.7, 1e-3, 16) == 16


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.01, 1.01, "x", None])
def test_bad_scores_raise_typed_error(bad: object) -> None:
    with pytest.raises(InvalidScoreError, match="score"):
        SuffStats().add(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidScoreError):
        SuffStats.of([0.5, bad])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "field,args",
    [
        ("alpha", (0.0, 0.5)),
        ("alpha", (1.0, 0.5)),
        ("alpha", (float("nan"), 0.5)),
        ("s_min", (0.9, 0.0)),
        ("s_min", (0.9, 1.0)),
        ("s_min", (0.9, -2.0)),
    ],
)
def test_bad_alpha_s_min_raise(field: str, args: tuple[float, float]) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        n_star(args[0], args[1], 0.5, 0.2, 16)


def test_bad_n_max_and_params() -> None:
    with pytest.raises(InvalidArgumentError, match="n_max"):
        n_star(0.9, 0.5, 0.5, 0.2, 0)
    with pytest.raises(InvalidArgumentError):
        loglik(0.5, 0.0, SuffStats.of([0.5]))
    with pytest.raises(InvalidArgumentError):
        Bounds(mu_lo=1.0, mu_hi=0.0)
    with pytest.raises(InvalidArgumentError, match="sigma_bar"):
        GaussianPrior(0.5, -1.0)


def test_suff_stats() -> None:
    s = SuffStats.of([0.2, 0.4, 0.6])
    assert (s.n, s.lo, s.hi) == (3, 0.2, 0.6)
    assert s.mean == pytest.approx(0.4)
    assert s.std == pytest.approx(float(np.std([0.2, 0.4, 0.6])))
    assert SuffStats().add(0.2).add(0.4).add(0.6) == s


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("tau_mu", lambda: GaussianPrior(0.5, 0.1, tau_mu=1e-7)),
        ("tau_sigma", lambda: GaussianPrior(0.5, 0.1, tau_sigma=1e-9)),
        ("tau_sigma", lambda: GaussianPrior(0.5, 0.1, tau_sigma=0.0)),
        ("tau_mu", lambda: GaussianPrior(0.5, 0.1, tau_mu=math.nan)),
        ("n", lambda: SuffStats(-1)),
        ("n", lambda: SuffStats(True)),
        ("s1", lambda: SuffStats(0, 0.5, 0.25)),
        ("s1", lambda: SuffStats(2, 2.5, 2.0)),
        ("s2", lambda: SuffStats(2, 1.0, 1.5)),  # s2 > s1: some score above 1
        ("s2", lambda: SuffStats(2, 1.0, 0.1)),  # s1^2 > n s2 (Cauchy-Schwarz)
        ("lo, hi", lambda: SuffStats(2, 1.0, 0.5, 0.6, 0.4)),
        ("x", lambda: trunc_cdf(math.nan, 0.5, 0.2)),
        ("mu", lambda: trunc_cdf(0.5, math.nan, 0.2)),
        ("sigma", lambda: trunc_cdf(0.5, 0.5, math.nan)),
        ("score", lambda: validate_score(True)),
        ("score", lambda: validate_score("0.5")),  # type: ignore[arg-type]
        ("score", lambda: SuffStats().add(False)),
    ],
)
def test_bad_input_names_the_field(field: str, make: Callable[[], object]) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        make()
    assert err.value.field == field


def test_numbers_that_are_not_floats_are_still_scores() -> None:
    assert validate_score(np.float32(0.5)) == 0.5  # type: ignore[arg-type]
    assert validate_score(1) == 1.0
    assert validate_score(np.float64(0.25)) == 0.25
    assert GaussianPrior(0.5, 0.1, MIN_TAU, MIN_TAU).tau_mu == MIN_TAU
    assert trunc_cdf(math.inf, 0.5, 0.2) == 1.0 and trunc_cdf(-math.inf, 0.5, 0.2) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200), st.integers(1, 50))
def test_stats_of_real_scores_pass_their_own_checks(xs: list[float], repeat: int) -> None:
    # float rounding of many equal scores must not trip the consistency checks
    s = SuffStats.of(xs * repeat)
    assert s.n == len(xs) * repeat and SuffStats(s.n, s.s1, s.s2, s.lo, s.hi) == s
