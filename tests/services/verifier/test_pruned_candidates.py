"""A candidate the generator pruned (prefix pruning) is not scored by the verifier's engine: its
Scored event reports the prefix score it was pruned with, no answer, its tokens and
FINISH_REASON_PRUNED; a pruned candidate without a prefix score goes to the DLQ."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import pytest

from optscale.engines.scoring.confidence import Backend as Confidence
from optscale.types import GeneratedSample, ScoredSample
from optscale.v1 import common_pb2, events_pb2
from services.common import kafka
from services.verifier.worker import run_verifier
from tests.services.kafka_standin import StandInConsumer, StandInProducer, until


class CountingEngine:
    """Confidence scores; records which samples it was asked to score."""

    name = model_name = "counting"

    def __init__(self) -> None:
        self.scored: list[str] = []
        self.inner = Confidence()

    async def score_batch(self, items: Sequence[tuple[str, GeneratedSample]]) -> list[ScoredSample]:
        self.scored += [s.sample_id for _, s in items]
        return list(await self.inner.score_batch(items))


def _candidate(
    sid: str, reason: common_pb2.FinishReason.ValueType, prefix: float | None = None
) -> tuple[bytes, bytes]:
    q = sid.split("/")[0]
    c = common_pb2.Candidate(
        question_id=q, sample_id=sid, text="t", prompt="p", epoch=2, completion_tokens=12,
        step_logprobs=[math.log(0.1)], finish_reason=reason,
        answer="" if reason == common_pb2.FINISH_REASON_PRUNED else "42",
    )  # fmt: skip
    if prefix is not None:
        c.prefix_score = prefix
    return q.encode(), c.SerializeToString()


async def test_a_pruned_candidate_is_reported_with_its_prefix_score_unscored() -> None:
    engine = CountingEngine()
    cons, prod, stop = StandInConsumer("candidates"), StandInProducer(), asyncio.Event()
    pruned = common_pb2.FINISH_REASON_PRUNED
    cons.deliver(
        0,
        [
            _candidate("q/0", common_pb2.FINISH_REASON_STOP),
            _candidate("q/1", pruned, prefix=0.1),
            _candidate("q/2", pruned),  # no prefix score: not a valid pruned candidate
        ],
    )
    task = asyncio.create_task(run_verifier(engine, cons, prod, stop=stop))
    await until(lambda: cons.committed)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert engine.scored == ["q/0"]  # the pruned ones never reach the engine
    events = [events_pb2.QuestionEvent.FromString(m.value) for m in prod.on(kafka.QUESTION_EVENTS)]
    by_id = {ev.scored.sample_id: ev.scored for ev in events}
    assert sorted(by_id) == ["q/0", "q/1"]
    s = by_id["q/1"]
    assert s.score == pytest.approx(0.1) and s.answer == "" and s.completion_tokens == 12
    assert s.finish_reason == pruned and s.epoch == 2
    assert list(s.step_scores) == [pytest.approx(0.1)]
    (dlq,) = prod.on(kafka.DLQ)
    assert b"prefix_score" in dict(dlq.headers or [])["reason"]
