"""Verifier worker: a consumer group on ``optscale.candidates``; scores the candidates of each
consumed batch together, in micro-batches of at most the backend's batch size, and publishes
``Scored`` (or ``SampleFailed``) question events keyed by question id. A ``Scored`` event is
by reference: sample id, epoch, score(s), the generator's answer and token counts, never the
candidate's text or prompt (those cross Kafka once, on ``optscale.candidates``).

A micro-batch that raises — an invalid candidate, or an engine error such as a CUDA
out-of-memory or a ``RuntimeError`` — is retried split in halves down to single candidates
(:func:`services.common.batcher.run_isolated`): the worker never dies of it, and only a
candidate that fails alone is given up: the question gets a ``SampleFailed`` (the controller
replaces the sample at once instead of waiting for its idle rebuild), and a candidate that hit
an engine error (not an :class:`~optscale.errors.OptScaleError`) also goes to
``optscale.dlq`` with the reason.

A candidate the generator pruned (``FINISH_REASON_PRUNED``, prefix pruning) skips the backend:
its ``Scored`` event reports the prefix score it was pruned with (``Candidate.prefix_score``;
without one it goes to ``optscale.dlq``), so the controller takes it as the embedded solver
does — scored, no answer.

Offsets are committed after the events are acknowledged by the broker (at least once; the
controller's Redis transition makes a redelivered score a no-op). A commit refused during a
rebalance is logged and the batch is redelivered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from typing import Any

from optscale.errors import InvalidArgumentError, OptScaleError
from optscale.truncnorm import validate_score
from optscale.types import GeneratedSample, ScoredSample
from optscale.v1 import common_pb2, events_pb2
from services.common import kafka, tracing
from services.common.batcher import Failed, run_isolated
from services.common.convert import candidate_from_pb, scored_event
from services.common.metrics import DLQ_MESSAGES, VERIFIER_BATCH, busy

Decoded = tuple[Any, common_pb2.Candidate, GeneratedSample]  # (message, candidate, sample)


def batch_size(backend: Any, max_batch: int) -> int:
    """Candidates scored in one ``score_batch`` call: ``max_batch``, or the backend's own
    ``batch_size`` (a GPU engine's limit) when that is smaller."""
    own = getattr(backend, "batch_size", None)
    return max(1, min(max_batch, own) if isinstance(own, int) and own > 0 else max_batch)


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
    size = batch_size(backend, max_batch)
    while not stop.is_set():
        records = await consumer.getmany(timeout_ms=max_wait_ms or 1, max_records=max_batch)
        if not records:
            continue
        futs: list[Any] = []
        good: list[Decoded] = []
        for msgs in records.values():
            for m in msgs:
                try:
                    c = common_pb2.Candidate.FromString(m.value)
                    if not c.question_id:
                        raise ValueError("candidate without question_id")
                    if c.finish_reason == common_pb2.FINISH_REASON_PRUNED:
                        futs.append(await _send_pruned(producer, c, version))
                        continue
                    good.append((m, c, candidate_from_pb(c)))
                except Exception as exc:  # undecodable or invalid: park it with the reason
                    futs.append(await _dlq(producer, m, str(exc)))
        for b in range(0, len(good), size):
            futs += await _score(backend, producer, good[b : b + size], version, log)
        await asyncio.gather(*futs)
        await kafka.commit_or_redeliver(consumer, records, log)


async def _score(
    backend: Any, producer: Any, chunk: list[Decoded], version: str, log: Any
) -> list[Any]:
    """Score one micro-batch and send an event per candidate (returns the send futures)."""
    VERIFIER_BATCH.observe(len(chunk))
    # traced: a verifier.score_batch span linked to every candidate's sample span, and a
    # verifier.score span per candidate, child of its sample span (the Scored event's context)
    parents = [tracing.from_kafka(getattr(m, "headers", None)) for m, _, _ in chunk]
    t0 = time.time_ns()
    with tracing.span("verifier", "verifier.score_batch", links=parents, size=len(chunk)) as b:
        outs = await busy(run_isolated(backend.score_batch, [(c.prompt, s) for _, c, s in chunk]))
    futs = []
    for (m, c, _), out, parent in zip(chunk, outs, parents, strict=True):
        span = tracing.start(
            "verifier",
            "verifier.score",
            question_id=c.question_id,
            parent=parent,
            links=[tracing.context_of(b)],
            start_time=t0,
            sample_id=c.sample_id,
            batch_size=len(chunk),
        )
        ev = events_pb2.QuestionEvent(question_id=c.question_id, schema_version=1)
        if isinstance(out, Failed):  # failed alone: the controller replaces this sample
            reason = f"{type(out.error).__name__}: {out.error}"
            ev.sample_failed.sample_id = c.sample_id
            ev.sample_failed.reason = reason[:500]
            ev.sample_failed.epoch = c.epoch
            if not isinstance(out.error, OptScaleError):  # an engine error: keep the evidence
                futs.append(await _dlq(producer, m, f"scoring failed: {reason}"))
                if log is not None:
                    log.warning("candidate failed alone", sample_id=c.sample_id, error=reason)
        else:
            ev.scored.CopyFrom(scored_event(out, c, version))  # by reference: no text
        tracing.end(span, score=ev.scored.score if ev.HasField("scored") else None)
        value, key = ev.SerializeToString(), c.question_id.encode()
        headers = tracing.kafka_headers(tracing.context_of(span))
        futs.append(await producer.send(kafka.QUESTION_EVENTS, value, key=key, headers=headers))
    return futs


async def _send_pruned(producer: Any, c: common_pb2.Candidate, version: str) -> Any:
    """A sample the generator pruned (prefix pruning) is not scored here: its ``Scored`` event
    carries the prefix score the generator's judge pruned it with, no answer, the tokens it
    decoded, ``FINISH_REASON_PRUNED``, and step scores ``exp`` of its step log-probs."""
    if not c.HasField("prefix_score"):
        raise InvalidArgumentError("candidate.prefix_score", None, "a pruned candidate needs it")
    s = candidate_from_pb(c)
    steps = tuple(math.exp(lp) for lp in s.step_logprobs)
    out = ScoredSample(dataclasses.replace(s, answer=None), validate_score(c.prefix_score), steps)
    ev = events_pb2.QuestionEvent(question_id=c.question_id, schema_version=1)
    ev.scored.CopyFrom(scored_event(out, c, version))
    value, key = ev.SerializeToString(), c.question_id.encode()
    return await producer.send(kafka.QUESTION_EVENTS, value, key=key)


async def _dlq(producer: Any, m: Any, reason: str) -> Any:
    headers = [("reason", reason.encode()[:1000])]
    DLQ_MESSAGES.labels("verifier").inc()
    return await producer.send(kafka.DLQ, m.value or b"", key=m.key, headers=headers)
