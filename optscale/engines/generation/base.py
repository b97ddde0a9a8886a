"""What every generator backend shares: request validation, sample ids, log-prob summaries.

A backend is an object with ``name``, ``model_name``, ``async generate(request)`` — an async
iterator of finished :class:`~optscale.types.GeneratedSample` — and ``close()``. Closing the
iterator or cancelling the task that iterates it aborts every unfinished sample of the request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from optscale.errors import InvalidArgumentError
from optscale.ports import GenerateRequest, StepJudge

MAX_PROMPT_CHARS = 32_000
STEP_SEPARATOR = "\n\n"


def validate_request(req: GenerateRequest, *, max_k: int, max_tokens: int) -> GenerateRequest:
    """Raise :class:`InvalidArgumentError` naming the bad field."""
    if not req.question_id:
        raise InvalidArgumentError("question_id", req.question_id, "must not be empty")
    if not req.prompt.strip():
        raise InvalidArgumentError("prompt", req.prompt, "must not be empty")
    if len(req.prompt) > MAX_PROMPT_CHARS:
        raise InvalidArgumentError(
            "prompt", f"<{len(req.prompt)} chars>", f"longer than {MAX_PROMPT_CHARS} characters"
        )
    if isinstance(req.k, bool) or not isinstance(req.k, int) or not 1 <= req.k <= max_k:
        raise InvalidArgumentError("k", req.k, f"must be in [1, {max_k}]")
    if req.first_index < 0:
        raise InvalidArgumentError("first_index", req.first_index, "must be >= 0")
    req.params.validate(max_tokens_limit=max_tokens)
    return req


def sample_id(req: GenerateRequest, i: int) -> str:
    return f"{req.question_id}/{req.first_index + i}"


@dataclass(slots=True)
class LogprobSummary:
    """Running summary of the chosen tokens' log-probs, split into steps at blank lines."""

    total: float = 0.0
    n: int = 0
    certainty: float = 0.0
    steps: list[float] = field(default_factory=list)
    step_ends: list[int] = field(default_factory=list)  # tokens decoded when each step closed
    _step_total: float = 0.0
    _step_n: int = 0
    _tail: str = ""

    def add(self, logprob: float, piece: str, self_certainty: float = 0.0) -> bool:
        """Count one decoded token; ``True`` when it closed a step."""
        self.total += logprob
        self.n += 1
        self.certainty += self_certainty
        self._step_total += logprob
        self._step_n += 1
        self._tail = (self._tail + piece)[-8:]
        if STEP_SEPARATOR in self._tail:
            self._tail = ""
            return self._close_step()
        return False

    def _close_step(self) -> bool:
        closed = self._step_n > 0
        if closed:
            self.steps.append(self._step_total / self._step_n)
            self.step_ends.append(self.n)
        self._step_total, self._step_n = 0.0, 0
        return closed

    def finish(self) -> tuple[float | None, float | None, tuple[float, ...]]:
        """(mean log-prob, mean self-certainty, per-step mean log-probs)."""
        self._close_step()
        if not self.n:
            return None, None, ()
        return self.total / self.n, self.certainty / self.n, tuple(self.steps)


def judged_out(judge: StepJudge | None, sample_id: str, summary: LogprobSummary) -> bool:
    """Ask the request's step judge (if any) about a sample whose step just closed: abort?"""
    return judge is not None and bool(judge(sample_id, tuple(summary.steps)))


def log_softmax_at(logits: object, token: int) -> tuple[float, float]:
    """(log p(token), self-certainty KL(uniform || p)) from one row of raw logits."""
    import numpy as np

    row = np.asarray(logits, dtype=np.float64)
    m = float(row.max())
    lse = m + math.log(float(np.exp(row - m).sum()))
    logp_token = float(row[token]) - lse
    kl_uniform = -math.log(row.size) - (float(row.mean()) - lse)
    return logp_token, kl_uniform
