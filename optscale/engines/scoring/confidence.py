"""The generator's own token confidence as a score in [0, 1]: the CPU default verifier.

Step score = exp(mean token log-prob of the step) (the geometric-mean token probability);
the completion's score = an aggregation of its step scores: ``mean`` (the default, as the paper
aggregates PRM step rewards), ``min``, ``last`` or ``product``.
A sample without log-probs cannot be scored and gets a clear error. Free: no second model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from optscale.aggregate import aggregate, check_aggregation
from optscale.errors import InvalidArgumentError
from optscale.types import GeneratedSample, ScoredSample


class Backend:
    name = "confidence"
    model_name = "token-confidence"

    def __init__(self, aggregation: str = "mean") -> None:
        self.aggregation = check_aggregation(aggregation)

    def score_one(self, sample: GeneratedSample) -> ScoredSample:
        steps = sample.step_logprobs or (
            (sample.mean_logprob,) if sample.mean_logprob is not None else ()
        )
        if not steps:
            raise InvalidArgumentError(
                "sample", sample.sample_id, "has no token log-probs to score (empty completion?)"
            )
        for lp in steps:
            if not (math.isfinite(lp) and lp <= 0.0):
                raise InvalidArgumentError("step_logprobs", lp, "must be finite and <= 0")
        step_scores = tuple(math.exp(lp) for lp in steps)
        score = aggregate(self.aggregation, step_scores)
        return ScoredSample(sample, score, step_scores)

    async def score_batch(self, items: Sequence[tuple[str, GeneratedSample]]) -> list[ScoredSample]:
        return [self.score_one(s) for _, s in items]
