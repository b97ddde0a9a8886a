"""The controller process's Kafka loop: exactly one task owns the consumer.

Per batch: decode each question event (poison → ``optscale.dlq`` with the reason), hand it to
the worker in partition order, wait until everything the worker published is acknowledged,
then commit the offsets — after the Redis writes, so a crash redelivers instead of losing.
A commit refused during a rebalance is logged, not fatal: the batch is redelivered and every
transition is idempotent. Anything that ends this loop ends the process (``__main__``
supervises it: health NOT_SERVING, exit 1, Kubernetes restarts the pod).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from aiokafka import ConsumerRebalanceListener

from optscale.ids import check_question_id
from optscale.v1 import events_pb2
from services.common import kafka, tracing
from services.common.convert import scored_by_reference
from services.common.metrics import observe_published
from services.controller.worker import ControllerWorker

SCHEMA_VERSION = 1  # newest QuestionEvent schema this controller understands
MAX_CONCURRENT_QUESTIONS = 48  # per batch; far below the Redis pool size (512)
# (partition, event, the trace context its Kafka headers carried or None)
Event = tuple[int, events_pb2.QuestionEvent, Any]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: ControllerWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.worker.revoke({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self.worker.assign({tp.partition for tp in assigned})
        except Exception as exc:  # Redis away: ``worker.stale`` stays set, the loop resets
            if self.worker.log is not None:
                self.worker.log.warning("partition assignment failed", error=repr(exc)[:300])


class Publisher:
    """``await publish(topic, key, value)`` sends without waiting; ``flush()`` waits for acks."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.pending: list[asyncio.Future[Any]] = []

    async def __call__(
        self, topic: str, key: str, value: bytes, reason: str | None = None, acked: bool = False
    ) -> None:
        """Send; with ``acked``, return only once the broker has acknowledged it."""
        headers = [("reason", reason.encode()[:1000])] if reason is not None else None
        fut = await self.producer.send(topic, value, key=key.encode(), headers=headers)
        observe_published(topic, value)  # results, DLQ: the operator's dashboard
        if acked:
            await fut
        else:
            self.pending.append(fut)

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        if pending:
            await asyncio.gather(*pending)


async def run_controller(
    worker: ControllerWorker,
    consumer: Any,
    publisher: Publisher,
    *,
    stop: asyncio.Event,
    log: Any = None,
    sweep_interval: float = 5.0,
) -> None:
    loop = asyncio.get_running_loop()
    next_sweep = loop.time() + sweep_interval
    try:
        while not stop.is_set():
            if worker.stale:  # a partition assignment or reset did not complete
                await _recover(worker, stop, log, 0.1)
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + sweep_interval
                try:
                    await worker.sweep()
                except Exception as exc:  # Redis away: the next batch's retry handles it
                    if log is not None:
                        log.warning("sweep failed", error=repr(exc)[:300])
            records = await consumer.getmany(timeout_ms=100, max_records=500)
            # order matters per question only: questions of a batch run concurrently, the
            # events of one question one after the other (hides Redis round trips)
            by_question: dict[str, list[Event]] = {}
            for tp, msgs in records.items():
                for m in msgs:
                    ev = await _decode(m, publisher, log)
                    if ev is not None:
                        # a Scored event carries the verifier's score span
                        trace = tracing.from_kafka(getattr(m, "headers", None))
                        by_question.setdefault(ev.question_id, []).append((tp.partition, ev, trace))
            await _process(worker, publisher, by_question, stop, log)
            # refused during a rebalance: the batch is redelivered (here or to the new owner)
            await kafka.commit_or_redeliver(consumer, records, log)
            if worker.waiting:
                try:
                    await worker.fill()
                except Exception as exc:  # Redis away: the sweep or the next batch retries
                    if log is not None:
                        log.warning("admission failed", error=repr(exc)[:300])
    finally:
        await worker.close()


async def _process(
    worker: ControllerWorker,
    publisher: Publisher,
    by_question: dict[str, list[Event]],
    stop: asyncio.Event,
    log: Any,
) -> None:
    """Apply a batch; when Redis or Kafka fails underneath, back off, rebuild the worker from
    Redis under a fresh epoch and apply the whole batch again (every transition is idempotent
    by sample id, so what already happened is not counted twice). Offsets are committed only
    after this returns."""
    backoff = 0.1
    slots = asyncio.Semaphore(MAX_CONCURRENT_QUESTIONS)

    async def one(evs: list[Event]) -> None:
        async with slots:
            await _run_in_order(worker, evs)

    while True:
        try:
            async with asyncio.TaskGroup() as tg:  # one failure cancels the batch's other tasks
                for evs in by_question.values():
                    tg.create_task(one(evs))
            await publisher.flush()
            return
        except Exception as exc:
            if log is not None:
                log.warning("batch failed; rebuilding from redis", error=repr(exc)[:300])
            if stop.is_set():
                raise
            backoff = await _recover(worker, stop, log, backoff)


async def _recover(
    worker: ControllerWorker, stop: asyncio.Event, log: Any, backoff: float
) -> float:
    """Back off and :meth:`~ControllerWorker.reset` until it succeeds (or we are stopping);
    returns the next backoff."""
    while not stop.is_set():
        await asyncio.sleep(backoff)
        backoff = min(5.0, backoff * 2)
        try:
            await worker.reset()
            return backoff
        except Exception as exc:
            if log is not None:
                log.warning("still failing", error=repr(exc)[:300])
    return backoff


async def _run_in_order(worker: ControllerWorker, events: list[Event]) -> None:
    for partition, ev, trace in events:
        with tracing.attached(trace):  # the worker's spans of this event continue its trace
            await worker.handle(ev, partition)


async def _decode(m: Any, publisher: Publisher, log: Any) -> events_pb2.QuestionEvent | None:
    try:
        ev = events_pb2.QuestionEvent.FromString(m.value)
        if ev.WhichOneof("event") is None:
            raise ValueError("missing event")
        check_question_id(ev.question_id)
        if ev.schema_version > SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {ev.schema_version}")
        _check_sample(ev)
        return ev
    except Exception as exc:  # poison: park it with the reason, move on
        key = (m.key or b"").decode(errors="replace")
        await publisher(kafka.DLQ, key, m.value or b"", reason=f"{type(exc).__name__}: {exc}")
        if log is not None:
            log.warning("poison event", partition=m.partition, offset=m.offset, reason=str(exc))
        return None


def _check_sample(ev: events_pb2.QuestionEvent) -> None:
    """A score or failure must name a sample of its own question (``<question id>/<index>``)
    and a score must be a number in [0, 1]; anything else would corrupt the fit."""
    kind = ev.WhichOneof("event")
    if kind == "scored":
        sc = scored_by_reference(ev.scored)
        sid, score = sc.sample_id, sc.score
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(f"score {score!r} of {sid!r} is not a number in [0, 1]")
    elif kind == "sample_failed":
        sid = ev.sample_failed.sample_id
    else:
        return
    prefix = ev.question_id + "/"
    if not (sid.startswith(prefix) and sid[len(prefix) :].isdigit()):
        raise ValueError(f"sample_id {sid!r} is not a sample of question {ev.question_id!r}")
