"""The generator's own token confidence as a score in [0, 1]: the CPU default verifier.

Step score = exp(mean token log-prob of the step) (the geometric-mean token probability);
the completion's score = mean of its step scores, as the paper aggregates PRM step rewards.
A sample without log-probs cannot be scored and gets a clear error. Free: no second model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from optscale.errors import InvalidArgumentError
from optscale.types import GeneratedSample, ScoredSample


class Backend:
    name = "confidence"
    model_name = "token-confidence"

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
        score = min(1.0, max(0.0, math.fsum(step_scores) / len(step_scores)))
        return ScoredSample(sample, score, step_scores)

    async def score_batch(self, items: Sequence[tuple[str, GeneratedSample]]) -> list[ScoredSample]:
        return [self.score_one(s) for _, s in items]
