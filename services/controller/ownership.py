"""Which questions this controller owns: partition assignment and revocation, admission under
backpressure, resuming a question from the store, and the liveness sweep.

A question is owned through its Kafka partition: on assignment the controller takes a fresh
owner epoch and claims every active question of the partition in the store (a claim with a
newer epoch fences the previous owner and forgets its samples in flight), rebuilding each
question's :class:`~optscale.loop.QuestionLoop` from the stored counts. At most
``max_active`` questions sample at once; the rest wait (id and partition only, FIFO) and are
admitted as others finish. What to do with an owned question is the event handler's job
(:mod:`services.controller.worker`), reached through :meth:`QuestionOwnership._advance`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from optscale.config import QuestionConfig
from optscale.loop import QuestionLoop
from optscale.ports import Outcome, StateStore
from optscale.solve import build_prompt
from optscale.types import Question
from services.controller.lease import cancel_all


@dataclass
class OwnedQuestion:
    """A question this controller owns: its loop and the open ``Generate`` streams (leases)."""

    question_id: str
    partition: int
    config: QuestionConfig
    loop: QuestionLoop
    prompt: str
    leases: dict[asyncio.Task[None], int] = field(default_factory=dict)
    # monotonic time of the last progress: taken up, samples dispatched, an event applied
    progress_at: float = field(default_factory=time.monotonic)


def new_loop(question_id: str, config: QuestionConfig) -> QuestionLoop:
    return QuestionLoop.start(question_id, config.build_policy(), seed=config.sampling.seed)


class QuestionOwnership:
    """Ownership and admission; subclasses decide and act (:meth:`_advance`)."""

    def __init__(
        self,
        store: StateStore,
        *,
        log: Any = None,
        max_active: int = 512,
        idle_rebuild_s: float = 120.0,
        fence_grace_s: float = 15.0,
    ) -> None:
        self.store = store
        # questions of our partitions that a newer epoch holds (first seen, monotonic); see sweep
        self.fenced_at: dict[str, float] = {}
        self.fence_grace_s = fence_grace_s
        self.log = log
        self.epoch = 0
        self.owned: dict[str, OwnedQuestion] = {}
        self.partitions: set[int] = set()
        self.stats: dict[str, int] = {
            "events": 0,
            "applied": 0,
            "duplicates": 0,
            "late": 0,
            "stale": 0,
            "fenced": 0,
        }
        # backpressure: at most max_active questions sampling at once; the rest wait (id and
        # partition only, FIFO; their state is in the store) and are admitted as others finish
        self.max_active = max_active
        self.waiting: dict[str, int] = {}
        self._admitting = 0
        self.stale = False  # memory may disagree with the store: reset() before the next batch
        self.idle_rebuild_s = idle_rebuild_s

    async def _advance(self, o: OwnedQuestion) -> None:
        raise NotImplementedError

    async def _final_seen(self, q: str, result: dict[str, Any]) -> None:
        """``q`` turned out to be final in the store (with ``result``) when taken up."""

    async def _check_final(self, q: str) -> None:
        """Call :meth:`_final_seen` if ``q`` is final in the store."""
        sq = await self.store.get(q)
        if sq is not None and sq.status != "active" and sq.result is not None:
            await self._final_seen(q, sq.result)

    # ------------------------------------------------------------------ partitions

    async def assign(self, partitions: set[int]) -> None:
        """New partitions: take a fresh epoch and resume every active question in them.
        Until that has completed, ``stale`` is set: if the store fails halfway, the partitions
        are still known and the consumer loop calls :meth:`reset` until it succeeds."""
        self.stale = True
        self.partitions |= partitions
        self.epoch = await self.store.new_epoch()
        for part in sorted(partitions):
            for q in await self.store.active(part):
                await self._admit(q, part)
        self.stale = False

    async def revoke(self, partitions: set[int]) -> None:
        for q, o in list(self.owned.items()):
            if o.partition in partitions:
                await self._drop(q)
        for q, part in list(self.waiting.items()):
            if part in partitions:
                del self.waiting[q]
        self.partitions -= partitions
        self.fenced_at.clear()

    async def reset(self) -> None:
        """Forget everything in memory and take every owned partition again under a fresh
        epoch, from the store — after an infrastructure error (Redis or Kafka unreachable)
        left it unknown which writes happened: in-flight leases are cancelled and re-dispatched
        from the stored counts, exactly as after a failover."""
        partitions = set(self.partitions)
        await self.revoke(partitions)
        await self.assign(partitions)  # ``stale`` until everything is taken up again

    async def close(self) -> None:
        for q in list(self.owned):
            await self._drop(q)

    # ------------------------------------------------------------------ admission

    async def _admit(
        self, q: str, partition: int, *, created: QuestionConfig | None = None
    ) -> None:
        """Take ``q`` up if there is room, else queue it. ``created``: the config of a question
        this worker has just created under its epoch — nothing to claim or read back."""
        if q in self.owned:
            return
        if not self._has_room():
            self.waiting.setdefault(q, partition)
            return
        self.waiting.pop(q, None)
        self._admitting += 1  # a batch admits concurrently: hold the slot across the awaits
        try:
            if created is not None:
                await self._take_up(q, partition, created, new_loop(q, created))
            else:
                await self._resume(q, partition)
        finally:
            self._admitting -= 1

    def _has_room(self) -> bool:
        return len(self.owned) + self._admitting < self.max_active

    async def fill(self) -> None:
        """Admit waiting questions while there is room (the consumer task calls this between
        batches, so it never races a batch's own handling of the same question)."""
        while self.waiting and self._has_room():
            q = next(iter(self.waiting))
            await self._resume(q, self.waiting.pop(q))

    async def sweep(self) -> None:
        """Liveness: take up any active question of an owned partition that nobody here owns
        (its events may all have been consumed before a crash), and re-decide owned questions
        with nothing in flight here. Called by the consumer task between batches."""
        for part in sorted(self.partitions):
            for q in await self.store.active(part):
                o = self.owned.get(q)
                if o is None:
                    if q not in self.waiting:
                        await self._admit(q, part)
                        if q not in self.owned and q not in self.waiting and self.log:
                            self.log.warning(
                                "active question not taken up",
                                question_id=q,
                                partition=part,
                                epoch=self.epoch,
                            )
                    continue
                if o.leases:
                    continue
                if time.monotonic() - o.progress_at < self.idle_rebuild_s:
                    await self._advance(o)
                    continue
                # nothing in flight here, no event for idle_rebuild_s, yet not finished: what it
                # waits for is lost (or memory disagrees with the store); rebuild and re-dispatch.
                # A safety net: scores still queued at the verifiers arrive well before it.
                self.stats["rebuilt"] = self.stats.get("rebuilt", 0) + 1
                if self.log is not None:
                    self.log.warning(
                        "rebuilding an idle question",
                        question_id=q,
                        n_scored=o.loop.state.n_scored,
                        n_live=o.loop.state.n_live,
                    )
                await self._drop(q)
                await self._resume(q, part, forget_inflight=True)
        await self._reclaim_if_fenced()
        await self.fill()

    async def _reclaim_if_fenced(self) -> None:
        """A question of a partition we hold that a newer epoch has held for ``fence_grace_s``:
        that epoch belongs to a member whose assignment was already out of date when it took
        it (its rebalance callback ran late; Kafka delivers it no events), and it fences us
        until the next rebalance. Take every owned partition again under a fresh epoch."""
        now = time.monotonic()
        self.fenced_at = {q: t for q, t in self.fenced_at.items() if q not in self.owned}
        if not self.fenced_at or now - min(self.fenced_at.values()) < self.fence_grace_s:
            return
        self.stats["reclaimed"] = self.stats.get("reclaimed", 0) + 1
        if self.log is not None:
            self.log.warning("fenced by a newer epoch: reclaiming", questions=len(self.fenced_at))
        self.fenced_at.clear()
        await self.reset()

    # ------------------------------------------------------------------ owning one question

    async def _drop(self, q: str) -> None:
        o = self.owned.pop(q, None)
        if o is not None:
            await cancel_all(o.leases)

    async def _resume(
        self, q: str, partition: int, *, forget_inflight: bool = False
    ) -> OwnedQuestion | None:
        """Claim ``q`` under this epoch and rebuild its loop from the store — only while its
        partition is ours (an event handled across a revoke must not take it back)."""
        if partition not in self.partitions:
            return None
        claimed = await self.store.claim(q, self.epoch, forget_inflight=forget_inflight)
        if claimed is Outcome.FENCED:
            self.fenced_at.setdefault(q, time.monotonic())
        if claimed is not Outcome.APPLIED:
            return None
        self.fenced_at.pop(q, None)
        sq = await self.store.get(q)
        if sq is None or sq.status != "active":
            if sq is not None and sq.result is not None:
                await self._final_seen(q, sq.result)
            return None
        cfg = sq.config
        loop = QuestionLoop.resume(
            q,
            cfg.build_policy(),
            seed=cfg.sampling.seed,
            observations=sq.observations,
            n_dispatched=sq.n_dispatched,
            n_failed=sq.n_failed,
            next_index=sq.next_index,
        )
        return await self._take_up(q, sq.partition, cfg, loop)

    async def _take_up(
        self, q: str, partition: int, config: QuestionConfig, loop: QuestionLoop
    ) -> OwnedQuestion | None:
        if partition not in self.partitions:
            return None  # revoked while we were reading it
        prompt = build_prompt(Question(q, config.text))
        o = self.owned[q] = OwnedQuestion(q, partition, config, loop, prompt)
        await self._advance(o)
        return o

    async def _owned_or_resumed(self, q: str, partition: int) -> OwnedQuestion | None:
        return self.owned.get(q) or await self._resume(q, partition)
