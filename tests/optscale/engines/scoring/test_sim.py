"""Sim scorer: deterministic, in [0, 1], per-question distributions that differ."""

from __future__ import annotations

import statistics

from optscale.engines.scoring.sim import Backend
from optscale.types import GeneratedSample


def _s(q: str, i: int) -> GeneratedSample:
    return GeneratedSample(q, f"{q}/{i}", "text", "1", 10, "stop")


async def test_deterministic_bounded_and_question_specific() -> None:
    b = Backend(seed=3)
    a = await b.score_batch([("", _s("qa", i)) for i in range(300)])
    again = await Backend(seed=3).score_batch([("", _s("qa", i)) for i in range(300)])
    assert [x.score for x in a] == [x.score for x in again]
    assert all(0.0 <= x.score <= 1.0 and len(x.step_scores) == 3 for x in a)
    other = await b.score_batch([("", _s("qb", i)) for i in range(300)])
    ma, mb = statistics.fmean(x.score for x in a), statistics.fmean(x.score for x in other)
    assert abs(ma - mb) > 0.01  # different hidden distributions
    mu, _ = b.question_params("qa")
    assert abs(ma - mu) < 0.1
    assert b.batches == [300, 300]
    other_seed = await Backend(seed=4).score_batch([("", _s("qa", 0))])
    assert other_seed[0].score != a[0].score
