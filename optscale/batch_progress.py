"""Progress of a batch of questions answered by the services: submitted vs answered, tokens
used, tokens saved against best-of-N at N_max (estimated per question as its tokens per
scored sample x N_max, as the controller's ``optscale_controller_tokens_bon_nmax_total``
does), accuracy over the graded results. Pure: ``optscale results`` and ``optscale status``
feed it what they read from Kafka.

Two ways to count: every question seen on the topics (no batch id: the total is the distinct
question ids submitted), or one batch (``batch_id``): only results carrying that batch id
count, against the total ``optscale submit`` recorded for the batch (:class:`BatchRecord`).

The saving against the BoN curve's equal-accuracy point is not here: it needs N_max scored
samples per question, which a stopping run does not draw (``optscale replay`` prints it)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from optscale.errors import DataError, InvalidArgumentError
from optscale.ids import check_question_id


@dataclass(frozen=True, slots=True)
class AnsweredQuestion:
    """What progress needs of one result."""

    status: str  # done | cancelled | failed
    stop_reason: str
    completion_tokens: int
    samples_used: int
    n_max: int
    correct: bool | None  # None: not graded (no reference, or grading gave up)
    batch_id: str = ""  # the batch the question was submitted in ("": none)

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


BAR_WIDTH = 20


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """``[#####...............]``: ``done`` of ``total`` in ``width`` cells (rounded down, so
    the bar is full only when all are done)."""
    filled = width * min(done, total) // total if total > 0 else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


@dataclass
class BatchProgress:
    """Distinct submitted question ids and the first result of each answered question; with
    ``batch_id``, only that batch's results, against ``expected`` (the recorded total)."""

    submitted: set[str] = field(default_factory=set)
    answered: dict[str, AnsweredQuestion] = field(default_factory=dict)
    batch_id: str | None = None
    expected: int | None = None

    def __post_init__(self) -> None:
        if (self.batch_id is None) != (self.expected is None):
            raise InvalidArgumentError("expected", self.expected, "given with batch_id only")
        if self.batch_id is not None:
            check_question_id(self.batch_id, "batch")
        if self.expected is not None and (
            isinstance(self.expected, bool) or not isinstance(self.expected, int)
            or self.expected < 0
        ):
            raise InvalidArgumentError("expected", self.expected, "must be an integer >= 0")

    def submit(self, question_id: str) -> None:
        self.submitted.add(question_id)

    def answer(self, question_id: str, result: AnsweredQuestion) -> bool:
        """Record a result; False when the question was answered already (a republish) or,
        counting one batch, when the result is another batch's (or has none)."""
        if self.batch_id is not None and result.batch_id != self.batch_id:
            return False
        if question_id in self.answered:
            return False
        self.answered[question_id] = result
        return True

    @property
    def total(self) -> int:
        """Questions of the batch: its recorded total (one batch), else every submitted one
        and any answered one whose submission was not seen (an older part of the topic, say);
        never fewer than the answered ones."""
        if self.expected is not None:
            return max(self.expected, len(self.answered))
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
        """One progress line: answered / total with a bar, tokens, saving, accuracy where
        graded."""
        n, total = len(self.answered), self.total
        pct = f" ({100 * n / total:.0f}%) {bar(n, total)}" if total else ""
        used, bon = self.tokens()
        parts = [f"answered {n}/{total}{pct}", f"tokens {used:,}"]
        if self.batch_id is not None:
            parts.insert(0, f"batch {self.batch_id}")
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
        rows = [] if self.batch_id is None else [("batch", self.batch_id)]
        rows += [
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


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """What ``optscale submit`` records of a batch: its distinct questions so far and when it
    was first and last submitted to (seconds since the epoch)."""

    batch_id: str
    total: int
    submitted_at: float
    updated_at: float

    @classmethod
    def from_hash(cls, batch_id: str, raw: Mapping[str, str]) -> BatchRecord | None:
        """The record from its stored fields; None when there are none (no such batch)."""
        if not raw:
            return None
        try:
            rec = cls(batch_id, int(raw["total"]), float(raw["submitted_at"]),
                      float(raw["updated_at"]))
        except (KeyError, ValueError) as exc:
            raise DataError(f"batch {batch_id}", f"malformed record {dict(raw)!r}") from exc
        if rec.total < 0:
            raise DataError(f"batch {batch_id}", f"negative total {rec.total}")
        return rec

    def progress(self) -> BatchProgress:
        """An empty progress counting this batch against its total."""
        return BatchProgress(batch_id=self.batch_id, expected=self.total)


def new_batch_id(now_s: float, suffix: str) -> str:
    """A batch id from the UTC time and a random ``suffix`` (hex, say):
    ``b20261129-200102-3f9a1c``. Checked with the question-id rules."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now_s))
    return check_question_id(f"b{stamp}-{suffix}", "batch-id")
