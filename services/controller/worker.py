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
import contextlib
import contextvars
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from optscale.errors import OptScaleError
from optscale.policies import Decision, Observation, Policy, QuestionState, make_policy
from optscale.ports import GenerateRequest
from optscale.solve import build_prompt
from optscale.stats import GaussianPrior
from optscale.types import Question, SamplingParams
from optscale.v1 import common_pb2, events_pb2
from services.common.metrics import (
    CONTROLLER_ACTIVE,
    CONTROLLER_DECISION,
    CONTROLLER_EVENTS,
    CONTROLLER_WAITING,
)
from services.controller.state import FENCED, RedisStateStore

Publish = Callable[..., Awaitable[None]]  # (topic, key, value, reason=None, acked=False)


@dataclass
class Owned:
    question_id: str
    partition: int
    config: dict[str, Any]
    policy: Policy
    state: QuestionState
    leases: dict[asyncio.Task[None], int] = field(default_factory=dict)
    idle_sweeps: int = 0  # consecutive sweeps that found nothing in flight here


LEASE_RETRIES = 4  # transient Generate failures retried (same sample ids) before failing
IDLE_SWEEPS_BEFORE_REBUILD = 3  # x the sweep interval (5 s) with nothing in flight
MAX_TEXT_CHARS = 30_000
# when the event being handled arrived (perf_counter), for the decision-latency histogram
_EVENT_T0: contextvars.ContextVar[float | None] = contextvars.ContextVar("event_t0", default=None)
_OUTCOMES = {
    1: "applied",
    0: "duplicate",
    2: "late",
    FENCED: "fenced",
}  # the generator refuses prompts over 32,000 characters


def config_from_submitted(sub: events_pb2.Submitted, defaults: dict[str, Any]) -> dict[str, Any]:
    """Validated, JSON-able question config (raises InvalidArgumentError naming the field)."""
    p = sub.policy
    sp = sub.sampling
    params = SamplingParams(
        temperature=sp.temperature if sp.temperature or sp.top_p else 0.7,
        top_p=sp.top_p or 0.95,
        max_tokens=sp.max_tokens or defaults.get("max_tokens", 512),
        seed=sp.seed if sp.HasField("seed") else None,
    ).validate(max_tokens_limit=defaults.get("max_tokens_limit", 4096))
    cfg = {
        "text": sub.text,
        "reference": sub.reference_answer or None,
        "dataset": sub.dataset or None,
        "policy": p.policy or defaults.get("policy", "optscale0"),
        "n_max": p.n_max or defaults.get("n_max", 16),
        "alpha": p.alpha if p.HasField("alpha") else defaults.get("alpha", 0.9),
        "s_min": p.s_min if p.HasField("s_min") else defaults.get("s_min", 0.95),
        "prior": [p.prior.mu_bar, p.prior.sigma_bar] if p.HasField("prior") else None,
        "sampling": [params.temperature, params.top_p, params.max_tokens, params.seed],
    }
    from optscale.errors import InvalidArgumentError

    if not sub.text.strip():
        raise InvalidArgumentError("text", sub.text, "must not be empty")
    if len(sub.text) > MAX_TEXT_CHARS:
        raise InvalidArgumentError(
            "text", f"<{len(sub.text)} chars>", f"longer than {MAX_TEXT_CHARS} characters"
        )
    limit = defaults.get("max_n_max", 1024)
    if isinstance(cfg["n_max"], int) and cfg["n_max"] > limit:
        raise InvalidArgumentError("n_max", cfg["n_max"], f"at most {limit} here")
    policy_from(cfg)  # validates the policy parameters
    return cfg


def policy_from(cfg: dict[str, Any]) -> Policy:
    prior = GaussianPrior(*cfg["prior"]) if cfg.get("prior") else None
    return make_policy(
        cfg["policy"], n_max=cfg["n_max"], alpha=cfg["alpha"], s_min=cfg["s_min"], prior=prior
    )


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
        # a failing generator is retried with exponential backoff per question (the failed
        # samples are reported after the pause, so re-dispatch waits too); the policies stop
        # a question after N_max failures, which ends as FAILED when nothing was scored
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.fail_streak: dict[str, int] = {}
        # backpressure: at most max_active questions sampling at once; the rest wait (id and
        # partition only, FIFO; their state is in Redis) and are admitted as others finish
        self.max_active = max_active
        self.waiting: dict[str, int] = {}
        self._admitting = 0
        self.stale = False  # memory may disagree with Redis: reset() before the next batch
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

    async def _admit(self, q: str, partition: int) -> None:
        if q in self.owned:
            return
        if len(self.owned) + self._admitting >= self.max_active:
            self.waiting.setdefault(q, partition)
            return
        self.waiting.pop(q, None)
        self._admitting += 1  # a batch admits concurrently: hold the slot across the awaits
        try:
            await self._resume(q)
        finally:
            self._admitting -= 1

    async def fill(self) -> None:
        """Admit waiting questions while there is room (the consumer task calls this between
        batches, so it never races a batch's own handling of the same question)."""
        while self.waiting and len(self.owned) + self._admitting < self.max_active:
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
                        if q not in self.owned and self.log is not None:
                            self.log.warning(
                                "active question not taken up",
                                question_id=q,
                                partition=part,
                                epoch=self.epoch,
                            )
                    continue
                if o.leases:
                    o.idle_sweeps = 0
                    continue
                o.idle_sweeps += 1
                if o.idle_sweeps < IDLE_SWEEPS_BEFORE_REBUILD:
                    await self._advance(o)
                    continue
                # nothing in flight here for a while yet not finished: what it waits for is
                # lost (or memory disagrees with Redis); rebuild from Redis and re-dispatch
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
        self.stale = True
        partitions = set(self.partitions)
        await self.revoke(partitions)
        await self.assign(partitions)  # clears ``stale`` once everything is taken up again

    async def close(self) -> None:
        for q in list(self.owned):
            await self._drop(q)

    async def _drop(self, q: str) -> None:
        o = self.owned.pop(q, None)
        if o is not None:
            await _cancel(o.leases)

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
        o = Owned(q, sq.partition, sq.config, policy_from(sq.config), st)
        self.owned[q] = o
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
            await self._admit(q, partition)
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
        if o is None:  # not ours (final, fenced, or not active): record it, change nothing
            r = await self.store.apply_score(
                q, self.epoch, c.sample_id, sc.score, c.completion_tokens, obs
            )
            await self._after_apply(q, r, "scored", lambda st: st.observe(ob))
            return
        # decide on the state with this score first: when the decision is to sample more, the
        # score and that dispatch go to Redis as one atomic script (one round trip)
        st = o.state.observe(ob)
        d = o.policy.decide(st)
        k = 0 if d.stop else d.target - st.n_live
        if k > 0:
            r, first = await self.store.apply_score_and_dispatch(
                q, self.epoch, c.sample_id, sc.score, c.completion_tokens, obs, k, o.policy.n_max
            )
        else:
            first = -5
            r = await self.store.apply_score(
                q, self.epoch, c.sample_id, sc.score, c.completion_tokens, obs
            )
        if r != 1 or self.owned.get(q) is not o:  # duplicate, late, fenced: nothing reserved
            await self._after_apply(q, r, "scored", lambda st: st.observe(ob))
            return
        self._count("scored", r)
        o.state = st
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
        t, top_p, max_tokens, seed = o.config["sampling"]
        req = GenerateRequest(
            question_id=o.question_id,
            prompt=build_prompt(Question(o.question_id, o.config["text"])),
            k=k,
            params=SamplingParams(t, top_p, max_tokens, None if seed is None else seed + first),
            first_index=first,
        )
        task = asyncio.create_task(self._lease(req, self.epoch))
        o.leases[task] = k
        task.add_done_callback(lambda t: o.leases.pop(t, None))

    async def _lease(self, req: GenerateRequest, epoch: int) -> None:
        """Hold the Generate stream open. When the call fails (a generator restarting), the
        unfinished samples are asked for again under the same ids after a backoff — an id is
        applied once, so a retry never counts twice — up to LEASE_RETRIES times; what is
        still missing then, or what a stream ended without, becomes SampleFailed events
        (through Kafka, so the partition owner applies them in order)."""
        import dataclasses

        q = req.question_id
        ids = [f"{q}/{req.first_index + i}" for i in range(req.k)]
        done: set[str] = set()
        why = "generate stream ended without this sample"
        for attempt in range(LEASE_RETRIES + 1):
            missing = [i for i in range(req.k) if ids[i] not in done]
            if not missing:
                return
            try:
                for first, k in _runs(missing):  # contiguous runs of missing indices
                    sub = dataclasses.replace(req, first_index=req.first_index + first, k=k)
                    async for sid in self.generator.generate(sub, epoch=epoch):
                        done.add(sid)
                        self.fail_streak.pop(q, None)
                why = "generate stream ended without this sample"
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                why = f"generate failed: {exc}"
                if _permanent(exc) or attempt == LEASE_RETRIES:
                    break
                streak = self.fail_streak[q] = self.fail_streak.get(q, 0) + 1
                if len(self.fail_streak) > 100_000:
                    del self.fail_streak[next(iter(self.fail_streak))]
                delay = self.retry_base * 2 ** min(streak - 1, 30)
                await asyncio.sleep(min(self.retry_cap, delay))
        for sid in ids:
            if sid not in done:
                ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
                ev.sample_failed.sample_id = sid
                ev.sample_failed.reason = why[:500]
                ev.sample_failed.epoch = epoch
                await self.publish(self.events_topic, q, ev.SerializeToString())

    async def _finish(self, o: Owned, d: Decision | None, status: str, reason: str) -> None:
        self.stopped_at[o.question_id] = time.monotonic()
        await _cancel(o.leases)  # abort in-flight generations first: no more waste
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


async def _cancel(leases: dict[asyncio.Task[None], int]) -> None:
    tasks = list(leases)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    leases.clear()


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """[(first, length)] of the contiguous runs in sorted ``indices``."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


def _permanent(exc: BaseException) -> bool:
    """A gRPC error that retrying cannot fix (the request itself is wrong)."""
    import grpc

    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
    return code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
