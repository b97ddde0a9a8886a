"""Slots of a batch with a wave limit (``BatchBudget.wave``): at most ``wave`` of the batch's
samples in flight on this controller; a question that wants a sample waits for a slot, and a
freed slot goes to the waiting question whose policy prices one more sample highest
(``Decision.priority``: expected gain in P(correct) per expected token, from ``bayes`` /
``hybrid``; policies that do not price samples rank as ``inf``: first come, first served).
This is the greedy batch allocator of :mod:`optscale.allocation`, run over the questions this
controller owns; the batch's token budget (``OutOfBudget``) ends it.

Batch DSC (``dsc``, :mod:`optscale.batch_dsc`) shares its batch's easy/hard boundary through
the store's board (``store.dsc``): :func:`dsc_refresh` before every decision (reporting a
finished probe), :func:`dsc_stopped` when a hard question stops (its count pre-allocates the
next hard one)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from optscale.batch_dsc import BatchDSC, DscBoards, hard_count, probe_report
from optscale.loop import QuestionLoop, Stop
from optscale.ports import StateStore
from services.controller.ownership import OwnedQuestion

__all__ = ["BatchWaves", "dsc_refresh", "dsc_stopped", "over_budget"]


async def dsc_refresh(store: StateStore, loop: QuestionLoop) -> QuestionLoop:
    """A ``dsc`` question's loop with a fresh view of its batch's board (its probe reported
    first, once it has one); other loops as they are."""
    pol = loop.policy
    if not isinstance(pol, BatchDSC):
        return loop
    boards: DscBoards = getattr(store, "dsc")  # noqa: B009 (not part of the StateStore seam)
    view = await boards.step(pol.batch, pol.rank, probe_report(pol, loop.state), pol.window)
    return dataclasses.replace(loop, policy=pol.seeing(view))


async def dsc_stopped(store: StateStore, loop: QuestionLoop, stop: Stop) -> None:
    """A hard ``dsc`` question that stopped by itself reports its sample count."""
    n = hard_count(loop.policy, stop.decision, loop.state)
    if n is not None and isinstance(loop.policy, BatchDSC):
        boards: DscBoards = getattr(store, "dsc")  # noqa: B009
        await boards.hard_done(loop.policy.batch, n)


async def over_budget(store: StateStore, o: OwnedQuestion, tokens: int) -> bool:
    """Has the question's batch spent its token budget, counting ``tokens`` more? (A soft cap:
    controllers check the shared count before acting on a score, and charge it after the score
    is applied; samples in flight at the stop are cut, not charged.)"""
    cfg = o.config
    if cfg.batch_id is None or cfg.batch_budget is None or o.loop.out_of_budget:
        return False
    return await store.batch_spent(cfg.batch_id) + tokens >= cfg.batch_budget


class BatchWaves:
    def __init__(self) -> None:
        self.waiting: dict[str, dict[str, float]] = {}  # batch -> {question: priority}

    def wait(self, batch: str, question: str, priority: float | None) -> None:
        self.waiting.setdefault(batch, {})[question] = math.inf if priority is None else priority

    def forget(self, batch: str, question: str) -> None:
        self.waiting.get(batch, {}).pop(question, None)

    def next_up(self, batch: str) -> str | None:
        """The waiting question of highest priority (ties: the one waiting longest), removed."""
        waiting = self.waiting.get(batch)
        if not waiting:
            return None
        q = max(waiting, key=lambda k: waiting[k])  # max keeps the first of equals
        del waiting[q]
        return q

    @staticmethod
    def in_flight(owned: Iterable[OwnedQuestion], batch: str) -> int:
        return sum(o.loop.state.n_inflight for o in owned if o.config.batch_id == batch)
