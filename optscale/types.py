"""Plain data passed between the stages: questions, sampling parameters, samples, scores.

These are the in-process forms of the protobuf messages in ``proto/optscale/v1``; the service
adapters convert at the edge. No I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from optscale.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class Question:
    """One question to solve. ``answer`` is the reference answer when known (for grading)."""

    id: str
    text: str
    answer: str | None = None
    dataset: str | None = None


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling parameters (paper defaults: temperature 0.7, top_p 0.95)."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int | None = None

    def validate(self, *, max_tokens_limit: int = 32768) -> SamplingParams:
        if not (math.isfinite(self.temperature) and 0.0 <= self.temperature <= 5.0):
            raise InvalidArgumentError("temperature", self.temperature, "must be in [0, 5]")
        if not (math.isfinite(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise InvalidArgumentError("top_p", self.top_p, "must be in (0, 1]")
        if not 1 <= self.max_tokens <= max_tokens_limit:
            raise InvalidArgumentError(
                "max_tokens", self.max_tokens, f"must be in [1, {max_tokens_limit}]"
            )
        return self


@dataclass(frozen=True, slots=True)
class GeneratedSample:
    """One finished completion, as the generator reports it."""

    question_id: str
    sample_id: str
    text: str
    answer: str | None
    completion_tokens: int
    finish_reason: str  # "stop" | "length" | "aborted" | "error"
    mean_logprob: float | None = None  # mean token log-prob of the completion (free confidence)
    self_certainty: float | None = None  # mean KL(uniform || p) over positions, when available
    step_logprobs: tuple[float, ...] = ()  # mean token log-prob of each "\n\n"-separated step
    gen_seconds: float = 0.0
    # completion tokens decoded by the end of each step (same steps as step_logprobs; the last
    # is completion_tokens): where a prefix scorer could judge, and abort, the sample
    step_token_ends: tuple[int, ...] = ()
    prompt_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ScoredSample:
    """A sample with its verifier score in [0, 1] and per-step scores."""

    sample: GeneratedSample
    score: float
    step_scores: tuple[float, ...] = field(default_factory=tuple)

    @property
    def sample_id(self) -> str:
        return self.sample.sample_id

    @property
    def answer(self) -> str | None:
        return self.sample.answer

    @property
    def tokens(self) -> int:
        return self.sample.completion_tokens
