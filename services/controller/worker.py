"""The controller's per-question logic: apply an event, decide with the core policy, dispatch
or stop. One instance per controller process; events of one partition arrive in order and are
handled one at a time (the consumer loop in ``consumer.py`` owns the Kafka consumer).

State lives in Redis (``RedisStateStore``); this object keeps only a cache of the questions
it owns (rebuilt from Redis when a partition is assigned) and the open ``Generate`` streams,
which are the leases on in-flight samples.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from optscale.errors import OptScaleError
from optscale.policies import Decision, Observation, Policy, QuestionState
from optscale.ports import GenerateRequest
from optscale.solve import build_prompt
from optscale.types import Question, SamplingParams
from optscale.v1 import common_pb2, events_pb2
from services.common.metrics import (
    CONTROLLER_ACTIVE,
    CONTROLLER_DECISION,
    CONTROLLER_EVENTS,
    CONTROLLER_WAITING,
)
from services.controller.lease import Leaser, Publish, cancel_all
from services.controller.questions import config_from_submitted, policy_from
from services.controller.state import FENCED, RedisStateStore


@dataclass
class Owned:
    question_id: str
    partition: int
    config: dict[str, Any]
    policy: Policy
    state: QuestionState
    leases: dict[asyncio.Task[None], int] = field(default_factory=dict)
    # monotonic time of the last progress: taken up, samples dispatched, an event applied
    progress_at: float = field(default_factory=time.monotonic)


# when the event being handled arrived (perf_counter), for the decision-latency histogram
_EVENT_T0: contextvars.ContextVar[float | None] = contextvars.ContextVar("event_t0", default=None)
_OUTCOMES = {1: "applied", 0: "duplicate", 2: "late", FENCED: "fenced"}  # store codes


class ControllerWorker:
    def __init__(
        self,
        store: RedisStateStore,
        generator: Any,
        publish: Publish,
        *,
        results_topic: str,
        events_topic: str,
        defaults: dict[str, Any] | None = None,
        log: Any = None,
        retry_base: float = 0.2,
        retry_cap: float = 10.0,
        max_active: int = 512,
        idle_rebuild_s: float = 120.0,
    ) -> None:
        self.store = store
        self.generator = generator
        self.publish = publish
        self.results_topic = results_topic
        self.events_topic = events_topic
        self.defaults = defaults or {}
        self.log = log
        self.epoch = 0
        self.owned: dict[str, Owned] = {}
        self.final: dict[str, None] = {}  # recently finished here (bounded, insertion order)
        self.stopped_at: dict[str, float] = {}  # monotonic time of each stop decision
        self.partitions: set[int] = set()
        self.stats = {"events": 0, "applied": 0, "duplicates": 0, "late": 0, "fenced": 0}
        self.leaser = Leaser(
            generator, publish, events_topic, retry_base=retry_base, retry_cap=retry_cap
        )
        # backpressure: at most max_active questions sampling at once; the rest wait (id and
        # partition only, FIFO; their state is in Redis) and are admitted as others finish
        self.max_active = max_active
        self.waiting: dict[str, int] = {}
        self._admitting = 0
        self.stale = False  # memory may disagree with Redis: reset() before the next batch
        self.idle_rebuild_s = idle_rebuild_s
        # seconds from handling an event to the decision it led to (the last 10,000)
        self.decisions: collections.deque[float] = collections.deque(maxlen=10_000)

    # ------------------------------------------------------------------ ownership

    async def assign(self, partitions: set[int]) -> None:
        """New partitions: take a fresh epoch and resume every active question in them.
        Until that has completed, ``stale`` is set: if Redis fails halfway, the partitions are
        still known and the consumer loop calls :meth:`reset` until it succeeds."""
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

    async def _admit(
        self, q: str, partition: int, *, created: dict[str, Any] | None = None
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
                await self._own(q, partition, created, QuestionState())
            else:
                await self._resume(q)
        finally:
            self._admitting -= 1

    def _has_room(self) -> bool:
        return len(self.owned) + self._admitting < self.max_active

    async def fill(self) -> None:
        """Admit waiting questions while there is room (the consumer task calls this between
        batches, so it never races a batch's own handling of the same question)."""
        while self.waiting and self._has_room():
            q = next(iter(self.waiting))
            del self.waiting[q]
            await self._resume(q)

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
                # waits for is lost (or memory disagrees with Redis); rebuild and re-dispatch.
                # A safety net: scores still queued at the verifiers arrive well before it.
                self.stats["rebuilt"] = self.stats.get("rebuilt", 0) + 1
                if self.log is not None:
                    self.log.warning(
                        "rebuilding an idle question",
                        question_id=q,
                        n_scored=o.state.n_scored,
                        n_live=o.state.n_live,
                    )
                await self._drop(q)
                await self._resume(q, forget_inflight=True)
        await self.fill()

    async def reset(self) -> None:
        """Forget everything in memory and take every owned partition again under a fresh
        epoch, from Redis — after an infrastructure error (Redis or Kafka unreachable) left
        it unknown which writes happened: in-flight leases are cancelled and re-dispatched
        from the stored counts, exactly as after a failover."""
        partitions = set(self.partitions)
        await self.revoke(partitions)
        await self.assign(partitions)  # ``stale`` until everything is taken up again

    async def close(self) -> None:
        for q in list(self.owned):
            await self._drop(q)

    async def _drop(self, q: str) -> None:
        o = self.owned.pop(q, None)
        if o is not None:
            await cancel_all(o.leases)

    async def _resume(self, q: str, *, forget_inflight: bool = False) -> Owned | None:
        if await self.store.claim(q, self.epoch, forget_inflight=forget_inflight) != 1:
            return None
        sq = await self.store.get(q)
        if sq is None or sq.status != "active":
            return None
        st = QuestionState()
        for ob in sq.observations:
            st = st.observe(Observation(ob["id"], ob.get("answer"), ob["score"], ob["tokens"]))
        st = st.dispatched(max(0, sq.n_dispatched - st.n_dispatched)).failed(sq.n_failed)
        return await self._own(q, sq.partition, sq.config, st)

    async def _own(
        self, q: str, partition: int, config: dict[str, Any], state: QuestionState
    ) -> Owned:
        o = self.owned[q] = Owned(q, partition, config, policy_from(config), state)
        await self._advance(o)
        return o

    async def _owned(self, q: str) -> Owned | None:
        return self.owned.get(q) or await self._resume(q)

    # ------------------------------------------------------------------ events

    async def handle(self, ev: events_pb2.QuestionEvent, partition: int) -> None:
        self.stats["events"] += 1
        kind = ev.WhichOneof("event")
        timed = kind in ("scored", "sample_failed")
        token = _EVENT_T0.set(time.perf_counter() if timed else None)
        try:
            await self._handle(ev, kind, partition)
        finally:
            _EVENT_T0.reset(token)
            CONTROLLER_ACTIVE.set(len(self.owned))
            CONTROLLER_WAITING.set(len(self.waiting))

    async def _handle(self, ev: events_pb2.QuestionEvent, kind: str | None, partition: int) -> None:
        q = ev.question_id
        if kind == "submitted":
            try:
                cfg = config_from_submitted(ev.submitted, self.defaults)
            except OptScaleError as exc:
                CONTROLLER_EVENTS.labels(kind, "rejected").inc()
                await self._reject(q, str(exc), ev.SerializeToString())
                return
            created = await self.store.create(q, self.epoch, cfg, partition)
            CONTROLLER_EVENTS.labels(kind, "applied" if created else "duplicate").inc()
            await self._admit(q, partition, created=cfg if created else None)
        elif kind == "scored":
            await self._on_scored(q, ev.scored.scored)
        elif kind == "sample_failed":
            r = await self.store.apply_failure(q, self.epoch, ev.sample_failed.sample_id)
            await self._after_apply(q, r, "sample_failed", lambda st: st.failed(1))
        elif kind == "cancelled":
            CONTROLLER_EVENTS.labels(kind, "applied").inc()
            self.waiting.pop(q, None)
            o = await self._owned(q)
            if o is not None:
                await self._finish(o, None, "cancelled", ev.cancelled.reason or "cancelled")

    async def _on_scored(self, q: str, sc: common_pb2.ScoredCandidate) -> None:
        c = sc.candidate
        obs = {
            "id": c.sample_id,
            "answer": c.answer or None,
            "score": sc.score,
            "tokens": c.completion_tokens,
        }
        if q not in self.owned and q not in self.final:
            self.waiting.pop(q, None)  # scored after a failover: it was sampling already
            await self._resume(q)
        ob = Observation(c.sample_id, c.answer or None, sc.score, c.completion_tokens)
        o = self.owned.get(q)
        k = 0
        if o is not None:
            # decide on the state with this score first: when the decision is to sample more,
            # the score and that dispatch go to Redis as one atomic script (one round trip)
            st = o.state.observe(ob)
            d = o.policy.decide(st)
            k = 0 if d.stop else d.target - st.n_live
        args = (q, self.epoch, c.sample_id, sc.score, c.completion_tokens, obs)
        if o is not None and k > 0:
            r, first = await self.store.apply_score_and_dispatch(*args, k, o.policy.n_max)
        else:
            r, first = await self.store.apply_score(*args), -5
        if o is None or r != 1 or self.owned.get(q) is not o:
            # not ours (final, fenced, not active), or a duplicate/late score: nothing reserved
            await self._after_apply(q, r, "scored", lambda st: st.observe(ob))
            return
        self._count("scored", r)
        o.state = st
        o.progress_at = time.monotonic()
        self._record_decision()
        if d.stop:
            await self._finish(o, d, "done", d.reason)
        elif first >= 0:
            self._start_lease(o, first, k)

    def _count(self, kind: str, r: int) -> None:
        CONTROLLER_EVENTS.labels(kind, _OUTCOMES.get(r, "other")).inc()
        if r == 1:
            self.stats["applied"] += 1

    def _record_decision(self) -> None:
        """Decision latency: from starting on the event to the decision, on durably applied
        state (recorded once per event; resumes and sweeps are not events)."""
        t0 = _EVENT_T0.get()
        if t0 is not None:
            self.decisions.append(time.perf_counter() - t0)
            CONTROLLER_DECISION.observe(self.decisions[-1])
            _EVENT_T0.set(None)

    async def _after_apply(
        self, q: str, r: int, kind: str, update: Callable[[QuestionState], QuestionState]
    ) -> None:
        self._count(kind, r)
        if r == 1:
            o = self.owned.get(q)
            if o is None:
                o = await self._resume(q)  # rebuilt from Redis, already includes this event
                return
            o.state = update(o.state)
            o.progress_at = time.monotonic()
            await self._advance(o)
        elif r == 0:
            self.stats["duplicates"] += 1
        elif r == 2:
            self.stats["late"] += 1
        elif r == FENCED:
            self.stats["fenced"] += 1
            await self._drop(q)

    # ------------------------------------------------------------------ decide

    async def _advance(self, o: Owned) -> None:
        d = o.policy.decide(o.state)
        self._record_decision()
        if d.stop:
            await self._finish(o, d, "done", d.reason)
            return
        k = d.target - o.state.n_live
        if k <= 0:
            return
        first = await self.store.dispatch(o.question_id, self.epoch, k, o.policy.n_max)
        if first < 0:
            if first == FENCED:
                await self._drop(o.question_id)
            return
        self._start_lease(o, first, k)

    def _start_lease(self, o: Owned, first: int, k: int) -> None:
        """Samples ``first .. first+k-1`` are reserved in Redis: count them in flight and open
        their Generate stream."""
        o.state = o.state.dispatched(k)
        o.progress_at = time.monotonic()
        t, top_p, max_tokens, seed = o.config["sampling"]
        req = GenerateRequest(
            question_id=o.question_id,
            prompt=build_prompt(Question(o.question_id, o.config["text"])),
            k=k,
            params=SamplingParams(t, top_p, max_tokens, None if seed is None else seed + first),
            first_index=first,
        )
        task = asyncio.create_task(self.leaser.run(req, self.epoch))
        o.leases[task] = k
        task.add_done_callback(lambda t: o.leases.pop(t, None))

    async def _finish(self, o: Owned, d: Decision | None, status: str, reason: str) -> None:
        self.stopped_at[o.question_id] = time.monotonic()
        await cancel_all(o.leases)  # abort in-flight generations first: no more waste
        st = o.state
        chosen = d.chosen if d is not None else None
        if status == "done" and chosen is None:
            status = "failed"  # stopped (e.g. N_max failures) without a single scored sample
        correct = None
        ref = o.config.get("reference")
        if ref is not None and chosen is not None:
            from optscale.grading import is_correct

            correct = bool(chosen.answer is not None and is_correct(chosen.answer, ref))
        res = events_pb2.Result(
            question_id=o.question_id,
            answer=(chosen.answer or "") if chosen else "",
            chosen_sample_id=chosen.sample_id if chosen else "",
            score=chosen.score if chosen else 0.0,
            samples_used=st.n_scored,
            samples_failed=st.n_failed,
            samples_cancelled=st.n_inflight,
            completion_tokens=st.tokens,
            stop_reason=reason,
            policy=o.policy.name,
            n_max=o.policy.n_max,
            status={
                "done": events_pb2.RESULT_STATUS_DONE,
                "failed": events_pb2.RESULT_STATUS_FAILED,
            }.get(status, events_pb2.RESULT_STATUS_CANCELLED),
        )
        if d is not None and d.n_star is not None:
            res.n_star = float(d.n_star)
        if correct is not None:
            res.correct = correct
        payload = res.SerializeToString(deterministic=True)
        # published and acknowledged before finalizing: a crash in between republishes the
        # same payload (at least once); finalizing first — or before the broker has it —
        # could lose the result (the chaos test kills a controller exactly there).
        await self.publish(self.results_topic, o.question_id, payload, acked=True)
        from google.protobuf.json_format import MessageToDict

        r = await self.store.finalize(
            o.question_id, self.epoch, status, MessageToDict(res), o.partition
        )
        if r == FENCED:
            self.stats["fenced"] += 1
        self.owned.pop(o.question_id, None)
        self.final[o.question_id] = None
        if len(self.final) > 100_000:
            del self.final[next(iter(self.final))]
        if len(self.stopped_at) > 100_000:
            del self.stopped_at[next(iter(self.stopped_at))]

    async def _reject(self, q: str, why: str, original: bytes) -> None:
        from services.common.kafka import DLQ

        res = events_pb2.Result(
            question_id=q, status=events_pb2.RESULT_STATUS_FAILED, stop_reason=f"rejected: {why}"
        )
        await self.publish(self.results_topic, q, res.SerializeToString(deterministic=True))
        await self.publish(DLQ, q, original, reason=f"rejected: {why}")
