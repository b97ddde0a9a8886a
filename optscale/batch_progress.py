"""Progress of a batch of questions answered by the services: submitted vs answered, tokens
used, tokens saved against best-of-N at N_max (estimated per question as its tokens per
scored sample x N_max, as the controller's ``optscale_controller_tokens_bon_nmax_total``
does), accuracy over the graded results. Pure: ``optscale results`` and ``optscale status``
feed it what they read from Kafka.

The saving against the BoN curve's equal-accuracy point is not here: it needs N_max scored
samples per question, which a stopping run does not draw (``optscale replay`` prints it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from optscale.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class AnsweredQuestion:
    """What progress needs of one result."""

    status: str  # done | cancelled | failed
    stop_reason: str
    completion_tokens: int
    samples_used: int
    n_max: int
    correct: bool | None  # None: not graded (no reference, or grading gave up)

    def __post_init__(self) -> None:
        for name in ("completion_tokens", "samples_used", "n_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidArgumentError(name, v, "must be an integer >= 0")

    @property
    def bon_tokens(self) -> float:
        """Estimated tokens of best-of-N at N_max on this question (0 without a scored
        sample: nothing to estimate from)."""
        if not self.samples_used or not self.n_max:
            return 0.0
        return self.completion_tokens / self.samples_used * max(self.n_max, self.samples_used)


@dataclass
class BatchProgress:
    """Distinct submitted question ids and the first result of each answered question."""

    submitted: set[str] = field(default_factory=set)
    answered: dict[str, AnsweredQuestion] = field(default_factory=dict)

    def submit(self, question_id: str) -> None:
        self.submitted.add(question_id)

    def answer(self, question_id: str, result: AnsweredQuestion) -> bool:
        """Record a result; False when the question was answered already (a republish)."""
        if question_id in self.answered:
            return False
        self.answered[question_id] = result
        return True

    @property
    def total(self) -> int:
        """Questions of the batch: every submitted one, and any answered one whose submission
        was not seen (an older part of the topic, say)."""
        return len(self.submitted | self.answered.keys())

    @property
    def done(self) -> bool:
        return self.total > 0 and len(self.answered) == self.total

    def tokens(self) -> tuple[int, float]:
        """(tokens used, BoN-at-N_max estimate) over the answered questions."""
        rs = self.answered.values()
        return sum(r.completion_tokens for r in rs), sum(r.bon_tokens for r in rs)

    def accuracy(self) -> tuple[int, int]:
        """(correct, graded)."""
        graded = [r.correct for r in self.answered.values() if r.correct is not None]
        return sum(graded), len(graded)

    def line(self) -> str:
        """One progress line: answered / total, tokens, saving, accuracy where graded."""
        n, total = len(self.answered), self.total
        pct = f" ({100 * n / total:.0f}%)" if total else ""
        used, bon = self.tokens()
        parts = [f"answered {n}/{total}{pct}", f"tokens {used:,}"]
        if bon:
            parts.append(f"saved vs BoN@N_max {100 * (1 - used / bon):.1f}% (est.)")
        correct, graded = self.accuracy()
        if graded:
            parts.append(f"accuracy {100 * correct / graded:.1f}% ({correct}/{graded} graded)")
        return " | ".join(parts)

    def summary(self) -> str:
        """A table: the batch's counts, tokens, saving and accuracy; results by status and stop
        reason."""
        used, bon = self.tokens()
        correct, graded = self.accuracy()
        rs = list(self.answered.values())
        samples = sum(r.samples_used for r in rs)
        rows = [
            ("questions submitted", f"{self.total}"),
            ("answered", f"{len(rs)}"),
            ("not answered yet", f"{self.total - len(rs)}"),
            ("tokens used", f"{used:,}"),
            ("BoN@N_max tokens (est.)", f"{bon:,.0f}" if bon else "-"),
            ("saved vs BoN@N_max (est.)", f"{100 * (1 - used / bon):.1f}%" if bon else "-"),
            ("mean samples per answer", f"{samples / len(rs):.2f}" if rs else "-"),
            ("accuracy (graded)",
             f"{100 * correct / graded:.1f}% ({correct}/{graded})" if graded else "-"),
        ]
        by = Counter((r.status, r.stop_reason or "-") for r in rs)
        rows += [(f"  {status} / {reason}", f"{k}") for (status, reason), k in sorted(by.items())]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v:>12}" for k, v in rows)
