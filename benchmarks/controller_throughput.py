"""Score events per second through one controller, real broker + redis-server, and the p99
latency from consuming a score event to the dispatch/stop decision.

    .venv/bin/python benchmarks/controller_throughput.py [--questions 500] [--n-max 16]

Starts Tansu and redis-server on loopback, produces ``questions`` Submitted events followed by
``n_max`` Scored events each (sim score distributions), then runs one controller (the real
Kafka loop, Redis Lua transitions and policy decisions) until every question is final. The
generator is a no-op lease holder (this measures the controller, not generation). Also
measures the broker's raw consume rate of the same topic in the same run and prints the ratio.
Targets: >= 5,000 events/s, p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

import redis.asyncio as aioredis

from optscale.v1 import events_pb2
from services.common import kafka
from services.common.infra import start_broker, start_redis
from services.controller.consumer import Publisher, _Listener, run_controller
from services.controller.state import RedisStateStore
from services.controller.worker import ControllerWorker


class Lease:
    """Generator stand-in: holds the stream open until cancelled."""

    async def generate(self, req: Any, *, epoch: int) -> Any:
        await asyncio.Event().wait()
        yield ""  # pragma: no cover


class Timed(ControllerWorker):
    latencies: list[float]

    async def handle(self, ev: Any, partition: int) -> None:
        t0 = time.perf_counter()
        await super().handle(ev, partition)
        if ev.WhichOneof("event") == "scored":
            self.latencies.append(time.perf_counter() - t0)


async def produce(bootstrap: str, questions: int, n_max: int, seed: int) -> int:
    rng = random.Random(seed)
    p = await kafka.producer(bootstrap)
    n = 0
    for i in range(questions):
        q = f"q{i}"
        ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
        ev.submitted.text = "q"
        ev.submitted.policy.policy = "optscale0"
        ev.submitted.policy.n_max = n_max
        ev.submitted.policy.s_min = 0.9
        await p.send(kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode())
        mu, sd = rng.uniform(0.5, 0.98), rng.uniform(0.02, 0.2)
        for j in range(n_max):
            e = events_pb2.QuestionEvent(question_id=q, schema_version=1)
            c = e.scored.scored.candidate
            c.question_id, c.sample_id, c.answer = q, f"{q}/{j}", str(rng.randint(0, 3))
            c.completion_tokens = rng.randint(100, 400)
            e.scored.scored.score = min(1.0, max(0.0, rng.gauss(mu, sd)))
            await p.send(kafka.QUESTION_EVENTS, e.SerializeToString(), key=q.encode())
            n += 1
    await p.flush()
    await p.stop()
    return n


async def raw_consume(bootstrap: str, total: int) -> float:
    c = await kafka.consumer(bootstrap, kafka.QUESTION_EVENTS, "bench-raw")
    got, t0 = 0, time.perf_counter()
    while got < total:
        recs = await c.getmany(timeout_ms=200, max_records=500)
        got += sum(len(m) for m in recs.values())
    dt = time.perf_counter() - t0
    await c.stop()
    return got / dt


async def main(questions: int, n_max: int, seed: int) -> None:
    broker, rs = start_broker(), start_redis()
    try:
        bootstrap = f"127.0.0.1:{broker.port}"
        await kafka.ensure_topics(bootstrap, partitions=4)
        scored = await produce(bootstrap, questions, n_max, seed)
        total = scored + questions
        raw_rate = await raw_consume(bootstrap, total)
        r = aioredis.from_url(f"redis://127.0.0.1:{rs.port}/0", decode_responses=True)
        producer = await kafka.producer(bootstrap)
        pub = Publisher(producer)
        w = Timed(
            RedisStateStore(r),
            Lease(),
            pub,
            results_topic=kafka.RESULTS,
            events_topic=kafka.QUESTION_EVENTS,
        )
        w.latencies = []
        cons = await kafka.consumer(
            bootstrap,
            kafka.QUESTION_EVENTS,
            "bench-controller",
            listener=_Listener(w),
            session_timeout_ms=2000,
            heartbeat_interval_ms=300,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_controller(w, cons, pub, stop=stop))
        while w.stats["events"] == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        while w.stats["events"] < total:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        dt = time.perf_counter() - t0
        stop.set()
        await task
        await kafka.stop_quietly(cons, producer)
        done = sum([1 for _ in await r.keys("oq:{*}:h")])
        await r.aclose()
        lat = sorted(w.latencies)
        p99 = lat[int(0.99 * (len(lat) - 1))] * 1000
        rate = total / dt
        print(
            f"events {total} ({questions} questions x (1 submit + {n_max} scores)); "
            f"applied {w.stats['applied']}, late {w.stats['late']}, questions in redis {done}"
        )
        print(
            f"controller: {rate:,.0f} events/s; decision latency p50 "
            f"{statistics.median(lat) * 1000:.2f} ms, p99 {p99:.2f} ms"
        )
        print(
            f"broker raw consume: {raw_rate:,.0f} events/s; controller / raw = "
            f"{rate / raw_rate:.3f}x"
        )
        print(
            f"targets: >= 5,000 events/s ({'met' if rate >= 5000 else 'NOT met'}), "
            f"p99 <= 10 ms ({'met' if p99 <= 10 else 'NOT met'})"
        )
    finally:
        broker.stop()
        rs.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--n-max", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    asyncio.run(main(a.questions, a.n_max, a.seed))
