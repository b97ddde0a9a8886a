"""In-memory adapters of the controller's ports: a :class:`~optscale.ports.StateStore` and a
:class:`~optscale.ports.Publisher` in one process.

They serve fast unit tests of the controller's logic and single-process use; the Redis store
in ``services/controller/state.py`` implements the same transitions as Lua scripts, and the
controller's behavioural tests run against both, so the two cannot drift. Semantics (the
store's contract):

* ``create`` — once per question id (a repeat is a no-op and returns ``False``).
* Every later write carries the writer's owner epoch and is refused with ``FENCED`` when the
  stored epoch is newer; ``claim`` with a newer epoch takes the question over and forgets the
  old owner's samples in flight (dispatched falls back to scored + failed).
* Scores and failures are idempotent by sample id (``DUPLICATE``). A sample of an older owner
  epoch than the stored one (``sample_epoch``) is ``STALE``: its claim forgot it. A score of a
  final question, or beyond N_max scores, is ``LATE``: recorded, not counted.
* ``dispatch`` reserves ``k`` new indices without exceeding N_max live (dispatched - failed)
  samples (``OVER_N_MAX`` otherwise); ``apply_score`` with ``dispatch_k`` does the score and
  that reservation as one transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optscale.batch_dsc import DscBoard, DscView
from optscale.config import QuestionConfig
from optscale.policies import Observation
from optscale.ports import Applied, Outcome, ScoreWrite, StoredQuestion

__all__ = ["InMemoryDscBoards", "InMemoryStateStore", "PublishedMessage", "RecordingPublisher"]


@dataclass(slots=True)
class _Question:
    status: str
    epoch: int
    partition: int
    config: QuestionConfig
    n_max: int
    n_dispatched: int = 0
    n_failed: int = 0
    n_scored: int = 0
    next_index: int = 0
    tokens: int = 0
    applied: set[str] = field(default_factory=set)
    observations: list[Observation] = field(default_factory=list)
    late: list[Observation] = field(default_factory=list)
    result: dict[str, Any] | None = None


_COPIED = "status epoch partition config n_dispatched n_failed n_scored next_index tokens".split()


class InMemoryStateStore:
    """The state store in a dict. ``calls`` counts transitions (for tests)."""

    def __init__(self) -> None:
        self._epoch = 0
        self._questions: dict[str, _Question] = {}
        self._active: dict[int, set[str]] = {}
        self._batches: dict[str, int] = {}
        self.dsc = InMemoryDscBoards()  # batch DSC's boards (optscale.batch_dsc.DscBoards)
        self.calls = 0

    async def batch_spent(self, batch_id: str) -> int:
        return self._batches.get(batch_id, 0)

    async def batch_charge(self, batch_id: str, tokens: int) -> int:
        self.calls += 1
        self._batches[batch_id] = self._batches.get(batch_id, 0) + int(tokens)
        return self._batches[batch_id]

    async def new_epoch(self) -> int:
        self._epoch += 1
        return self._epoch

    async def create(self, q: str, epoch: int, config: QuestionConfig, partition: int) -> bool:
        self.calls += 1
        if q in self._questions:
            return False
        self._questions[q] = _Question("active", epoch, partition, config, config.n_max)
        self._active.setdefault(partition, set()).add(q)
        return True

    def _owned(self, q: str, epoch: int) -> _Question | Outcome:
        self.calls += 1
        s = self._questions.get(q)
        if s is None:
            return Outcome.MISSING
        if s.epoch > epoch:
            return Outcome.FENCED
        return s

    async def claim(self, q: str, epoch: int, *, forget_inflight: bool = False) -> Outcome:
        s = self._owned(q, epoch)
        if isinstance(s, Outcome):
            return s
        if s.epoch < epoch or forget_inflight:
            s.epoch = epoch
            s.n_dispatched = s.n_scored + s.n_failed
        return Outcome.APPLIED

    @staticmethod
    def _reserve(s: _Question, k: int, n_max: int) -> int | None:
        if s.n_dispatched - s.n_failed + k > n_max:
            return None
        first = s.next_index
        s.next_index += k
        s.n_dispatched += k
        return first

    async def dispatch(self, q: str, epoch: int, k: int, n_max: int) -> Applied:
        s = self._owned(q, epoch)
        if isinstance(s, Outcome):
            return Applied(s)
        if s.status != "active":
            return Applied(Outcome.NOT_ACTIVE)
        first = self._reserve(s, k, n_max)
        return Applied(Outcome.OVER_N_MAX) if first is None else Applied(Outcome.APPLIED, first)

    def _first_sight(self, s: _Question, sample_id: str, sample_epoch: int) -> Outcome | None:
        if sample_id in s.applied:
            return Outcome.DUPLICATE
        s.applied.add(sample_id)
        if 0 < sample_epoch < s.epoch:
            return Outcome.STALE
        if s.status != "active":
            return Outcome.LATE
        return None

    async def apply_score(self, q: str, epoch: int, write: ScoreWrite) -> Applied:
        s = self._owned(q, epoch)
        if isinstance(s, Outcome):
            return Applied(s)
        observation = write.observation
        seen = self._first_sight(s, observation.sample_id, write.sample_epoch)
        if seen is Outcome.DUPLICATE:
            return Applied(seen)
        if seen is not None or (s.n_max > 0 and s.n_scored >= s.n_max):
            s.late.append(observation)
            return Applied(seen or Outcome.LATE)
        s.observations.append(observation)
        s.n_scored += 1
        s.tokens += int(observation.tokens)
        s.n_dispatched = max(s.n_dispatched, s.n_scored + s.n_failed)
        if write.dispatch_k > 0:
            return Applied(Outcome.APPLIED, self._reserve(s, write.dispatch_k, write.n_max))
        return Applied(Outcome.APPLIED)

    async def apply_failure(
        self, q: str, epoch: int, sample_id: str, *, sample_epoch: int = 0
    ) -> Outcome:
        s = self._owned(q, epoch)
        if isinstance(s, Outcome):
            return s
        seen = self._first_sight(s, sample_id, sample_epoch)
        if seen is not None:
            return seen
        s.n_failed += 1
        s.n_dispatched = max(s.n_dispatched, s.n_scored + s.n_failed)
        return Outcome.APPLIED

    async def finalize(
        self, q: str, epoch: int, status: str, result: dict[str, Any], partition: int
    ) -> Outcome:
        s = self._owned(q, epoch)
        if isinstance(s, Outcome):
            return s
        if s.status != "active":
            return Outcome.DUPLICATE
        s.status, s.result = status, dict(result)
        self._active.get(partition, set()).discard(q)
        return Outcome.APPLIED

    async def active(self, partition: int) -> list[str]:
        return sorted(self._active.get(partition, ()))

    async def get(self, q: str) -> StoredQuestion | None:
        s = self._questions.get(q)
        if s is None:
            return None
        copied = {f: getattr(s, f) for f in _COPIED}
        result = None if s.result is None else dict(s.result)
        return StoredQuestion(q, observations=tuple(s.observations), result=result, **copied)


class InMemoryDscBoards:
    """:class:`optscale.batch_dsc.DscBoards` in a dict: one :class:`DscBoard` per batch."""

    def __init__(self) -> None:
        self.boards: dict[str, DscBoard] = {}

    async def step(self, batch: str, rank: int, probe: bool | None, window: int) -> DscView:
        return self.boards.setdefault(batch, DscBoard()).step(rank, probe, window)

    async def hard_done(self, batch: str, count: int) -> None:
        self.boards.setdefault(batch, DscBoard()).hard_done(count)


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    topic: str
    key: str
    value: bytes
    reason: str | None


class RecordingPublisher:
    """A publisher that keeps every message, in order (``messages``)."""

    def __init__(self) -> None:
        self.messages: list[PublishedMessage] = []

    async def __call__(self, topic: str, key: str, value: bytes, *args: Any, **kw: Any) -> None:
        """As :class:`~optscale.ports.Publisher` (``reason``, ``acked``); always "acked"."""
        reason = kw.get("reason", args[0] if args else None)
        self.messages.append(PublishedMessage(topic, key, value, reason))

    def on(self, topic: str) -> list[PublishedMessage]:
        return [m for m in self.messages if m.topic == topic]
