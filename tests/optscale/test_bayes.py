"""The Bayesian stop and the hybrid: the expected-gain integral, the P(correct | score) fit, the
weighted-agreement test, and the decisions they lead to."""

from __future__ import annotations

import random

import pytest
from scipy import integrate, stats

from optscale.bayes import (
    CorrectnessModel,
    expected_gain,
    make_bayes_policy,
    weighted_agreement,
)
from optscale.errors import InvalidArgumentError
from optscale.policies import Observation, QuestionState


@pytest.mark.parametrize(
    ("mu", "sigma", "best"), [(0.6, 0.2, 0.7), (0.9, 0.05, 0.85), (0.3, 0.3, 0.1), (0.5, 0.1, 0.99)]
)
def test_the_expected_gain_is_the_integral_under_the_truncated_normal(
    mu: float, sigma: float, best: float
) -> None:
    g = CorrectnessModel(-3.0, 6.0)
    a, b = (0 - mu) / sigma, (1 - mu) / sigma

    def integrand(s: float) -> float:
        return float((g.p(s) - g.p(best)) * stats.truncnorm.pdf(s, a, b, loc=mu, scale=sigma))

    want = integrate.quad(integrand, best, 1)[0]
    assert expected_gain(best, mu, sigma, g) == pytest.approx(want, rel=1e-6, abs=1e-12)
    assert expected_gain(1.0, mu, sigma, g) == 0.0


def test_the_correctness_model_recovers_a_logistic() -> None:
    rng = random.Random(0)
    true = CorrectnessModel(-5.0, 9.0)
    scores = [rng.random() for _ in range(4000)]
    labels = [rng.random() < true.p(s) for s in scores]
    fit = CorrectnessModel.fit(scores, labels)
    assert fit.a == pytest.approx(-5.0, abs=0.6) and fit.b == pytest.approx(9.0, abs=1.0)
    with pytest.raises(InvalidArgumentError):
        CorrectnessModel.fit([0.5], [])


def _state(*obs: tuple[str, float]) -> QuestionState:
    st = QuestionState().dispatched(len(obs))
    for i, (ans, score) in enumerate(obs):
        st = st.observe(Observation(f"q/{i}", ans, score, 100))
    return st


def test_weighted_agreement_grows_with_the_leaders_score_mass() -> None:
    one = weighted_agreement(_state(("1", 0.9)))
    three = weighted_agreement(_state(("1", 0.9), ("1", 0.8), ("1", 0.95)))
    split = weighted_agreement(_state(("1", 0.9), ("2", 0.9)))
    assert split == pytest.approx(0.5) and one < three and three > 0.9
    # Beta(w1 + 1, w2 + 1) tail at 1/2, against scipy
    w1, w2 = 0.9 + 0.8 + 0.95, 0.0
    assert three == pytest.approx(1 - stats.beta.cdf(0.5, w1 + 1, w2 + 1), rel=1e-9)


def test_bayes_samples_until_a_sample_is_not_worth_its_tokens() -> None:
    g = CorrectnessModel(-6.0, 10.0)
    cheap = make_bayes_policy("bayes", n_max=16, price=1e-6, p_correct=g)
    dear = make_bayes_policy("bayes", n_max=16, price=1e-2, p_correct=g)
    empty = QuestionState()
    assert cheap.decide(empty).target == 1 and dear.decide(empty).target == 1  # one at least
    low = _state(("1", 0.3))
    assert not cheap.decide(low).stop and cheap.decide(low).target == 2
    assert dear.decide(low).stop and dear.decide(low).reason == "bayes"
    # a near-perfect best score leaves little to gain: stop even when tokens are cheap-ish
    high = _state(("1", 0.99), ("1", 0.98), ("1", 0.99))
    mid = make_bayes_policy("bayes", n_max=16, price=1e-4, p_correct=g)
    assert mid.decide(high).stop and not mid.decide(low).stop


def test_hybrid_stops_on_agreement_or_the_bound_whichever_first() -> None:
    agree = make_bayes_policy("hybrid", n_max=16, price=0.0, threshold=0.9, select="vote")
    st = _state(("7", 0.6), ("7", 0.6), ("7", 0.6), ("7", 0.6))
    d = agree.decide(st)
    assert d.stop and d.reason == "agreement" and d.chosen is not None
    bound = make_bayes_policy("hybrid", n_max=16, price=0.0, threshold=0.999, alpha=0.5, s_min=0.5)
    d = bound.decide(_state(("1", 0.97), ("2", 0.96)))
    assert d.stop and d.reason == "bound"
    never = make_bayes_policy("hybrid", n_max=16, price=0.0, threshold=0.999, s_min=0.99)
    assert not never.decide(_state(("1", 0.3), ("2", 0.4))).stop


def test_bad_parameters_are_refused() -> None:
    for kw in ({"price": -1.0}, {"wave": 0}, {"select": "max"}, {"threshold": 1.0}):
        with pytest.raises(InvalidArgumentError):
            make_bayes_policy("hybrid", n_max=8, **kw)
    with pytest.raises(InvalidArgumentError):
        make_bayes_policy("nope", n_max=8)
