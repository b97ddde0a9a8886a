"""Synthetic samples for load tests and CPU-free end-to-end tests.

Each question gets a hidden score distribution (a truncated normal with mu, sigma drawn from
the question id) and a token-length distribution; each sample draws a quality q from it,
is correct with probability q ** 4, and carries ``mean_logprob = log q`` so the
``confidence`` verifier scores it q. Deterministic per (seed, sample id). ``delay`` seconds per
sample (or ``token_delay`` per token) simulate decoding; cancellation stops it at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

from optscale.engines.generation.base import sample_id, validate_request
from optscale.engines.seeded import seeded_rng
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample

_rng = seeded_rng


class Backend:
    name = "sim"
    model_name = "sim"

    def __init__(
        self,
        seed: int = 0,
        *,
        token_delay: float = 0.0,
        max_k: int = 64,
        max_tokens: int = 4096,
        answer: str = "42",
    ) -> None:
        self.seed = seed
        self.token_delay = token_delay
        self.max_k = max_k
        self.max_tokens = max_tokens
        self.answer = answer
        self.tokens_total = 0
        self.token_log: list[tuple[str, float, int]] | None = None  # (question, time, tokens)

    def question_params(self, question_id: str) -> tuple[float, float]:
        r = _rng(self.seed, "q", question_id)
        return r.uniform(0.4, 0.98), r.uniform(0.02, 0.2)

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        validate_request(request, max_k=self.max_k, max_tokens=self.max_tokens)
        mu, sigma = self.question_params(request.question_id)
        for i in range(request.k):
            sid = sample_id(request, i)
            r = _rng(self.seed, "s", sid)
            q = -1.0
            while not 0.0 < q <= 1.0:
                q = r.gauss(mu, sigma)
            n = min(request.params.max_tokens, max(1, int(r.lognormvariate(5.0, 0.4))))
            for done in range(0, n, 8):  # decode in steps of 8 tokens; cancel stops between
                step = min(8, n - done)
                if self.token_delay:
                    await asyncio.sleep(self.token_delay * step)
                self.tokens_total += step
                if self.token_log is not None:
                    self.token_log.append((request.question_id, time.monotonic(), step))
            ans = self.answer if r.random() < q**4 else str(r.randint(0, 9))
            yield GeneratedSample(
                question_id=request.question_id,
                sample_id=sid,
                text=f"synthetic reasoning ... \\boxed{{{ans}}}",
                answer=ans,
                completion_tokens=n,
                finish_reason="stop",
                mean_logprob=math.log(q),
                step_logprobs=(math.log(q),),
            )
