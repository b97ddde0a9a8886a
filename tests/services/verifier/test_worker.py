"""The verifier's Kafka worker on stand-ins for the consumer and producer: the candidates of a
consumed batch are scored together in micro-batches of at most the backend's batch size; an
engine error (a CUDA out-of-memory, a ``RuntimeError``) neither kills the worker nor fails the
other candidates — the batch is retried in halves and only the candidate that fails alone
becomes a ``SampleFailed`` and goes to the DLQ; a commit refused during a rebalance is not
fatal."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import CommitFailedError

from optscale.engines.scoring.confidence import Backend as Confidence
from optscale.errors import InvalidArgumentError
from optscale.types import GeneratedSample, ScoredSample
from optscale.v1 import common_pb2, events_pb2
from services.common import kafka
from services.verifier.worker import batch_size, run_verifier
from tests.services.kafka_standin import StandInConsumer, StandInProducer, until

POISON = "q1/4"  # the candidate the engine cannot score, alone or in company
INVALID = "q2/0"  # one the backend refuses as invalid (an OptScaleError)


class BrittleEngine:
    """Confidence scores; any batch holding ``POISON`` dies like a CUDA OOM would."""

    name = model_name = "brittle"

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.calls: list[list[str]] = []
        self.inner = Confidence()

    async def score_batch(self, items: Sequence[tuple[str, GeneratedSample]]) -> list[ScoredSample]:
        ids = [s.sample_id for _, s in items]
        self.calls.append(ids)
        if POISON in ids:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if INVALID in ids:
            raise InvalidArgumentError("candidate", INVALID, "cannot be scored")
        return list(await self.inner.score_batch(items))


def _candidate(sid: str, epoch: int = 3) -> tuple[bytes, bytes]:
    q = sid.split("/")[0]
    c = common_pb2.Candidate(
        question_id=q, sample_id=sid, text="t", prompt="p", epoch=epoch, step_logprobs=[-0.1]
    )
    return q.encode(), c.SerializeToString()


def _events(prod: StandInProducer) -> dict[str, events_pb2.QuestionEvent]:
    out = {}
    for m in prod.on(kafka.QUESTION_EVENTS):
        ev = events_pb2.QuestionEvent.FromString(m.value)
        kind = ev.WhichOneof("event")
        sid = ev.scored.sample_id if kind == "scored" else ""
        out[sid or ev.sample_failed.sample_id] = ev
    return out


async def test_a_batch_is_scored_together_and_only_the_candidate_that_fails_alone_fails() -> None:
    engine = BrittleEngine(batch_size=4)
    cons, prod, stop = StandInConsumer("candidates"), StandInProducer(), asyncio.Event()
    cons.commit_errors.append(CommitFailedError("rebalance"))
    sids = [f"q{i % 3}/{i}" for i in range(10)]  # POISON (q1/4) among them
    sids[0] = INVALID
    cons.deliver(0, [_candidate(s) for s in sids])
    task = asyncio.create_task(run_verifier(engine, cons, prod, stop=stop, max_batch=32))
    await until(lambda: cons.commit_calls == 1)  # the first commit is refused...
    cons.deliver(0, [_candidate("q4/0")])
    await until(lambda: cons.committed)  # ...and the worker goes on with the next batch
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 10)

    events = _events(prod)
    assert set(events) == {*sids, "q4/0"}  # one event per candidate
    for sid, ev in events.items():
        kind = ev.WhichOneof("event")
        assert kind == ("sample_failed" if sid in (POISON, INVALID) else "scored"), sid
    failed = events[POISON].sample_failed
    assert "CUDA out of memory" in failed.reason and failed.epoch == 3
    assert "cannot be scored" in events[INVALID].sample_failed.reason
    (dlq,) = prod.on(kafka.DLQ)  # the engine error is kept with its reason; invalid is not
    assert dlq.value == _candidate(POISON)[1] and b"CUDA" in dict(dlq.headers or [])["reason"]
    first_batches = [c for c in engine.calls if len(c) > 1]
    assert first_batches and max(len(c) for c in engine.calls) <= 4  # batched, within size
    # bounded retries: each batch of 4 is split at most down to single candidates
    assert len(engine.calls) <= 3 * (2 * 4 - 1) + 1


def test_the_micro_batch_respects_the_backends_batch_size() -> None:
    assert batch_size(BrittleEngine(8), 32) == 8
    assert batch_size(BrittleEngine(64), 32) == 32
    assert batch_size(Confidence(), 16) == 16  # no limit of its own
    assert batch_size(BrittleEngine(0), 5) == 5


async def test_the_worker_survives_an_engine_that_fails_every_batch() -> None:
    class Down:
        name = model_name = "down"

        async def score_batch(self, items: Any) -> Any:
            raise RuntimeError("engine crashed")

    cons, prod, stop = StandInConsumer("candidates"), StandInProducer(), asyncio.Event()
    cons.deliver(0, [_candidate("a/0"), _candidate("a/1")])
    task = asyncio.create_task(run_verifier(Down(), cons, prod, stop=stop))
    await until(lambda: cons.committed)
    stop.set()
    await asyncio.wait_for(task, 10)
    kinds = {ev.WhichOneof("event") for ev in _events(prod).values()}
    assert kinds == {"sample_failed"} and len(prod.on(kafka.DLQ)) == 2


async def test_a_scored_event_carries_the_candidate_by_reference() -> None:
    """An 8 KB trace answering a 300-character prompt: the Scored event names the sample and
    carries its epoch, score(s), answer and token counts, never the text or the prompt."""
    text, prompt = "Step: add the numbers. " * 356, "Q" * 300  # 8,188 + 300 characters
    c = common_pb2.Candidate(
        question_id="big", sample_id="big/3", text=text, prompt=prompt, answer="42", epoch=5,
        completion_tokens=2048, prompt_tokens=80, step_logprobs=[-0.2] * 40,
        finish_reason=common_pb2.FINISH_REASON_STOP,
    )  # fmt: skip
    cons, prod, stop = StandInConsumer("candidates"), StandInProducer(), asyncio.Event()
    cons.deliver(0, [(b"big", c.SerializeToString())])
    task = asyncio.create_task(run_verifier(Confidence(), cons, prod, stop=stop))
    await until(lambda: cons.committed)
    stop.set()
    await asyncio.wait_for(task, 10)
    (m,) = prod.on(kafka.QUESTION_EVENTS)
    ev = events_pb2.QuestionEvent.FromString(m.value)
    s = ev.scored
    assert ev.question_id == "big" and not s.HasField("scored")  # no candidate inside
    assert (s.sample_id, s.epoch, s.answer) == ("big/3", 5, "42")
    assert (s.completion_tokens, s.prompt_tokens) == (2048, 80)
    assert s.finish_reason == common_pb2.FINISH_REASON_STOP and 0.0 <= s.score <= 1.0
    assert s.verifier_version and b"add the numbers" not in m.value and b"QQQ" not in m.value
    # bounded whatever the text's length: ids and counts, plus 8 bytes per step score
    assert len(m.value) - 8 * len(s.step_scores) < 120, len(m.value)
