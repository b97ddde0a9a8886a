"""dsc_prior: DSC's easy/hard split per question from the predicted prior; it runs through the
one loop, so replay, solve and the controller share it; easy_mu is tuned on dev."""

from __future__ import annotations

import pytest

from optscale.calibrate import calibrate
from optscale.episode import run_episode
from optscale.errors import InvalidArgumentError
from optscale.policies import make_policy
from optscale.pool_model import Pool, PoolQuestion, PoolSample
from optscale.stats import GaussianPrior


def _order(answers: list[str], right: str = "4") -> list[PoolSample]:
    return [PoolSample(f"q/{i}", a, a == right, 0.5, 100) for i, a in enumerate(answers)]


def test_easy_questions_take_one_sample_and_hard_ones_windows_until_agreement() -> None:
    answers = ["3", "4", "4", "5", "4", "4", "4", "4"]
    easy = make_policy("dsc_prior", n_max=8, prior=GaussianPrior(0.95, 0.05), easy_mu=0.9)
    ep = run_episode(easy, _order(answers))
    assert (ep.samples, ep.reason, ep.correct) == (1, "easy", False)  # one sample: "3"
    hard = make_policy("dsc_prior", n_max=8, prior=GaussianPrior(0.5, 0.2), easy_mu=0.9, window=2)
    ep = run_episode(hard, _order(answers))
    # windows [3,4] [4,5] disagree; [4,4] agrees at 6 samples; majority "4"
    assert (ep.samples, ep.reason, ep.correct) == (6, "window agrees", True)


def test_dsc_prior_needs_a_prior_and_valid_options() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        make_policy("dsc_prior", n_max=4)
    assert err.value.field == "prior"
    with pytest.raises(InvalidArgumentError) as err:
        make_policy("dsc_prior", n_max=4, prior=GaussianPrior(0.5, 0.1), window=0)
    assert err.value.field == "window"


def _pool() -> tuple[Pool, dict[str, tuple[float, float]]]:
    """Questions with a high prior are answered right by any sample; low-prior ones need a
    vote (one wrong sample in three)."""
    qs, priors = [], {}
    for j in range(12):
        easy = j % 2 == 0
        answers = ["4"] * 6 if easy else ["4", "7", "4", "4", "9", "4"]
        samples = [PoolSample(f"q{j}/{i}", a, a == "4", 0.5, 100) for i, a in enumerate(answers)]
        qs.append(PoolQuestion(f"q{j}", "4", samples))
        priors[f"q{j}"] = (0.95 if easy else 0.4, 0.1)
    return Pool("p", qs), priors


def test_calibrate_tunes_easy_mu_on_dev_priors() -> None:
    pool, priors = _pool()
    with pytest.raises(InvalidArgumentError):
        calibrate(pool, policy="dsc_prior", n_max=6, orders=4)
    cal = calibrate(pool, policy="dsc_prior", n_max=6, orders=4, priors=priors)
    easy_mu = cal.policy_params["easy_mu"]
    assert 0.4 < easy_mu <= 0.95  # easy questions get one sample, hard ones a vote
