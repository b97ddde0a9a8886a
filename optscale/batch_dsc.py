"""Batch DSC in the one loop: difficulty-adaptive self-consistency (Wang et al., 2024, arXiv
2408.13457) across a batch of questions that are sampled in parallel, by any number of
drivers (replay's :func:`optscale.dsc.dsc_batch`, one or several controllers).

The paper's DSC is sequential: rank the batch, binary-search the easy/hard boundary by
probing, then run the hard questions one after another, each starting from the count the
previous hard question needed. Here every question runs its own loop at the same time, so the
batch-wide part lives on a shared **board** (:class:`DscBoard`; in Redis the hash
``ob:{<batch>}:dsc``, updated by one Lua script, the same transitions):

* **Ranking** is fixed at submission (``rank`` 0 = easiest of ``batch_size``; ``optscale
  submit --policy dsc`` ranks by the prior predictor's ``mu_bar``).
* **Partition.** The board keeps the boundary found so far: ranks ``<= easy_max`` are easy,
  ranks ``>= hard_min`` hard (``-1``: no hard one yet); the ranks between are *open*. The
  open question at the binary search's midpoint, ``(easy_max + 1 + hi) // 2`` (``hi`` =
  ``hard_min`` or ``batch_size``), probes: it keeps ``window`` samples alive at once. Every
  other open question samples **one at a time** until the boundary reaches it or it has
  ``window`` samples itself (no question waits without a sample in flight, so nothing needs a
  wake-up across controllers). A question with ``window`` scores that is still open reports
  its probe: the first ``window`` answers agree -> ``easy_max = rank``, else ``hard_min =
  rank`` (a report that the boundary has overtaken is ignored, so ``easy_max < hard_min``
  always holds).
* **Easy** questions answer with the majority of what they have (one sample when known easy
  before their first; the probe when their own probe agreed): stop reason ``easy``.
* **Hard** questions are pre-allocated ``alloc``: the sample count of the hard question that
  finished last on the board (``window`` before any), frozen per rank the first time the
  question is seen hard; then they grow in windows of ``window`` until the last window agrees
  (``agreed``) or N_max (``n_max``); majority vote. Their count is reported when they stop.

A driver refreshes the policy's view of the board before every decision
(:func:`probe_report` says what to report; ``policy.seeing(view)``) and reports a hard
question's count when it stops (:func:`hard_count`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from optscale.errors import InvalidArgumentError
from optscale.ids import check_question_id
from optscale.policies import _Base
from optscale.question_state import Decision, QuestionState, choose_majority, int_at_least

__all__ = [
    "DEFAULT_DSC_WINDOW",
    "BatchDSC",
    "DscBoard",
    "DscBoards",
    "DscView",
    "hard_count",
    "make_batch_dsc",
    "probe_report",
]

DEFAULT_DSC_WINDOW = 4


@dataclass(frozen=True, slots=True)
class DscView:
    """The board as one question sees it: the boundary and, once the question is hard, its
    frozen pre-allocation (``alloc``; 0 while it is not hard)."""

    easy_max: int = -1
    hard_min: int = -1
    alloc: int = 0

    def side(self, rank: int) -> str:
        if rank <= self.easy_max:
            return "easy"
        if 0 <= self.hard_min <= rank:
            return "hard"
        return "open"

    def midpoint(self, batch_size: int) -> int:
        hi = self.hard_min if self.hard_min >= 0 else batch_size
        return (self.easy_max + 1 + hi) // 2


@dataclass(slots=True)
class DscBoard:
    """One batch's board (the in-memory form of the Redis hash ``ob:{<batch>}:dsc``)."""

    easy_max: int = -1
    hard_min: int = -1
    alloc: int = 0  # the count of the hard question that finished last (0: none yet)
    frozen: dict[int, int] = field(default_factory=dict)  # rank -> its pre-allocation

    def step(self, rank: int, probe: bool | None, window: int) -> DscView:
        """Apply a probe report (``None``: none) of ``rank`` and return its view."""
        open_ = DscView(self.easy_max, self.hard_min).side(rank) == "open"
        if open_ and probe is True:
            self.easy_max = rank
        elif open_ and probe is False:
            self.hard_min = rank
        a = 0
        if 0 <= self.hard_min <= rank:
            a = self.frozen.setdefault(rank, self.alloc or window)
        return DscView(self.easy_max, self.hard_min, a)

    def hard_done(self, count: int) -> None:
        self.alloc = count


class DscBoards(Protocol):
    """The boards of all batches, shared by the drivers (Redis: ``services/controller/
    dsc_state.py``; memory: :class:`optscale.memory.InMemoryDscBoards`)."""

    async def step(self, batch: str, rank: int, probe: bool | None, window: int) -> DscView: ...

    async def hard_done(self, batch: str, count: int) -> None: ...


def _agree(answers: tuple[str | None, ...]) -> bool:
    return bool(answers) and answers[0] is not None and all(a == answers[0] for a in answers)


@dataclass(frozen=True, slots=True)
class BatchDSC(_Base):
    """``dsc``: one question of a batch under batch DSC (see the module docstring). ``view``:
    the board as last read by the driver (``None``: not read yet, every rank open)."""

    batch: str = ""
    rank: int = 0
    batch_size: int = 1
    window: int = DEFAULT_DSC_WINDOW
    view: DscView | None = None

    def seeing(self, view: DscView) -> BatchDSC:
        return replace(self, view=view)

    def side(self) -> str:
        return (self.view or DscView()).side(self.rank)

    def decide(self, state: QuestionState) -> Decision:
        if state.n_failed >= self.n_max:
            return self._stop(state, "failures")
        return self.step(state)

    def step(self, state: QuestionState) -> Decision:
        n, w, view = state.n_scored, self.window, self.view or DscView()
        side = view.side(self.rank)
        if side == "open" and n >= w:  # its own probe decides (the driver reports it)
            side = "easy" if _agree(state.answers[:w]) else "hard"
        if side == "easy":
            return self._stop(state, "easy") if n else Decision(False, 1, None, "easy")
        if side == "open":
            probing = self.rank == view.midpoint(self.batch_size)
            return Decision(False, w if probing else min(w, n + 1), None, "probe")
        a = min(self.n_max, max(w, view.alloc))
        if n < a:
            return Decision(False, a, None, "hard")
        if (n - a) % w == 0 and _agree(state.answers[-w:]):
            return self._stop(state, "agreed")
        if n >= self.n_max:
            return self._stop(state, "n_max")
        return Decision(False, min(self.n_max, a + ((n - a) // w + 1) * w), None, "hard")


def probe_report(policy: object, state: QuestionState) -> bool | None:
    """What a driver reports to the board before this decision: ``True`` / ``False`` (the
    question's probe agreed / did not) once an open question has ``window`` scores, else
    ``None``."""
    if not isinstance(policy, BatchDSC) or policy.side() != "open":
        return None
    if state.n_scored < policy.window:
        return None
    return _agree(state.answers[: policy.window])


def hard_count(policy: object, decision: Decision, state: QuestionState) -> int | None:
    """The count a hard question reports when it stops (``agreed`` / ``n_max``), else
    ``None``."""
    if not isinstance(policy, BatchDSC) or not decision.stop or policy.side() != "hard":
        return None
    return state.n_scored if decision.reason in ("agreed", "n_max") else None


def make_batch_dsc(n_max: int, options: dict[str, object]) -> BatchDSC:
    """``dsc`` from its options: ``dsc_batch`` (the batch id, the board's key), ``rank``,
    ``batch_size``, ``dsc_window`` (default 4)."""
    batch = check_question_id(options.get("dsc_batch"), "dsc_batch")
    size = int_at_least("batch_size", options.get("batch_size"), 1)
    rank = int_at_least("rank", options.get("rank"), 0)
    if rank >= size:
        raise InvalidArgumentError("rank", rank, f"must be < batch_size ({size})")
    w = int_at_least("dsc_window", options.get("dsc_window", DEFAULT_DSC_WINDOW), 1)
    return BatchDSC("dsc", n_max, choose_majority, batch, rank, size, min(w, n_max))
