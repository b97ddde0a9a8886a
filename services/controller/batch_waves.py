"""Slots of a batch with a wave limit (``BatchBudget.wave``): at most ``wave`` of the batch's
samples in flight on this controller; a question that wants a sample waits for a slot, and a
freed slot goes to the waiting question whose policy prices one more sample highest
(``Decision.priority``: expected gain in P(correct) per expected token, from ``bayes`` /
``hybrid``; policies that do not price samples rank as ``inf``: first come, first served).
This is the greedy batch allocator of :mod:`optscale.allocation`, run over the questions this
controller owns; the batch's token budget (``OutOfBudget``) ends it.

Before every decision the worker calls :func:`refresh`: batch DSC (``dsc``,
:mod:`optscale.batch_dsc`) reads its batch's easy/hard boundary from the store's board
(``store.dsc``; reporting a finished probe first), and a question of a budgeted batch with a
``give_up`` option is given up on when its posterior says no sample is likely right
(:mod:`optscale.give_up`, the replay allocator's rule; one store read per decision for such
questions). :func:`dsc_stopped` runs when a question stops (a hard ``dsc`` question's count
pre-allocates the next hard one)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from optscale.batch_dsc import BatchDSC, DscBoards, hard_count, probe_report
from optscale.give_up import GaveUp, give_up_setting, gives_up
from optscale.loop import QuestionLoop, Stop
from optscale.ports import StateStore
from optscale.question_state import choose_best
from services.controller.ownership import OwnedQuestion

__all__ = ["BatchWaves", "dsc_stopped", "over_budget", "refresh"]


async def refresh(store: StateStore, o: OwnedQuestion, loop: QuestionLoop) -> QuestionLoop:
    """``loop`` (the question's, possibly one score ahead of ``o.loop``) ready to decide: a
    ``dsc`` question's view of its board refreshed, a question given up on stopped."""
    loop = await _dsc_view(store, loop)
    if await _given_up(store, o, loop):
        choose = getattr(loop.policy, "choose", choose_best)
        loop = dataclasses.replace(loop, policy=GaveUp(loop.policy.name, loop.policy.n_max, choose))
    return loop


async def _given_up(store: StateStore, o: OwnedQuestion, loop: QuestionLoop) -> bool:
    cfg, st = o.config, loop.state
    if cfg.batch_budget is None or st.best is None or isinstance(loop.policy, GaveUp):
        return False
    level, g = give_up_setting(cfg.options)
    if level <= 0:
        return False
    sq = await store.get(o.question_id)
    stored = sq.observations if sq is not None else ()
    scores = [ob.score for ob in stored]
    if st.last is not None and all(ob.sample_id != st.last.sample_id for ob in stored):
        scores.append(st.last.score)  # the score being applied (not in the store yet)
    return gives_up(st, scores, n_max=loop.policy.n_max, level=level, g=g, prior=cfg.prior)


async def _dsc_view(store: StateStore, loop: QuestionLoop) -> QuestionLoop:
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
