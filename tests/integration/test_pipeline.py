"""End to end on a real broker and redis-server with sim backends: Submitted events in,
exactly one result per question out; samples counted once; in-flight work aborted on stop;
a crashed controller's questions resumed by another."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.scoring.confidence import Backend as Confidence
from optscale.errors import BackendUnavailableError
from optscale.v1 import events_pb2
from services.common import kafka
from services.common.infra import Proc
from services.controller.lease import LEASE_RETRIES
from services.local import FAST_GROUP, LocalPipeline
from tests.integration.conftest import local_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(broker: Proc, redis_server: Proc) -> AsyncIterator[LocalPipeline]:
    async with local_pipeline(broker, redis_server, Sim(seed=0, token_delay=0.0002)) as p:
        yield p


async def test_optscale_batch(stack: LocalPipeline) -> None:
    assert stack.store is not None and stack.generator is not None
    applied_before = _metric("optscale_controller_events_total", type="scored", outcome="applied")
    decisions_before = _metric("optscale_controller_decision_seconds_count")
    ids = [f"batch-{i}" for i in range(40)]
    await stack.submit(ids, "optscale0", 16, 0.9)
    results = await stack.results(set(ids), "t-results-1")
    by_q: dict[str, list[events_pb2.Result]] = {}
    for r in results:
        by_q.setdefault(r.question_id, []).append(r)
    assert set(by_q) == set(ids)
    assert all(len(v) == 1 for v in by_q.values()), "duplicate results"
    tokens = samples = 0
    for q, (r,) in by_q.items():
        sq = await stack.store.get(q)
        assert sq is not None and sq.status == "done"
        seen = [o.sample_id for o in sq.observations]
        assert len(seen) == len(set(seen)) == sq.n_scored == r.samples_used
        assert r.samples_used <= 16 and r.status == events_pb2.RESULT_STATUS_DONE
        assert r.chosen_sample_id in seen
        tokens += r.completion_tokens
        samples += r.samples_used
    bon_estimate = 16 * tokens / samples * len(ids)
    print(
        f"\ntokens {tokens} vs BoN@16 estimate {bon_estimate:.0f}: "
        f"{tokens / bon_estimate:.2f}x; samples/question {samples / len(ids):.1f}; "
        f"aborted at the generator {stack.generator.aborted}"
    )
    assert samples < 16 * len(ids)
    # the controller's Prometheus metrics saw every applied score and a decision for each
    applied = _metric("optscale_controller_events_total", type="scored", outcome="applied")
    assert applied - applied_before == samples
    assert _metric("optscale_controller_decision_seconds_count") - decisions_before >= samples


def _metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_duplicate_and_late_scores_change_nothing(stack: LocalPipeline) -> None:
    assert stack.store is not None
    await stack.submit(["dup-0"], "bon", 4, 0.9)
    (r,) = await stack.results({"dup-0"}, "t-results-2")
    before = await stack.store.get("dup-0")
    assert before is not None and before.n_scored == 4
    for sid in (before.observations[0].sample_id, "dup-0/99"):  # a replay, and one after the end
        ev = events_pb2.QuestionEvent(question_id="dup-0", schema_version=1)
        ev.scored.scored.candidate.sample_id = sid
        ev.scored.scored.candidate.question_id = "dup-0"
        ev.scored.scored.score = 0.99
        await stack.producer.send_and_wait(
            kafka.QUESTION_EVENTS, ev.SerializeToString(), key=b"dup-0"
        )
    await asyncio.sleep(2.0)
    after = await stack.store.get("dup-0")
    assert after is not None
    assert (after.n_scored, after.result) == (4, before.result)
    assert after.observations == before.observations
    assert await stack.redis.llen("oq:{dup-0}:late") == 1
    assert r.samples_used == 4


async def test_controller_failover_resumes_every_question(stack: LocalPipeline) -> None:
    assert stack.store is not None and stack.generator is not None
    stack.generator.backend.token_delay = 0.002  # ~0.3 s per sample: work is in flight
    b = await stack.start_controller()
    ids = [f"fo-{i}" for i in range(24)]
    await stack.submit(ids, "optscale0", 8, 0.9)
    cons = await kafka.consumer(stack.bootstrap, kafka.RESULTS, "t-results-fo", **FAST_GROUP)
    seen: set[str] = set()
    async with asyncio.timeout(60):
        while len(seen & set(ids)) < 3:
            for msgs in (await cons.getmany(timeout_ms=200)).values():
                seen |= {events_pb2.Result.FromString(m.value).question_id for m in msgs}
    await cons.stop()
    assert b.worker.stats["events"] > 0, "controller B never owned a partition"
    # crash controller B: its loop dies, its Generate streams drop, it leaves the group
    b.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await b.task
    await b.consumer.stop()
    stack.controllers.remove(b)
    results = await stack.results(set(ids), "t-results-fo2", wait_s=120)
    final: dict[str, tuple[object, ...]] = {}
    for r in results:  # duplicates carry the same outcome (in-flight counts may differ)
        outcome = (r.answer, r.chosen_sample_id, r.score, r.samples_used, r.completion_tokens)
        assert final.setdefault(r.question_id, outcome) == outcome
    assert set(final) == set(ids)
    for q in ids:
        sq = await stack.store.get(q)
        assert sq is not None and sq.status == "done"
        obs = [o.sample_id for o in sq.observations]
        assert len(obs) == len(set(obs)) == sq.n_scored <= 8


async def test_poison_and_odd_messages_go_to_the_dlq_and_nothing_stops(
    stack: LocalPipeline,
) -> None:
    send = stack.producer.send_and_wait
    await send(kafka.QUESTION_EVENTS, b"\xff\x00not protobuf", key=b"p1")
    future = events_pb2.QuestionEvent(question_id="p2", schema_version=99)
    future.cancelled.reason = "x"
    await send(kafka.QUESTION_EVENTS, future.SerializeToString(), key=b"p2")
    bad = events_pb2.QuestionEvent(question_id="p3", schema_version=1)
    bad.submitted.text = "q"
    bad.submitted.policy.policy = "nope"
    await send(kafka.QUESTION_EVENTS, bad.SerializeToString(), key=b"p3")
    stray = events_pb2.QuestionEvent(question_id="unknown-q", schema_version=1)
    stray.scored.scored.candidate.sample_id = "unknown-q/0"
    stray.scored.scored.score = 0.5
    await send(kafka.QUESTION_EVENTS, stray.SerializeToString(), key=b"unknown-q")
    await send(kafka.CANDIDATES, b"garbage", key=b"p4")
    await stack.submit(["after-poison"], "bon", 2, 0.9)
    # scores that would corrupt a live question's fit: NaN, out of [0, 1], another's sample
    for sid, score in (
        ("after-poison/90", float("nan")),
        ("after-poison/91", 1.5),
        ("someone-else/0", 0.5),
    ):
        odd = events_pb2.QuestionEvent(question_id="after-poison", schema_version=1)
        odd.scored.scored.candidate.sample_id = sid
        odd.scored.scored.score = score
        await stack.producer.send_and_wait(
            kafka.QUESTION_EVENTS, odd.SerializeToString(), key=b"after-poison"
        )
    results = await stack.results({"after-poison", "p3"}, "t-results-poison")
    by_q = {r.question_id: r for r in results}
    assert by_q["after-poison"].status == events_pb2.RESULT_STATUS_DONE
    assert by_q["after-poison"].samples_used == 2  # none of the odd scores counted
    assert by_q["p3"].status == events_pb2.RESULT_STATUS_FAILED
    assert "policy" in by_q["p3"].stop_reason
    cons = await kafka.consumer(stack.bootstrap, kafka.DLQ, "t-dlq", **FAST_GROUP)
    reasons: dict[bytes, str] = {}
    odd_reasons: list[str] = []
    async with asyncio.timeout(30):
        while len(reasons) < 4 or len(odd_reasons) < 3:
            for msgs in (await cons.getmany(timeout_ms=200)).values():
                for m in msgs:
                    why = dict(m.headers or []).get("reason", b"").decode()
                    if m.key == b"after-poison":
                        odd_reasons.append(why)
                    else:
                        reasons[m.key] = why
    await cons.stop()
    assert "DecodeError" in reasons[b"p1"] or "Error" in reasons[b"p1"]
    assert "schema_version 99" in reasons[b"p2"]
    assert "rejected" in reasons[b"p3"] and "policy" in reasons[b"p3"]
    assert reasons[b"p4"]  # the verifier parks undecodable candidates too
    assert sorted(odd_reasons) == sorted(
        [
            "ValueError: score nan of 'after-poison/90' is not a number in [0, 1]",
            "ValueError: score 1.5 of 'after-poison/91' is not a number in [0, 1]",
            "ValueError: sample_id 'someone-else/0' is not a sample of question 'after-poison'",
        ]
    )
    assert await stack.store.get("unknown-q") is None  # a stray score creates nothing


class _DownEngine:
    name = model_name = "down"
    calls = 0

    async def generate(self, req: object) -> AsyncIterator[object]:
        _DownEngine.calls += 1
        raise BackendUnavailableError("engine down")
        yield  # pragma: no cover - an async generator


async def test_a_dead_generator_is_retried_with_backoff_then_the_question_fails(
    broker: Proc, redis_server: Proc
) -> None:
    _DownEngine.calls = 0
    options = {"retry_base": 0.05, "retry_cap": 0.2}
    async with LocalPipeline(
        f"127.0.0.1:{broker.port}",
        f"redis://127.0.0.1:{redis_server.port}/0",
        _DownEngine(),
        Confidence(),
        worker_options=options,
    ) as p:
        await p.submit(["down-0", "down-1"], "optscale0", 4, 0.9)
        results = await p.results({"down-0", "down-1"}, "t-results-down", wait_s=60)
    assert sorted(r.question_id for r in results) == ["down-0", "down-1"]
    for r in results:
        assert r.status == events_pb2.RESULT_STATUS_FAILED and r.samples_failed >= 4
        assert r.samples_used == 0 and r.stop_reason == "failures"
    # bounded: each lease retries LEASE_RETRIES times, then its samples fail (no hot loop)
    assert _DownEngine.calls <= 2 * 4 * (LEASE_RETRIES + 1)


async def test_backpressure_caps_questions_sampling_at_once(
    broker: Proc, redis_server: Proc
) -> None:
    async with LocalPipeline(
        f"127.0.0.1:{broker.port}",
        f"redis://127.0.0.1:{redis_server.port}/0",
        Sim(seed=1, token_delay=0.0002),
        Confidence(),
        worker_options={"max_active": 3},
    ) as p:
        worker = p.controllers[0].worker
        peak = {"owned": 0, "waiting": 0}

        async def watch() -> None:
            while True:
                peak["owned"] = max(peak["owned"], len(worker.owned))
                peak["waiting"] = max(peak["waiting"], len(worker.waiting))
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        ids = [f"bp-{i}" for i in range(20)]
        await p.submit(ids, "optscale0", 8, 0.9)
        results = await p.results(set(ids), "t-results-bp", wait_s=120)
        watcher.cancel()
    assert sorted({r.question_id for r in results}) == sorted(ids)
    assert peak["owned"] <= 3 and peak["waiting"] > 0  # the rest waited their turn
