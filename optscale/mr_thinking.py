"""Multi-round Thinking (MR-Thinking; Tian et al. 2025, "Think Twice", arXiv 2503.19855).

A baseline the OptScale paper compares against: the model answers, is shown its previous
answer and asked to answer again, for up to ``n_rounds`` rounds; the last round's answer is the
result. Round ``r`` (0-based) of a question is one sample whose prompt is the question prompt
(:func:`optscale.solve.build_prompt`) for ``r == 0`` and, after that, :data:`ROUND_TEMPLATE`
with the previous round's response in it. Optionally a question stops as soon as a round's
answer equals the previous round's (``stop_when_unchanged``).

Tokens are counted as for every other policy: the completion tokens of every round decoded
(prompt tokens, which grow with the carried answer, are not counted for anyone). Round ``r``
is sample ``f"{question_id}/{r}"`` with seed ``question_seed(seed, question_id) + r``, so round
0 is the same sample as best-of-N's first.

:func:`run_mr_thinking` drives it over the generator port in waves: round ``r`` of every
question still going is requested at once (rounds of one question are sequential; an engine
that decodes requests of different prompts together gets them together; the CPU llama.cpp
engine runs them one after the other); each round is reported (``on_round``) as soon as it
is decoded, not when its wave ends. Every round is kept in the result
(:meth:`MRResult.as_dict`), so :func:`summarize` can report any number of rounds <= the run's,
with or without the stop rule, from one run.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from optscale.errors import InvalidArgumentError
from optscale.grading import extract_answer, is_correct
from optscale.loop import question_seed
from optscale.ports import GenerateRequest, GeneratorClient
from optscale.types import GeneratedSample, Question, SamplingParams

__all__ = [
    "CARRY_MODES",
    "ROUND_TEMPLATE",
    "MRResult",
    "MRSettings",
    "Round",
    "carried_text",
    "next_round_prompt",
    "outcome_after",
    "round_prompt",
    "run_mr_thinking",
    "summarize",
]

# The paper's prompt for rounds after the first (Think Twice, sec. 2): the original question
# prompt, then the previous round's answer. This is the one place it is written.
ROUND_TEMPLATE = (
    "{question_prompt}\n"
    "The assistant's previous answer is: <answer> {previous} </answer>, and please re-answer."
)
# What of the previous round goes into <answer>: "response" = its whole response without any
# <think>...</think> block (the paper drops the reasoning of reasoning models and keeps what
# they show as the answer; our models have no thinking block, so it is the whole response);
# "answer" = only the final answer read from it.
CARRY_MODES = ("response", "answer")
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


@dataclass(frozen=True, slots=True)
class MRSettings:
    n_rounds: int = 4
    stop_when_unchanged: bool = False
    carry: str = "response"

    def validate(self) -> MRSettings:
        if self.n_rounds < 1:
            raise InvalidArgumentError("rounds", self.n_rounds, "must be >= 1")
        if self.carry not in CARRY_MODES:
            raise InvalidArgumentError("carry", self.carry, f"one of {', '.join(CARRY_MODES)}")
        return self


@dataclass(frozen=True, slots=True)
class Round:
    """One round of one question: its sample's response, answer and completion tokens."""

    index: int
    sample_id: str
    text: str
    answer: str | None
    tokens: int
    finish_reason: str
    seconds: float


def carried_text(previous: Round, carry: str = "response") -> str:
    """What of ``previous`` goes into the next round's prompt (see :data:`CARRY_MODES`)."""
    if carry == "answer":
        return previous.answer or ""
    return _THINK.sub("", previous.text).strip()


def round_prompt(question_prompt: str, previous: Round | None, carry: str = "response") -> str:
    """The prompt of the round after ``previous`` (``None``: the first round)."""
    if previous is None:
        return question_prompt
    return ROUND_TEMPLATE.format(
        question_prompt=question_prompt, previous=carried_text(previous, carry)
    )


def next_round_prompt(question_prompt: str, previous_answer: str | None, round_index: int) -> str:
    """The prompt of round ``round_index`` when only the previous round's extracted answer is
    at hand (the controller: Scored events carry answers, not texts): ``carry="answer"``."""
    if round_index == 0:
        return question_prompt
    return ROUND_TEMPLATE.format(question_prompt=question_prompt, previous=previous_answer or "")


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and is_correct(a, b)


def outcome_after(
    rounds: Sequence[Round], n_rounds: int, *, stop_when_unchanged: bool
) -> tuple[int, str]:
    """How many of ``rounds`` a run with these settings decodes, and why it stops there:
    ``unchanged`` (a round's answer equals the previous one's), ``n_max`` (``n_rounds``
    reached) or ``failed`` (the last round failed). ``rounds`` may be a longer run's: the
    rounds do not depend on the stop rule, so a prefix is that shorter run."""
    for i, r in enumerate(rounds[:n_rounds]):
        if r.finish_reason in ("error", "aborted"):
            return i + 1, "failed"
        if stop_when_unchanged and i > 0 and _same(r.answer, rounds[i - 1].answer):
            return i + 1, "unchanged"
    return min(n_rounds, len(rounds)), "n_max"


@dataclass(slots=True)
class MRResult:
    """A question's MR-Thinking run: every round, the last round's answer as the result."""

    id: str
    reference: str | None
    rounds: list[Round] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    n_rounds: int = 0
    policy: str = "mr_thinking"  # the policy name the controller runs it under

    @property
    def answer(self) -> str | None:
        done = [r for r in self.rounds if r.finish_reason not in ("error", "aborted")]
        return done[-1].answer if done else None

    @property
    def correct(self) -> bool | None:
        if self.reference is None:
            return None
        return bool(self.answer is not None and is_correct(self.answer, self.reference))

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.rounds)

    def as_dict(self, *, texts: bool = True) -> dict[str, Any]:
        rounds = [asdict(r) for r in self.rounds]
        if not texts:
            for r in rounds:
                del r["text"]
        return {
            "id": self.id,
            "answer": self.answer,
            "correct": self.correct,
            "reference": self.reference,
            "rounds_used": len(self.rounds),
            "tokens": self.tokens,
            "reason": self.reason,
            "seconds": self.seconds,
            "policy": self.policy,
            "n_max": self.n_rounds,
            "round_answers": [r.answer for r in self.rounds],
            "rounds": rounds,
        }


def summarize(
    results: Sequence[MRResult], n_rounds: int, *, stop_when_unchanged: bool
) -> dict[str, float]:
    """Accuracy, completion tokens and rounds per question of runs of ``n_rounds`` rounds,
    computed from ``results`` (runs of at least that many rounds, or stopped earlier)."""
    if not results:
        raise InvalidArgumentError("results", 0, "no questions to summarize")
    correct = tokens = used = 0
    for res in results:
        k, _ = outcome_after(res.rounds, n_rounds, stop_when_unchanged=stop_when_unchanged)
        part = MRResult(res.id, res.reference, list(res.rounds[:k]))
        correct += bool(part.correct)
        tokens += part.tokens
        used += k
    n = len(results)
    return {
        "rounds": n_rounds,
        "stop_when_unchanged": stop_when_unchanged,
        "questions": n,
        "accuracy": correct / n,
        "tokens_per_question": tokens / n,
        "rounds_per_question": used / n,
    }


async def _one_round(
    generator: GeneratorClient, req: GenerateRequest, style: str
) -> GeneratedSample | None:
    try:
        async for s in generator.generate(req):
            if s.answer is None:
                s = replace(s, answer=extract_answer(s.text, style))
            return s
    except asyncio.CancelledError:
        raise
    except Exception:  # a failed round ends its question (reason "failed")
        return None
    return None


async def run_mr_thinking(
    questions: Sequence[Question],
    generator: GeneratorClient,
    params: SamplingParams,
    settings: MRSettings,
    *,
    build_prompt: Callable[[Question], str],
    dataset: str | None = None,
    on_round: Callable[[Question, Round], None] | None = None,
    on_result: Callable[[MRResult], None] | None = None,
) -> list[MRResult]:
    """Run MR-Thinking on ``questions`` in waves (round ``r`` of every live question at
    once). ``build_prompt`` makes a question's first-round prompt. Returns one result per
    question, in order; ``on_result`` is called as each question stops."""
    settings.validate()
    t0 = time.perf_counter()
    base = params.seed if params.seed is not None else 0
    results = {q.id: MRResult(q.id, q.answer, n_rounds=settings.n_rounds) for q in questions}
    prompts = {q.id: build_prompt(q) for q in questions}
    live = list(questions)
    for r in range(settings.n_rounds):
        if not live:
            break
        reqs = []
        for q in live:
            prev = results[q.id].rounds[-1] if r else None
            reqs.append(
                GenerateRequest(
                    question_id=q.id,
                    prompt=round_prompt(prompts[q.id], prev, settings.carry),
                    k=1,
                    params=replace(params, seed=question_seed(base, q.id) + r),
                    first_index=r,
                )
            )

        async def step(q: Question, req: GenerateRequest) -> bool:
            """One round of ``q``, recorded as soon as it is decoded; True: go on."""
            s = await _one_round(generator, req, dataset or q.dataset or "math")
            res = results[q.id]
            if s is None:
                rnd = Round(req.first_index, f"{q.id}/{req.first_index}", "", None, 0, "error", 0.0)
            else:
                rnd = Round(
                    req.first_index,
                    s.sample_id,
                    s.text,
                    s.answer,
                    s.completion_tokens,
                    s.finish_reason,
                    round(s.gen_seconds, 3),
                )
            res.rounds.append(rnd)
            if on_round is not None:
                on_round(q, rnd)
            k, reason = outcome_after(
                res.rounds, settings.n_rounds, stop_when_unchanged=settings.stop_when_unchanged
            )
            if reason == "n_max" and k < settings.n_rounds:
                return True
            res.reason = reason
            res.seconds = round(time.perf_counter() - t0, 3)
            if on_result is not None:
                on_result(res)
            return False

        going = await asyncio.gather(*(step(q, req) for q, req in zip(live, reqs, strict=True)))
        still = [q for q, more in zip(live, going, strict=True) if more]
        live = still
    return [results[q.id] for q in questions]
