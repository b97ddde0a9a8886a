"""Each policy on hand-made score streams, driven the way the solvers drive them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from optscale.errors import InvalidArgumentError, InvalidScoreError
from optscale.policies import (
    POLICY_NAMES,
    Decision,
    Observation,
    Policy,
    QuestionState,
    make_policy,
)
from optscale.policies import beta_prob_greater as p_greater
from optscale.stats import GaussianPrior, SuffStats, fit_mle, loglik, n_star

Stream = Sequence[tuple[str | None, float]]


def drive(policy: Policy, stream: Stream) -> tuple[Decision, QuestionState, list[int]]:
    """Feed ``stream`` in order, one score at a time; returns the final decision, state and the
    dispatch sizes asked for. Fails if the policy wants more than the stream has."""
    state = QuestionState()
    decision = policy.decide(state)
    sizes: list[int] = []
    i = 0
    while not decision.stop:
        k = decision.target - state.n_live
        if k > 0:
            sizes.append(k)
            state = state.dispatched(k)
        assert state.n_inflight > 0, f"{policy.name} waits for nothing: {decision}"
        assert i < len(stream), f"{policy.name} wants more than {len(stream)} samples"
        answer, score = stream[i]
        state = state.observe(Observation(f"s{i}", answer, score, 10 * (i + 1)))
        i += 1
        decision = policy.decide(state)
    return decision, state, sizes


def test_bon_takes_n_max_and_picks_the_highest_score_earliest_on_ties() -> None:
    stream = [("1", 0.5), ("2", 0.9), ("3", 0.9), ("4", 0.1)]
    d, st, sizes = drive(make_policy("bon", n_max=4), stream)
    assert d.stop and d.reason == "n_max"
    assert sizes == [4] and st.n_scored == 4 and st.tokens == 100
    assert d.chosen is not None and d.chosen.sample_id == "s1"


def test_sc_majority_vote_groups_spellings_and_breaks_ties_by_best_score() -> None:
    stream = [("\\frac{1}{2}", 0.2), ("7", 0.9), ("\\dfrac{1}{2}", 0.3), ("7", 0.1), (None, 1.0)]
    d, _, _ = drive(make_policy("sc", n_max=5), stream)
    # 1/2 and 7 have two votes each; 7's best sample scores 0.9 > 0.3
    assert d.chosen is not None and d.chosen.answer == "7" and d.chosen.sample_id == "s1"
    d, _, _ = drive(make_policy("sc", n_max=3), stream[:3])
    assert d.chosen is not None and d.chosen.sample_id == "s2"  # best-scored sample of "1/2"


def test_weighted_vote_uses_score_sums() -> None:
    stream = [("a", 0.3), ("a", 0.3), ("b", 0.7)]
    d, _, _ = drive(make_policy("sc", n_max=3), stream)
    assert d.chosen is not None and d.chosen.answer == "a"
    d, _, _ = drive(make_policy("wsc", n_max=3), stream)
    assert d.chosen is not None and d.chosen.answer == "b"


def test_votes_fall_back_to_best_score_when_no_sample_has_an_answer() -> None:
    d, _, _ = drive(make_policy("sc", n_max=2), [(None, 0.2), (None, 0.8)])
    assert d.chosen is not None and d.chosen.sample_id == "s1"


def test_optscale0_initial_batch_then_stops_at_n_star() -> None:
    # high, tight scores: N* is small, so it stops right after the initial batch
    high = [("x", 0.97 + 0.001 * (i % 5)) for i in range(64)]
    d, st, sizes = drive(make_policy("optscale0", n_max=64, alpha=0.9, s_min=0.95), high)
    assert sizes[0] == math.ceil(64 / 3)
    assert d.stop and d.reason == "bound" and st.n_scored == 22
    assert d.n_star is not None and d.n_star <= 22 and d.fit is not None
    assert d.n_star == n_star(0.9, 0.95, d.fit.mu, d.fit.sigma, 64)


def test_optscale0_low_scores_run_to_n_max_and_the_bound_is_rechecked_every_score() -> None:
    low = [("x", 0.2 + 0.3 * ((i * 7) % 10) / 10) for i in range(16)]
    d, st, _ = drive(make_policy("optscale0", n_max=16, s_min=0.95), low)
    # N* is capped at N_max all the way: the stop is for N_max, not for the bound
    assert st.n_scored == 16 and d.reason == "n_max" and d.n_star == 16
    # scores that rise: N* is large after the initial batch and falls as high scores arrive;
    # the policy stops at the first n with N*(fit of the first n scores) <= n
    rising = [("x", min(0.999, 0.3 + 0.02 * i + 0.1 * ((i * 7) % 3))) for i in range(64)]
    d, st, _ = drive(make_policy("optscale0", n_max=64, alpha=0.9, s_min=0.95), rising)
    want = next(n for n in range(22, 65) if n_star(0.9, 0.95, *_mle(rising[:n]), 64) <= n)
    assert 22 < want < 64 and st.n_scored == want
    assert d.reason == "bound" and d.n_star is not None and d.n_star <= want


def _mle(stream: Stream) -> tuple[float, float]:
    fit = fit_mle(SuffStats.of(s for _, s in stream))
    return fit.mu, fit.sigma


def test_optscalet_waits_for_an_initial_batch_like_optscale0() -> None:
    prior = GaussianPrior(mu_bar=0.99, sigma_bar=0.02)
    stream = [("y", 0.98)] * 32
    for initial, want in ((None, math.ceil(32 / 3)), (5, 5), (40, 32)):
        p = make_policy("optscalet", n_max=32, prior=prior, initial=initial)
        d0 = p.decide(QuestionState())
        assert (d0.stop, d0.target, d0.reason) == (False, want, "initial batch")
        d, st, sizes = drive(p, stream)
        assert sizes[0] == want and st.n_scored == want
        assert d.n_star is not None and d.fit is not None and d.n_star <= want
        assert d.reason == ("bound" if d.n_star < 32 else "n_max")
    with pytest.raises(InvalidArgumentError) as err:
        make_policy("optscalet", n_max=8, prior=prior, initial=0)
    assert err.value.field == "initial"


def test_optscalet_prior_first_dispatches_n_star_of_the_prior() -> None:
    easy_prior = GaussianPrior(mu_bar=0.99, sigma_bar=0.02)
    easy = make_policy("optscalet", n_max=32, prior=easy_prior, prior_first=True)
    d0 = easy.decide(QuestionState())
    assert not d0.stop and d0.n_star is not None and d0.target == d0.n_star
    assert d0.n_star == n_star(0.9, 0.95, 0.99, 0.02, 32) <= 2
    hard = make_policy(
        "optscalet", n_max=32, prior=GaussianPrior(mu_bar=0.3, sigma_bar=0.1), prior_first=True
    )
    assert hard.decide(QuestionState()).target == n_star(0.9, 0.95, 0.3, 0.1, 32) == 32
    d, st, _ = drive(easy, [("y", 0.98)] * 32)
    assert d.reason == "bound" and st.n_scored <= 2  # the bound is checked from score 1
    with pytest.raises(InvalidArgumentError) as err:
        make_policy("optscalet", n_max=8, prior=easy_prior, prior_first=True, initial=3)
    assert err.value.field == "initial"
    with pytest.raises(InvalidArgumentError, match="prior"):
        make_policy("optscalet", n_max=8)
    # optscale0 has no prior: the option does not apply
    assert make_policy("optscale0", n_max=9, prior_first=True).decide(QuestionState()).target == 3


def test_optscalet_does_not_stop_on_a_spurious_posterior_spike() -> None:
    # Two high scores against a low prior: the posterior's global mode is broad (N* = N_max),
    # a spike at (0.987, 0.016) would give N* = 1 and stop at once.
    prior = GaussianPrior(mu_bar=0.3, sigma_bar=0.1)
    p = make_policy("optscalet", n_max=32, prior=prior, initial=2)
    st = QuestionState().dispatched(2)
    st = st.observe(Observation("a", "1", 0.9798, 1)).observe(Observation("b", "1", 1.0, 1))
    d = p.decide(st)
    optimize = pytest.importorskip("scipy.optimize")
    s = st.stats

    def neg_post(x: Sequence[float]) -> float:
        mu, sigma = float(x[0]), max(float(x[1]), 1e-3)
        lp = ((mu - 0.3) / prior.tau_mu) ** 2 + ((sigma - 0.1) / prior.tau_sigma) ** 2
        return -loglik(mu, sigma, s) + 0.5 * lp

    ranges = ((-1.0, 2.0), (1e-3, 1.0))
    mode = optimize.brute(neg_post, ranges, Ns=120, finish=None)
    mode = optimize.minimize(neg_post, mode, method="L-BFGS-B", bounds=ranges).x
    assert d.n_star == n_star(0.9, 0.95, float(mode[0]), float(mode[1]), 32)
    assert not d.stop and d.target == d.n_star and d.n_star > 2


def test_esc_stops_on_a_unanimous_window_and_not_otherwise() -> None:
    d, st, sizes = drive(make_policy("esc", n_max=20, window=4), [("5", 0.1)] * 20)
    assert d.reason == "window agrees" and st.n_scored == 4 and sizes == [4]
    mixed = [("5", 0.1), ("6", 0.2), ("5", 0.3), ("5", 0.4)] + [("7", 0.5)] * 16
    d, st, _ = drive(make_policy("esc", n_max=20, window=4), mixed)
    assert st.n_scored == 8 and d.chosen is not None and d.chosen.answer == "7"
    d, st, _ = drive(make_policy("esc", n_max=6, window=4), [(str(i), 0.1) for i in range(6)])
    assert st.n_scored == 6 and d.reason == "n_max"


def test_asc_beta_stop_rule() -> None:
    assert p_greater(0, 0) == pytest.approx(0.5)
    assert p_greater(1, 0) == pytest.approx(0.75)
    assert p_greater(4, 0) == pytest.approx(1 - 0.5**5)
    scipy_special = pytest.importorskip("scipy.special")
    for v1, v2 in [(3, 1), (7, 2), (10, 9), (20, 3)]:
        want = 1.0 - scipy_special.betainc(v1 + 1, v2 + 1, 0.5)
        assert p_greater(v1, v2) == pytest.approx(want, abs=1e-12)
    d, st, sizes = drive(make_policy("asc", n_max=40), [("9", 0.5)] * 40)
    assert st.n_scored == 4 and d.reason == "beta stop" and set(sizes) == {1}
    alt = [("1", 0.5), ("2", 0.5)] * 3 + [("1", 0.5)] * 34
    d, st, _ = drive(make_policy("asc", n_max=40), alt)
    assert d.reason == "beta stop" and d.chosen is not None and d.chosen.answer == "1"
    assert st.n_scored > 6


def test_oracle_stops_at_the_first_target_answer() -> None:
    stream = [("3", 0.9), ("4", 0.1), ("\\text{4}", 0.2), ("4", 0.3)]
    d, st, _ = drive(make_policy("oracle", n_max=4, target_answer="4"), stream)
    assert d.reason == "oracle" and st.n_scored == 2 and d.chosen is not None
    assert d.chosen.sample_id == "s1"
    d, st, _ = drive(make_policy("oracle", n_max=4, target_answer="8"), stream)
    assert st.n_scored == 4 and d.chosen is not None and d.chosen.sample_id == "s0"


def test_failures_are_replaced_and_capped() -> None:
    p = make_policy("bon", n_max=2)
    st = QuestionState().dispatched(2).failed(1)
    d = p.decide(st)
    assert not d.stop and d.target - st.n_live == 1  # one replacement
    st = st.dispatched(1).observe(Observation("a", "1", 0.5, 1))
    assert p.decide(st).stop is False and st.n_inflight == 1
    d = p.decide(QuestionState().dispatched(2).failed(2))
    assert d.stop and d.reason == "failures" and d.chosen is None


def test_state_is_idempotent_and_validates() -> None:
    st = QuestionState().dispatched(1).observe(Observation("a", "1", 0.5, 3))
    assert st.observe(Observation("a", "1", 0.5, 3)) is st
    for bad in (math.nan, math.inf, -0.1, 1.5):
        with pytest.raises(InvalidScoreError):
            st.observe(Observation("b", "1", bad, 3))
    with pytest.raises(InvalidArgumentError, match="tokens"):
        st.observe(Observation("b", "1", 0.5, -1))
    with pytest.raises(InvalidArgumentError):
        st.dispatched(-1)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name": "nope", "n_max": 4}, "policy"),
        ({"name": "bon", "n_max": 0}, "n_max"),
        ({"name": "bon", "n_max": 2.5}, "n_max"),
        ({"name": "optscale0", "n_max": 4, "alpha": 1.0}, "alpha"),
        ({"name": "optscale0", "n_max": 4, "s_min": math.nan}, "s_min"),
        ({"name": "esc", "n_max": 4, "window": 0}, "window"),
        ({"name": "asc", "n_max": 4, "threshold": 1.0}, "threshold"),
    ],
)
def test_make_policy_rejects_bad_parameters(kw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        make_policy(**kw)  # type: ignore[arg-type]
    assert err.value.field == field


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_policy_terminates_within_n_max_and_answers(name: str) -> None:
    prior = GaussianPrior(0.5, 0.2)
    p = make_policy(name, n_max=8, prior=prior, target_answer="zzz")
    stream = [(str(i % 3), (i * 37 % 100) / 100) for i in range(8)]
    d, st, _ = drive(p, stream)
    assert d.stop and 1 <= st.n_scored <= 8 and d.chosen is not None
