"""The BoN curve: BoN(k) for every k on the same orders, its running maximum, and where a
policy's point stands against it (gain at equal tokens, token ratio at equal accuracy)."""

from __future__ import annotations

import pytest

from optscale.bon_curve import BonCurve, bon_prefixes
from optscale.pools import PoolSample


def _s(i: int, score: float, correct: bool, tokens: int = 100) -> PoolSample:
    return PoolSample(f"q/{i}", "a" if correct else "b", correct, score, tokens)


def test_prefixes_pick_the_first_highest_score() -> None:
    order = [_s(0, 0.5, False), _s(1, 0.9, True), _s(2, 0.9, False), _s(3, 0.2, False)]
    assert bon_prefixes(order, 4) == [(False, 100), (True, 200), (True, 300), (True, 400)]


def _curve() -> BonCurve:
    # two orders: BoN(1) right on one, BoN(2) on both, BoN(3) on one again (a scorer that
    # gets worse with more samples)
    c = BonCurve(3)
    c.add([_s(0, 0.5, True), _s(1, 0.4, False), _s(2, 0.9, False)])
    c.add([_s(0, 0.3, False), _s(1, 0.6, True), _s(2, 0.5, False)])
    return c


def test_points_average_over_orders() -> None:
    assert _curve().points() == [(1, 100.0, 0.5), (2, 200.0, 1.0), (3, 300.0, 0.5)]


def test_the_competitor_is_the_best_fixed_k_within_the_budget() -> None:
    c = _curve()
    assert c.accuracy_at(50) == pytest.approx(0.25)  # half-way to BoN(1) from nothing
    assert c.accuracy_at(150) == pytest.approx(0.75)
    assert c.accuracy_at(300) == pytest.approx(1.0)  # BoN(2) is still affordable
    assert c.accuracy_at(900) == pytest.approx(1.0)
    assert c.tokens_for(0.75) == pytest.approx((150.0, 1.5))
    assert c.tokens_for(1.01) is None


def test_a_policy_point_against_the_curve() -> None:
    c = _curve()
    better = c.standing(tokens=120, accuracy=0.9)
    assert better.gain == pytest.approx(0.9 - 0.6)
    assert better.ratio == pytest.approx(120 / 180) and better.curve_k == pytest.approx(1.8)
    worse = c.standing(tokens=300, accuracy=0.5)  # what BoN(3) itself is
    assert worse.gain == pytest.approx(-0.5) and worse.ratio == pytest.approx(3.0)
    # restricted to k <= 1 the same point is beyond the curve
    assert c.standing(tokens=120, accuracy=0.9, k_max=1).ratio is None


def test_an_order_shorter_than_the_curve_is_refused() -> None:
    with pytest.raises(ValueError, match="k=3"):
        BonCurve(3).add([_s(0, 0.5, True)])
