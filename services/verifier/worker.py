"""Verifier worker: a consumer group on ``optscale.candidates``; scores micro-batches and
publishes ``Scored`` (or ``SampleFailed``) question events keyed by question id.

Offsets are committed after the events are acknowledged by the broker (at least once; the
controller's Redis transition makes a redelivered score a no-op).
"""

from __future__ import annotations

import asyncio
from typing import Any

from optscale.errors import OptScaleError
from optscale.v1 import common_pb2, events_pb2
from services.common import kafka
from services.common.convert import candidate_from_pb, scored_to_pb
from services.common.metrics import VERIFIER_BATCH


async def run_verifier(
    backend: Any,
    consumer: Any,
    producer: Any,
    *,
    stop: asyncio.Event,
    max_batch: int = 32,
    max_wait_ms: int = 5,
    log: Any = None,
) -> None:
    version = str(getattr(backend, "model_name", backend.name))
    while not stop.is_set():
        records = await consumer.getmany(timeout_ms=max_wait_ms or 1, max_records=max_batch)
        if not records:
            continue
        futs: list[Any] = []
        good: list[tuple[common_pb2.Candidate, Any]] = []
        for msgs in records.values():
            for m in msgs:
                try:
                    c = common_pb2.Candidate.FromString(m.value)
                    if not c.question_id:
                        raise ValueError("candidate without question_id")
                    good.append((c, candidate_from_pb(c)))
                except (ValueError, OptScaleError, Exception) as exc:
                    futs.append(
                        await producer.send(
                            kafka.DLQ,
                            m.value or b"",
                            key=m.key,
                            headers=[("reason", str(exc).encode())],
                        )
                    )
        if good:
            VERIFIER_BATCH.observe(len(good))
        for c, s in good:
            ev = events_pb2.QuestionEvent(question_id=c.question_id, schema_version=1)
            try:
                scored = await backend.score_batch([(c.prompt, s)])
                ev.scored.scored.CopyFrom(scored_to_pb(scored[0], c, version))
            except OptScaleError as exc:  # cannot score this one: the controller replaces it
                ev.sample_failed.sample_id = c.sample_id
                ev.sample_failed.reason = str(exc)[:500]
                ev.sample_failed.epoch = c.epoch
            futs.append(
                await producer.send(
                    kafka.QUESTION_EVENTS, ev.SerializeToString(), key=c.question_id.encode()
                )
            )
        await asyncio.gather(*futs)
        await kafka.commit_batch(consumer, records)
