"""Synthetic scores for load tests: no model, a configurable cost per sample.

Each question gets a hidden truncated normal on [0, 1] (mu, sigma drawn from the question
id); each sample's score is a deterministic draw from it (seeded by the sample id), with
three step scores around it. ``delay`` seconds per scored batch plus ``per_sample`` seconds
per sample emulate a GPU scorer's latency, so micro-batching and backpressure can be
load-tested on a CPU machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from optscale.engines.seeded import seeded_rng
from optscale.types import GeneratedSample, ScoredSample

_rng = seeded_rng


class Backend:
    name = "sim"
    model_name = "sim-scorer"

    def __init__(self, seed: int = 0, *, delay: float = 0.0, per_sample: float = 0.0) -> None:
        self.seed = seed
        self.delay = delay
        self.per_sample = per_sample
        self.batches: list[int] = []  # batch sizes seen (for micro-batching tests)

    def question_params(self, question_id: str) -> tuple[float, float]:
        r = _rng(self.seed, "vq", question_id)
        return r.uniform(0.3, 0.95), r.uniform(0.03, 0.25)

    def score_one(self, sample: GeneratedSample) -> ScoredSample:
        mu, sigma = self.question_params(sample.question_id)
        r = _rng(self.seed, "vs", sample.sample_id)
        score = -1.0
        while not 0.0 <= score <= 1.0:
            score = r.gauss(mu, sigma)
        steps = tuple(min(1.0, max(0.0, score + r.uniform(-0.05, 0.05))) for _ in range(3))
        return ScoredSample(sample, score, steps)

    async def score_batch(self, items: Sequence[tuple[str, GeneratedSample]]) -> list[ScoredSample]:
        self.batches.append(len(items))
        cost = self.delay + self.per_sample * len(items)
        if cost:
            await asyncio.sleep(cost)
        return [self.score_one(s) for _, s in items]
