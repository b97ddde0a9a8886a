"""QuestionConfig's JSON round trip carries the prior with its widths; older layouts still read."""

from __future__ import annotations

import json

import pytest

from optscale.config import QuestionConfig
from optscale.errors import InvalidArgumentError
from optscale.stats import DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA, GaussianPrior


def _cfg(prior: GaussianPrior | None) -> QuestionConfig:
    return QuestionConfig(text="x?", policy="optscalet", n_max=6, prior=prior)


def test_the_prior_and_its_widths_round_trip_through_json() -> None:
    cfg = _cfg(GaussianPrior(0.6, 0.2, tau_mu=0.43, tau_sigma=0.09))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["prior"] == {"mu_bar": 0.6, "sigma_bar": 0.2, "tau_mu": 0.43, "tau_sigma": 0.09}
    assert QuestionConfig.from_dict(d) == cfg
    assert QuestionConfig.from_dict(_cfg(None).to_dict()).prior is None


def test_older_layouts_read_with_the_default_widths() -> None:
    d = _cfg(None).to_dict()
    want = GaussianPrior(0.6, 0.2, DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA)
    for old in ({"mu_bar": 0.6, "sigma_bar": 0.2}, [0.6, 0.2]):
        assert QuestionConfig.from_dict({**d, "prior": old}).prior == want


def test_with_prior_takes_the_widths() -> None:
    cfg = _cfg(None)
    assert cfg.needs_prior
    got = cfg.with_prior(0.7, 0.1, 0.4, 0.08)
    assert got.prior == GaussianPrior(0.7, 0.1, 0.4, 0.08) and not got.needs_prior
    assert cfg.with_prior(0.7, 0.1).prior == GaussianPrior(0.7, 0.1)  # default widths
    assert got.build_policy().name == "optscalet"


@pytest.mark.parametrize(
    ("prior", "field"),
    [
        ({"mu_bar": 0.6, "sigma_bar": 0.2, "tau_mu": 1e-9}, "tau_mu"),
        ({"mu_bar": 0.6, "sigma_bar": 0.2, "tau_sigma": -0.1}, "tau_sigma"),
        ({"mu_bar": 0.6, "sigma_bar": 0.2, "tau_mu": float("inf")}, "config"),
    ],
)
def test_bad_widths_name_the_field(prior: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        QuestionConfig.from_dict({**_cfg(None).to_dict(), "prior": prior})
    assert err.value.field == field


def test_tuned_options_round_trip_and_build_the_tuned_policy() -> None:
    opts = {"price": 2e-4, "p_correct": {"a": -2.0, "b": 4.0}, "wave": 2, "select": "vote"}
    cfg = QuestionConfig("q?", policy="hybrid", n_max=8, options=QuestionConfig.options_from(opts))
    back = QuestionConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    pol = back.validate().build_policy()
    assert (pol.price, pol.p_correct.b, pol.wave, pol.select) == (2e-4, 4.0, 2, "vote")  # type: ignore[attr-defined]
    paced = QuestionConfig("q?", options=QuestionConfig.options_from('{"pace": 0.5}'))
    assert paced.build_policy().pace == 0.5  # type: ignore[attr-defined]
    assert QuestionConfig.from_dict({"text": "q?"}).options == ()


@pytest.mark.parametrize(
    ("policy", "raw"),
    [
        ("bayes", '{"nope": 1}'),
        ("bayes", "[1, 2]"),
        ("bayes", "{not json"),
        ("bayes", {"p_correct": 3}),
        ("bayes", {"wave": "2"}),
        ("optscale0", {"pace": 2.0}),
    ],
)
def test_bad_options_are_a_clear_error(policy: str, raw: object) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        QuestionConfig("q?", policy=policy, options=QuestionConfig.options_from(raw)).validate()
    assert err.value.field in ("options", "pace", "wave")
