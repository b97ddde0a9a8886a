"""The controller's event handling: apply an event to the store, step the question's
:class:`~optscale.loop.QuestionLoop`, and carry out its action (dispatch samples, wait, or stop
and publish the result). One instance per controller process; events of one partition arrive
in order and are handled one at a time (the consumer loop in ``consumer.py`` owns the Kafka
consumer). Which questions are owned here is :mod:`services.controller.ownership`'s job.

State lives in the store (Redis in production, :class:`optscale.memory.InMemoryStateStore` in
unit tests); this object keeps the loops of the questions it owns and their open ``Generate``
streams, which are the leases on in-flight samples.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from optscale.config import QuestionConfig
from optscale.errors import InvalidArgumentError, OptScaleError
from optscale.loop import Cancelled, Dispatch, OutOfBudget, QuestionLoop, Stop
from optscale.mr_thinking import next_round_prompt
from optscale.policies import Observation
from optscale.ports import (
    GenerateRequest,
    LeaseGenerator,
    Outcome,
    PredictorClient,
    Publisher,
    ScoreWrite,
    StateStore,
)
from optscale.v1 import events_pb2
from services.common import tracing
from services.common.convert import scored_by_reference
from services.common.metrics import (
    CONTROLLER_ACTIVE,
    CONTROLLER_DECISION,
    CONTROLLER_EVENTS,
    CONTROLLER_WAITING,
    observe_bon_curve,
)
from services.controller.batch_waves import BatchWaves, dsc_stopped, over_budget, refresh
from services.controller.lease import Leaser, cancel_all
from services.controller.outcomes import OUTCOME_LABELS, OUTCOME_STATS
from services.controller.ownership import OwnedQuestion, QuestionOwnership
from services.controller.pruning import PruneReferences
from services.controller.questions import SubmitDefaults, config_from_submitted, differences
from services.controller.results import result_message, result_payload

# when the event being handled arrived (perf_counter), for the decision-latency histogram
_EVENT_T0: contextvars.ContextVar[float | None] = contextvars.ContextVar("event_t0", default=None)


class ControllerWorker(QuestionOwnership):
    def __init__(
        self,
        store: StateStore,
        generator: LeaseGenerator,
        publish: Publisher,
        *,
        results_topic: str,
        events_topic: str,
        defaults: SubmitDefaults | None = None,
        predictor: PredictorClient | None = None,
        log: Any = None,
        retry_base: float = 0.2,
        retry_cap: float = 10.0,
        max_active: int = 512,
        idle_rebuild_s: float = 120.0,
        max_k: int = 64,
    ) -> None:
        """``max_k``: the most samples one ``Generate`` call may ask for (the generators'
        ``OPTSCALE_GENERATOR_MAX_K``); a larger dispatch is split over several calls."""
        if max_k < 1:
            raise InvalidArgumentError("max_k", max_k, "must be >= 1")
        self.max_k = max_k
        super().__init__(store, log=log, max_active=max_active, idle_rebuild_s=idle_rebuild_s)
        self.generator = generator
        self.publish = publish
        self.predictor = predictor
        self.results_topic = results_topic
        self.events_topic = events_topic
        self.defaults = defaults or SubmitDefaults()
        self.final: dict[str, None] = {}  # recently finished here (bounded, insertion order)
        self.waves = BatchWaves()  # batches with a wave limit: who waits for a slot
        self.stopped_at: dict[str, float] = {}  # monotonic time of each stop decision
        self.prune_refs = PruneReferences()  # prefix pruning's reference per question
        self.leaser = Leaser(
            generator, publish, events_topic, retry_base=retry_base, retry_cap=retry_cap
        )
        # seconds from handling an event to the decision it led to (the last 10,000)
        self.decisions: collections.deque[float] = collections.deque(maxlen=10_000)

    # ------------------------------------------------------------------ events

    async def handle(self, ev: events_pb2.QuestionEvent, partition: int) -> None:
        self.stats["events"] += 1
        kind = ev.WhichOneof("event")
        timed = kind in ("scored", "sample_failed")
        token = _EVENT_T0.set(time.perf_counter() if timed else None)
        # traced: a span per event on the question's trace (a Scored event's parent is the
        # verifier's score span); a Submitted event records the root span instead
        name = f"controller.{kind}"
        traced = timed or kind == "cancelled"
        span = tracing.span("controller", name, question_id=ev.question_id) if traced else None
        try:
            with span or contextlib.nullcontext():
                await self._handle(ev, kind, partition)
        finally:
            _EVENT_T0.reset(token)
            CONTROLLER_ACTIVE.set(len(self.owned))
            CONTROLLER_WAITING.set(len(self.waiting))

    async def _handle(self, ev: events_pb2.QuestionEvent, kind: str | None, partition: int) -> None:
        q = ev.question_id
        if kind == "submitted":
            await self._on_submitted(q, ev, partition)
        elif kind == "scored":
            await self._on_scored(q, scored_by_reference(ev.scored), partition)
        elif kind == "sample_failed":
            f = ev.sample_failed
            r = await self.store.apply_failure(q, self.epoch, f.sample_id, sample_epoch=f.epoch)
            await self._after_apply(q, partition, r, "sample_failed", lambda lp: lp.failed(1))
        elif kind == "cancelled":
            CONTROLLER_EVENTS.labels(kind, "applied").inc()
            self.waiting.pop(q, None)
            o = await self._owned_or_resumed(q, partition)
            if o is not None:
                o.loop = o.loop.apply(Cancelled(ev.cancelled.reason or "cancelled"))
                await self._advance(o)

    async def _on_submitted(self, q: str, ev: events_pb2.QuestionEvent, partition: int) -> None:
        try:
            asked = config_from_submitted(
                ev.submitted, self.defaults, prior_optional=self.predictor is not None
            )
            cfg = await self._predict_prior(asked) if asked.needs_prior else asked
        except OptScaleError as exc:
            CONTROLLER_EVENTS.labels("submitted", "rejected").inc()
            await self._reject(q, str(exc), ev.SerializeToString())
            return
        created = await self.store.create(q, self.epoch, cfg, partition)
        if created:  # taken up: the question's trace starts here
            tracing.root_span("controller", q, policy=cfg.policy, n_max=cfg.n_max)
        else:
            await self._park_if_other_question(q, asked, ev)
        CONTROLLER_EVENTS.labels("submitted", "applied" if created else "duplicate").inc()
        await self._admit(q, partition, created=cfg if created else None)

    async def _park_if_other_question(
        self, q: str, asked: QuestionConfig, ev: events_pb2.QuestionEvent
    ) -> None:
        """A used question id with a different question goes to the DLQ with the reason (the
        stored question carries on; gRPC Submit refuses this as ALREADY_EXISTS up front)."""
        from services.common.kafka import DLQ

        sq = await self.store.get(q)
        diff = differences(sq.config, asked) if sq is not None else []
        if diff:
            CONTROLLER_EVENTS.labels("submitted", "conflict").inc()
            why = f"already exists: question id {q!r} is used by a different question"
            await self.publish(DLQ, q, ev.SerializeToString(), reason=f"{why} ({', '.join(diff)})")

    async def _predict_prior(self, cfg: QuestionConfig) -> QuestionConfig:
        """An ``optscalet`` question submitted without a prior gets the predictor's (an
        unreachable predictor raises: the batch is retried, nothing is lost)."""
        assert self.predictor is not None
        (prior,) = await self.predictor.predict([cfg.text])
        return cfg.with_prior(prior.mu_bar, prior.sigma_bar, prior.tau_mu, prior.tau_sigma)

    async def _on_scored(self, q: str, sc: events_pb2.Scored, partition: int) -> None:
        ob = Observation(sc.sample_id, sc.answer or None, sc.score, sc.completion_tokens)
        if q not in self.owned and q not in self.final:
            self.waiting.pop(q, None)  # scored after a failover: it was sampling already
            await self._resume(q, partition)
        o = self.owned.get(q)
        k = 0
        if o is not None:
            # step the loop with this score first: when the action is to sample more, the
            # score and that dispatch go to the store as one atomic transition (one round trip)
            stepped = await refresh(self.store, o, o.loop.scored(ob))
            if await over_budget(self.store, o, ob.tokens):
                stepped = stepped.apply(OutOfBudget())
            action = stepped.next_action()
            k = action.k if isinstance(action, Dispatch) and not o.config.batch_wave else 0
        n_max = o.loop.policy.n_max if o is not None else 0
        write = ScoreWrite(ob, sample_epoch=sc.epoch, dispatch_k=k, n_max=n_max)
        res = await self.store.apply_score(q, self.epoch, write)
        if o is None or res.outcome is not Outcome.APPLIED or self.owned.get(q) is not o:
            # not ours (final, fenced, not active), or a duplicate/late/stale score
            await self._after_apply(q, partition, res.outcome, "scored", lambda lp: lp.scored(ob))
            return
        self._count("scored", res.outcome)
        if o.config.batch_id is not None and o.config.batch_budget is not None:
            await self.store.batch_charge(o.config.batch_id, ob.tokens)
        self.prune_refs.scored(o, sc)  # before the loop takes it
        o.loop = stepped
        o.progress_at = time.monotonic()
        self._record_decision()
        if isinstance(action, Stop):
            await self._finish(o, action)
        elif o.config.batch_wave and o.config.batch_id is not None:
            if isinstance(action, Dispatch):  # wait for a slot of the batch (this one freed one)
                self.waves.wait(o.config.batch_id, q, action.decision.priority)
            await self._release(o.config.batch_id, o.config.batch_wave)
        elif isinstance(action, Dispatch) and res.first_index is not None:
            self._start_lease(o, action, res.first_index)

    def _count(self, kind: str, r: Outcome) -> None:
        CONTROLLER_EVENTS.labels(kind, OUTCOME_LABELS.get(r, "other")).inc()
        if r is Outcome.APPLIED:
            self.stats["applied"] += 1
        elif r in OUTCOME_STATS:
            self.stats[OUTCOME_STATS[r]] += 1

    def _record_decision(self) -> None:
        """Decision latency: from starting on the event to the decision, on durably applied
        state (recorded once per event; resumes and sweeps are not events)."""
        t0 = _EVENT_T0.get()
        if t0 is not None:
            self.decisions.append(time.perf_counter() - t0)
            CONTROLLER_DECISION.observe(self.decisions[-1])
            _EVENT_T0.set(None)

    async def _after_apply(
        self,
        q: str,
        partition: int,
        r: Outcome,
        kind: str,
        update: Callable[[QuestionLoop], QuestionLoop],
    ) -> None:
        self._count(kind, r)
        if r is Outcome.APPLIED:
            o = self.owned.get(q)
            if o is None:
                await self._resume(q, partition)  # rebuilt from the store, with this event
                return
            o.loop = update(o.loop)
            o.progress_at = time.monotonic()
            await self._advance(o)
        elif r is Outcome.FENCED:
            await self._drop(q)
        elif r in (Outcome.DUPLICATE, Outcome.LATE) and q not in self.owned and q not in self.final:
            await self._check_final(q)  # finalized by a controller that may not have published

    # ------------------------------------------------------------------ act

    async def _advance(self, o: OwnedQuestion, *, slots: int | None = None) -> None:
        """Carry out what the question's loop says now. In a batch with a wave limit a wanted
        sample waits for a slot, unless ``slots`` are being handed to it (:meth:`_release`)."""
        o.loop = await refresh(self.store, o, o.loop)  # batch DSC's board, give-up
        if await over_budget(self.store, o, 0):
            o.loop = o.loop.apply(OutOfBudget())
        action = o.loop.next_action()
        self._record_decision()
        if isinstance(action, Stop):
            await self._finish(o, action)
            return
        if not isinstance(action, Dispatch):
            return  # Wait: enough samples in flight
        batch, wave = o.config.batch_id, o.config.batch_wave
        if wave and batch is not None and slots is None:
            self.waves.wait(batch, o.question_id, action.decision.priority)
            await self._release(batch, wave)
            return
        k = action.k if slots is None else min(action.k, slots)
        res = await self.store.dispatch(o.question_id, self.epoch, k, o.loop.policy.n_max)
        if res.outcome is Outcome.FENCED:
            await self._drop(o.question_id)
        elif res.outcome is Outcome.APPLIED and res.first_index is not None:
            self._start_lease(o, dataclasses.replace(action, k=k), res.first_index)

    async def _release(self, batch: str, wave: int) -> None:
        """Hand the batch's free slots to its waiting questions, highest priority first."""
        while (room := wave - self.waves.in_flight(self.owned.values(), batch)) > 0:
            q = self.waves.next_up(batch)
            if q is None:
                return
            o = self.owned.get(q)
            if o is not None:
                await self._advance(o, slots=room)

    def _start_lease(self, o: OwnedQuestion, action: Dispatch, first: int) -> None:
        """The loop's dispatch, reserved in the store from index ``first`` on: count the samples
        in flight and open their Generate streams (sample ids and seeds from the loop) — one
        stream per ``max_k`` samples, the most a generator takes in one call."""
        k = action.k
        d = o.loop.dispatch_of(first, k, action.decision)
        o.loop = o.loop.dispatched(first, k)
        o.progress_at = time.monotonic()
        for off in range(0, k, self.max_k):
            n = min(self.max_k, k - off)
            req = GenerateRequest(
                question_id=o.question_id,
                prompt=self._prompt_of(o),
                k=n,
                params=dataclasses.replace(o.config.sampling, seed=d.seeds[off]),
                first_index=first + off,
                pruning=self.prune_refs.spec(o),  # the reference now (prune_z questions)
            )
            task = asyncio.create_task(self.leaser.run(req, self.epoch))
            o.leases[task] = n
            task.add_done_callback(lambda t: o.leases.pop(t, None))

    @staticmethod
    def _prompt_of(o: OwnedQuestion) -> str:
        """The question's prompt; for ``mr_thinking`` the next round's, with the previous
        round's answer in it (the answer, not the text: payloads travel by reference)."""
        if o.config.policy != "mr_thinking":
            return o.prompt
        st = o.loop.state
        last = st.last.answer if st.last is not None else None
        return next_round_prompt(o.prompt, last, st.n_scored)

    async def _finish(self, o: OwnedQuestion, stop: Stop) -> None:
        """:meth:`_finalize` in a ``controller.stop`` span (the stop decision; the leases'
        cancel is its child)."""
        with tracing.span(
            "controller",
            "controller.stop",
            question_id=o.question_id,
            status=stop.status,
            stop_reason=stop.reason,
            scored=o.loop.state.n_scored,
        ):
            await self._finalize(o, stop)

    async def _finalize(self, o: OwnedQuestion, stop: Stop) -> None:
        """Finalize in the store, then publish. Finalizing is fenced by the owner epoch, so
        only the current owner's result becomes *the* result: a superseded controller is told
        here and publishes nothing. The publish follows (acked); if it is lost (a crash, Kafka
        down) the batch that led here is not committed, and its redelivery — to this worker or
        the partition's next owner — republishes the stored result byte for byte
        (:meth:`_final_seen`): at least once, one distinct result per question."""
        q = o.question_id
        self.stopped_at[q] = time.monotonic()
        await cancel_all(o.leases)  # abort in-flight generations first: no more waste
        self.prune_refs.forget(q)
        await dsc_stopped(self.store, o.loop, stop)  # a hard question's count: the next's
        if o.config.batch_id is not None:
            self.waves.forget(o.config.batch_id, q)
        from google.protobuf.json_format import MessageToDict

        result = MessageToDict(await result_message(q, o.config, o.loop, stop))
        r = await self.store.finalize(q, self.epoch, stop.status, result, o.partition)
        self.owned.pop(q, None)
        if r is Outcome.FENCED:  # a newer owner holds it: its result will be the one
            self.stats["fenced"] += 1
            return
        if r is Outcome.DUPLICATE:  # final already: what is stored is the result
            sq = await self.store.get(q)
            if sq is not None and sq.result is not None:
                result = sq.result
        await self.publish(self.results_topic, q, result_payload(result), acked=True)
        observe_bon_curve(o.config.options, result)  # tokens saved vs the params' BoN curve
        self._remember_final(q)
        if len(self.stopped_at) > 100_000:
            del self.stopped_at[next(iter(self.stopped_at))]
        if o.config.batch_wave and o.config.batch_id is not None:
            await self._release(o.config.batch_id, o.config.batch_wave)  # its slots are free

    def _remember_final(self, q: str) -> None:
        self.final[q] = None
        if len(self.final) > 100_000:
            del self.final[next(iter(self.final))]

    async def _final_seen(self, q: str, result: dict[str, Any]) -> None:
        """An event of a question that is final in the store and not finished here: the
        controller that finalized it may have died before publishing, so publish the stored
        result (the same bytes it would have sent) — once per question and worker."""
        if q in self.final:
            return
        self.stats["republished"] = self.stats.get("republished", 0) + 1
        await self.publish(self.results_topic, q, result_payload(result), acked=True)
        self._remember_final(q)

    async def _reject(self, q: str, why: str, original: bytes) -> None:
        from services.common.kafka import DLQ

        res = events_pb2.Result(
            question_id=q, status=events_pb2.RESULT_STATUS_FAILED, stop_reason=f"rejected: {why}"
        )
        await self.publish(self.results_topic, q, res.SerializeToString(deterministic=True))
        await self.publish(DLQ, q, original, reason=f"rejected: {why}")
