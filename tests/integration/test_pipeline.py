"""End to end on a real broker and redis-server with sim backends: Submitted events in,
exactly one result per question out; samples counted once; in-flight work aborted on stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from optscale.v1 import events_pb2, generator_pb2_grpc
from services.common import kafka
from services.common.infra import Proc
from services.common.logging import configure
from services.common.server import Server
from services.controller.clients import GrpcGenerator
from services.controller.consumer import Publisher, _Listener, run_controller
from services.controller.state import RedisStateStore
from services.controller.worker import ControllerWorker
from services.generator.backends.sim import Backend as Sim
from services.generator.server import SERVICE, GeneratorServicer
from services.verifier.backends.confidence import Backend as Confidence
from services.verifier.worker import run_verifier

pytestmark = pytest.mark.integration
FAST = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


@dataclass
class Stack:
    bootstrap: str
    redis: Any
    producer: Any
    generator: GeneratorServicer
    store: RedisStateStore
    client: Any = None
    log: Any = None


@dataclass
class Controller:
    worker: ControllerWorker
    consumer: Any
    task: asyncio.Task[None]
    stop: asyncio.Event


async def start_controller(st: Stack) -> Controller:
    publisher = Publisher(st.producer)
    worker = ControllerWorker(
        st.store,
        st.client,
        publisher,
        results_topic=kafka.RESULTS,
        events_topic=kafka.QUESTION_EVENTS,
        log=st.log,
    )
    cons = await kafka.consumer(
        st.bootstrap,
        kafka.QUESTION_EVENTS,
        "optscale-controller",
        listener=_Listener(worker),
        **FAST,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_controller(worker, cons, publisher, stop=stop, log=st.log))
    return Controller(worker, cons, task, stop)


@pytest.fixture
async def stack(broker: Proc, redis_server: Proc) -> AsyncIterator[Stack]:
    bootstrap = f"127.0.0.1:{broker.port}"
    await kafka.ensure_topics(bootstrap, partitions=4)
    log = configure("test", "warning")
    r = aioredis.from_url(f"redis://127.0.0.1:{redis_server.port}/0", decode_responses=True)
    await r.flushdb()
    producer = await kafka.producer(bootstrap)

    async def publish_candidate(c: Any) -> None:
        await producer.send_and_wait(
            kafka.CANDIDATES, c.SerializeToString(), key=c.question_id.encode()
        )

    gen = GeneratorServicer(Sim(seed=0, token_delay=0.0002), log, publish_candidate)
    server = Server([SERVICE])
    generator_pb2_grpc.add_GeneratorServicer_to_server(gen, server.server)
    port = await server.start("127.0.0.1", 0)
    stop = asyncio.Event()
    vcons = await kafka.consumer(bootstrap, kafka.CANDIDATES, "optscale-verifier", **FAST)
    vtask = asyncio.create_task(run_verifier(Confidence(), vcons, producer, stop=stop))
    store = RedisStateStore(r)
    client = GrpcGenerator(f"127.0.0.1:{port}")
    publisher = Publisher(producer)
    worker = ControllerWorker(
        store,
        client,
        publisher,
        results_topic=kafka.RESULTS,
        events_topic=kafka.QUESTION_EVENTS,
        log=log,
    )
    ccons = await kafka.consumer(
        bootstrap, kafka.QUESTION_EVENTS, "optscale-controller", listener=_Listener(worker), **FAST
    )
    ctask = asyncio.create_task(run_controller(worker, ccons, publisher, stop=stop, log=log))
    try:
        yield Stack(bootstrap, r, producer, gen, store, client, log)
    finally:
        stop.set()
        for t in (vtask, ctask):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, 10)
        await kafka.stop_quietly(vcons, ccons, producer)
        await client.close()
        await server.stop(0)
        await r.aclose()


async def submit(st: Stack, ids: list[str], policy: str, n_max: int, s_min: float) -> None:
    for q in ids:
        ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
        ev.submitted.text = f"question {q}"
        ev.submitted.reference_answer = "42"
        ev.submitted.policy.policy = policy
        ev.submitted.policy.n_max = n_max
        ev.submitted.policy.s_min = s_min
        ev.submitted.sampling.max_tokens = 512
        await st.producer.send(kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode())
    await st.producer.flush()


async def collect_results(st: Stack, ids: set[str], group: str, wait_s: float = 90) -> list[Any]:
    cons = await kafka.consumer(st.bootstrap, kafka.RESULTS, group, **FAST)
    out: list[Any] = []
    try:
        async with asyncio.timeout(wait_s):
            while not ids <= {r.question_id for r in out}:
                recs = await cons.getmany(timeout_ms=200)
                for msgs in recs.values():
                    out += [events_pb2.Result.FromString(m.value) for m in msgs]
        await asyncio.sleep(1.0)  # anything duplicated would arrive now
        recs = await cons.getmany(timeout_ms=500)
        for msgs in recs.values():
            out += [events_pb2.Result.FromString(m.value) for m in msgs]
    finally:
        await cons.stop()
    return [r for r in out if r.question_id in ids]


async def test_optscale_batch(stack: Stack) -> None:
    ids = [f"batch-{i}" for i in range(40)]
    await submit(stack, ids, "optscale0", 16, 0.9)
    results = await collect_results(stack, set(ids), "t-results-1")
    by_q: dict[str, list[Any]] = {}
    for r in results:
        by_q.setdefault(r.question_id, []).append(r)
    assert set(by_q) == set(ids)
    assert all(len(v) == 1 for v in by_q.values()), "duplicate results"
    tokens = samples = 0
    for q, (r,) in by_q.items():
        sq = await stack.store.get(q)
        assert sq is not None and sq.status == "done"
        ids_seen = [o["id"] for o in sq.observations]
        assert len(ids_seen) == len(set(ids_seen)) == sq.n_scored == r.samples_used
        assert r.samples_used <= 16 and r.status == events_pb2.RESULT_STATUS_DONE
        assert r.chosen_sample_id in ids_seen
        tokens += r.completion_tokens
        samples += r.samples_used
    bon_estimate = 16 * tokens / samples * len(ids)
    print(
        f"\ntokens {tokens} vs BoN@16 estimate {bon_estimate:.0f}: "
        f"{tokens / bon_estimate:.2f}x; samples/question {samples / len(ids):.1f}; "
        f"aborted at the generator {stack.generator.aborted}"
    )
    assert samples < 16 * len(ids)


async def test_duplicate_and_late_scores_change_nothing(stack: Stack) -> None:
    ids = ["dup-0"]
    await submit(stack, ids, "bon", 4, 0.9)
    (r,) = await collect_results(stack, set(ids), "t-results-2")
    before = await stack.store.get("dup-0")
    assert before is not None and before.n_scored == 4
    # replay a score that was already applied, and a new one after the end
    obs = before.observations[0]
    for sid in (obs["id"], "dup-0/99"):
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
    assert (after.n_scored, after.result, after.best_id) == (4, before.result, before.best_id)
    assert await stack.redis.llen("oq:{dup-0}:late") == 1
    assert r.samples_used == 4


async def test_controller_failover_resumes_every_question(stack: Stack) -> None:
    stack.generator.backend.token_delay = 0.002  # ~0.3 s per sample: work is in flight
    b = await start_controller(stack)
    ids = [f"fo-{i}" for i in range(24)]
    await submit(stack, ids, "optscale0", 8, 0.9)
    cons = await kafka.consumer(stack.bootstrap, kafka.RESULTS, "t-results-fo", **FAST)
    seen: set[str] = set()
    async with asyncio.timeout(60):
        while len(seen & set(ids)) < 3:
            for msgs in (await cons.getmany(timeout_ms=200)).values():
                seen |= {events_pb2.Result.FromString(m.value).question_id for m in msgs}
    await cons.stop()
    aborted_before = stack.generator.aborted
    assert b.worker.stats["events"] > 0, "controller B never owned a partition"
    # crash controller B: its loop dies, its Generate streams drop, it leaves the group
    b.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await b.task
    await b.consumer.stop()
    results = await collect_results(stack, set(ids), "t-results-fo2", wait_s=120)
    final: dict[str, bytes] = {}
    for r in results:
        payload = r.SerializeToString(deterministic=True)
        assert final.setdefault(r.question_id, payload) == payload  # duplicates are identical
    assert set(final) == set(ids)
    for q in ids:
        sq = await stack.store.get(q)
        assert sq is not None and sq.status == "done"
        obs = [o["id"] for o in sq.observations]
        assert len(obs) == len(set(obs)) == sq.n_scored <= 8
    assert stack.generator.aborted >= aborted_before
