"""Confidence verifier: step scores from log-probs, mean aggregation, clear errors."""

from __future__ import annotations

import math

import pytest

from optscale.engines.scoring.confidence import Backend
from optscale.errors import InvalidArgumentError
from optscale.types import GeneratedSample


def _s(steps: tuple[float, ...] = (), mean: float | None = None) -> GeneratedSample:
    return GeneratedSample("q", "q/0", "t", "1", 5, "stop", mean_logprob=mean, step_logprobs=steps)


async def test_score_is_the_mean_of_step_probabilities() -> None:
    out = await Backend().score_batch([("p", _s((math.log(0.9), math.log(0.5))))])
    assert out[0].step_scores == pytest.approx((0.9, 0.5))
    assert out[0].score == pytest.approx(0.7)


def test_falls_back_to_the_mean_logprob_and_rejects_missing_or_bad_values() -> None:
    assert Backend().score_one(_s(mean=math.log(0.25))).score == pytest.approx(0.25)
    with pytest.raises(InvalidArgumentError, match="no token log-probs"):
        Backend().score_one(_s())
    for bad in (math.nan, 0.5, -math.inf):
        with pytest.raises(InvalidArgumentError):
            Backend().score_one(_s((bad,)))


def test_the_aggregation_of_step_scores_is_configurable() -> None:
    import math

    import pytest

    from optscale.engines.scoring.confidence import Backend
    from optscale.errors import InvalidArgumentError
    from optscale.types import GeneratedSample

    s = GeneratedSample("q", "q/0", "a\n\nb", "1", 5, "stop", step_logprobs=(-0.1, -1.0, -0.5))
    steps = [math.exp(x) for x in (-0.1, -1.0, -0.5)]
    assert Backend().score_one(s).score == pytest.approx(sum(steps) / 3)
    assert Backend("min").score_one(s).score == pytest.approx(steps[1])
    assert Backend("last").score_one(s).score == pytest.approx(steps[2])
    with pytest.raises(InvalidArgumentError, match="aggregation"):
        Backend("median")
