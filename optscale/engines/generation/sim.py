"""Synthetic samples for load tests and CPU-free end-to-end tests.

Each question gets a hidden score distribution (a truncated normal with mu, sigma drawn from
the question id) and a token-length distribution; each sample draws a quality q from it,
is correct with probability q ** 4, and carries ``mean_logprob = log q`` so the
``confidence`` verifier scores it q. Deterministic per (seed, sample id). ``delay`` seconds per
sample (or ``token_delay`` per token) simulate decoding; cancellation stops it at once.

``steps > 1``: a sample's tokens are cut into that many equal steps, step ``j`` with log-prob
``log q_j``, ``q_j`` drawn around q (``step_token_ends`` reported). ``script`` (tests): the
samples named in it come out exactly as scripted (answer, step log-probs, step token ends).

**Step judge** (prefix pruning, :class:`~optscale.ports.StepJudge`): with a request's
``step_judge`` the k samples decode in lockstep, one token per tick each (replay's ``"length"``
model, :mod:`optscale.episode`), and are yielded as they finish; at every step end but the last
the judge is asked, and a judged-out sample is yielded at once as ``"pruned"`` with the tokens
and steps decoded by then and no answer. Events at the same tick go by sample index, a step end
before the same sample's finish (replay's order), so with a consumer that records each sample
before asking for the next one, pruning decisions are replay's.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from optscale.engines.generation.base import sample_id, validate_request
from optscale.engines.seeded import seeded_rng
from optscale.errors import InvalidArgumentError
from optscale.ports import GenerateRequest, StepJudge
from optscale.types import GeneratedSample

_rng = seeded_rng
_DONE = 1 << 30  # sorts after every step end of the same tick and sample


@dataclass(frozen=True, slots=True)
class ScriptedSample:
    """A sample the sim produces exactly: its answer, each step's mean token log-prob and the
    tokens decoded by the end of each step (the last: its completion tokens)."""

    answer: str
    step_logprobs: tuple[float, ...]
    step_token_ends: tuple[int, ...]

    def __post_init__(self) -> None:
        ends, lps = self.step_token_ends, self.step_logprobs
        if not ends or len(ends) != len(lps):
            raise InvalidArgumentError("step_token_ends", ends, "one end per step log-prob")
        if any(b <= a for a, b in zip((0, *ends), ends, strict=False)):
            raise InvalidArgumentError("step_token_ends", ends, "must increase from >= 1")
        if not all(math.isfinite(x) and x <= 0 for x in lps):
            raise InvalidArgumentError("step_logprobs", lps, "must be finite and <= 0")


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
        steps: int = 1,
        script: Mapping[str, ScriptedSample] | None = None,
    ) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InvalidArgumentError("steps", steps, "must be an integer >= 1")
        self.seed = seed
        self.token_delay = token_delay
        self.max_k = max_k
        self.max_tokens = max_tokens
        self.answer = answer
        self.steps = steps
        self.script = dict(script or {})
        self.tokens_total = 0
        self.token_log: list[tuple[str, float, int]] | None = None  # (question, time, tokens)

    def question_params(self, question_id: str) -> tuple[float, float]:
        r = _rng(self.seed, "q", question_id)
        return r.uniform(0.4, 0.98), r.uniform(0.02, 0.2)

    def draft(self, request: GenerateRequest, i: int) -> GeneratedSample:
        """Sample ``i`` of the request as it will finish (nothing decoded yet)."""
        sid = sample_id(request, i)
        if sid in self.script:
            sc = self.script[sid]
            return _sample(request, sid, sc.answer, sc.step_logprobs, sc.step_token_ends, "stop")
        mu, sigma = self.question_params(request.question_id)
        r = _rng(self.seed, "s", sid)
        q = -1.0
        while not 0.0 < q <= 1.0:
            q = r.gauss(mu, sigma)
        n = min(request.params.max_tokens, max(1, int(r.lognormvariate(5.0, 0.4))))
        ans = self.answer if r.random() < q**4 else str(r.randint(0, 9))
        k = min(self.steps, n)
        if k == 1:
            return _sample(request, sid, ans, (math.log(q),), (), "stop", n)
        qs = [min(1.0, max(1e-3, r.gauss(q, 0.05))) for _ in range(k)]
        ends = tuple(n * j // k for j in range(1, k + 1))
        return _sample(request, sid, ans, tuple(math.log(x) for x in qs), ends, "stop")

    async def _tick(self, question_id: str, tokens: int, ticks: int) -> None:
        if self.token_delay and ticks:
            await asyncio.sleep(self.token_delay * ticks)
        self.tokens_total += tokens
        if self.token_log is not None and tokens:
            self.token_log.append((question_id, time.monotonic(), tokens))

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GeneratedSample]:
        validate_request(request, max_k=self.max_k, max_tokens=self.max_tokens)
        drafts = [self.draft(request, i) for i in range(request.k)]
        if request.step_judge is not None:
            async for s in self._lockstep(request, drafts, request.step_judge):
                yield s
            return
        for d in drafts:  # one after another; cancel stops between steps of 8 tokens
            for done in range(0, d.completion_tokens, 8):
                step = min(8, d.completion_tokens - done)
                await self._tick(request.question_id, step, step)
            yield d

    async def _lockstep(
        self, request: GenerateRequest, drafts: Sequence[GeneratedSample], judge: StepJudge
    ) -> AsyncIterator[GeneratedSample]:
        events = [(d.completion_tokens, i, _DONE) for i, d in enumerate(drafts)]
        for i, d in enumerate(drafts):
            if len(d.step_token_ends) == len(d.step_logprobs):
                events += [(end, i, j) for j, end in enumerate(d.step_token_ends[:-1], start=1)]
        heapq.heapify(events)
        live = set(range(len(drafts)))
        now = 0
        while events:
            t, i, steps = heapq.heappop(events)
            if i not in live:
                continue  # a pruned sample's later events
            await self._tick(request.question_id, (t - now) * len(live), t - now)
            now = t
            d = drafts[i]
            if steps == _DONE:
                live.discard(i)
                yield d
            elif judge(d.sample_id, d.step_logprobs[:steps]):
                live.discard(i)
                lps, ends = d.step_logprobs[:steps], d.step_token_ends[:steps]
                yield _sample(request, d.sample_id, None, lps, ends, "pruned")


def _sample(
    req: GenerateRequest,
    sid: str,
    answer: str | None,
    step_logprobs: tuple[float, ...],
    step_token_ends: tuple[int, ...],
    reason: str,
    tokens: int | None = None,
) -> GeneratedSample:
    """A sample with ``step_logprobs`` over ``step_token_ends`` (or one step of ``tokens``)."""
    n = tokens if tokens is not None else step_token_ends[-1]
    if step_token_ends:
        widths = [b - a for a, b in zip((0, *step_token_ends), step_token_ends, strict=False)]
        mean = math.fsum(lp * w for lp, w in zip(step_logprobs, widths, strict=True)) / n
    else:
        mean = step_logprobs[0]
    text = "synthetic reasoning ..." + (f" \\boxed{{{answer}}}" if answer is not None else "")
    return GeneratedSample(
        question_id=req.question_id,
        sample_id=sid,
        text=text,
        answer=answer,
        completion_tokens=n,
        finish_reason=reason,
        mean_logprob=mean,
        step_logprobs=step_logprobs,
        step_token_ends=step_token_ends,
    )
