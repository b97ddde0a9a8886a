"""Score events per second through one controller, real broker + redis-server, and the p99
latency from consuming a score event to the dispatch/stop decision.

    .venv/bin/python benchmarks/controller_throughput.py [--questions 500] [--n-max 16] [--compare]

Starts Tansu and redis-server on loopback, produces ``questions`` Submitted events followed by
``n_max`` Scored events each (sim score distributions), then runs one controller (the real
Kafka loop, Redis Lua transitions and policy decisions) until every question is final. The
generator is a no-op lease holder (this measures the controller, not generation). Also
measures the broker's raw consume rate of the same topic in the same run and prints the ratio.
Decision latency: from the worker starting on a score event to the policy's stop/dispatch
decision (the ``optscale_controller_decision_seconds`` histogram); carrying a stop out (cancel,
finalize, publish the result and wait for the broker's ack) is reported separately.
``--compare`` also runs the controller on the same events with one Redis call per round trip
(no auto-pipelining) and with redis-py's pure-Python reply parser (no hiredis), and prints the
ratios.
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


async def run_controller_once(
    bootstrap: str, redis_port: int, total: int, group: str, autopipeline: bool, hiredis: bool
) -> dict[str, Any]:
    """One controller (fresh Redis db, fresh consumer group) over the produced events."""
    kw: dict[str, Any] = {}
    if not hiredis:  # redis-py's pure-Python reply parser (what it uses without hiredis)
        from redis._parsers import _AsyncRESP2Parser

        kw["parser_class"] = _AsyncRESP2Parser
    r = aioredis.from_url(f"redis://127.0.0.1:{redis_port}/0", decode_responses=True, **kw)
    await r.flushdb()
    producer = await kafka.producer(bootstrap)
    pub = Publisher(producer)
    store = RedisStateStore(r, autopipeline=autopipeline)
    w = Timed(store, Lease(), pub, results_topic=kafka.RESULTS, events_topic=kafka.QUESTION_EVENTS)
    w.latencies = []
    cons = await kafka.consumer(
        bootstrap,
        kafka.QUESTION_EVENTS,
        group,
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
    in_redis = len(await r.keys("oq:{*}:h"))
    await r.aclose()
    lat, dec = sorted(w.latencies), sorted(w.decisions)
    return {
        "rate": total / dt,
        "p50": statistics.median(dec) * 1000,
        "p99": dec[int(0.99 * (len(dec) - 1))] * 1000,
        "handled_p99": lat[int(0.99 * (len(lat) - 1))] * 1000,
        "applied": w.stats["applied"],
        "late": w.stats["late"],
        "in_redis": in_redis,
        "calls_per_trip": (
            store.pipeline.calls / max(1, store.pipeline.round_trips) if store.pipeline else 1.0
        ),
    }


async def main(questions: int, n_max: int, seed: int, compare: bool) -> None:
    broker, rs = start_broker(), start_redis()
    try:
        bootstrap = f"127.0.0.1:{broker.port}"
        await kafka.ensure_topics(bootstrap, partitions=4)
        scored = await produce(bootstrap, questions, n_max, seed)
        total = scored + questions
        raw_rate = await raw_consume(bootstrap, total)
        modes = (
            [("one call per round trip", False, True), ("pure-Python reply parser", True, False)]
            if compare
            else []
        )
        modes.append(("auto-pipelined + hiredis (default)", True, True))
        # warm-up, not measured: the first controller in a process (and the broker's first
        # consumer group) runs markedly slower; without this the mode measured first loses
        await run_controller_once(bootstrap, rs.port, total, "bench-warmup", True, True)
        runs = {}
        for i, (name, auto, hiredis) in enumerate(modes):
            m = runs[name] = await run_controller_once(
                bootstrap, rs.port, total, f"bench-controller-{i}", auto, hiredis
            )
            print(
                f"{name}: {m['rate']:,.0f} events/s; decision latency p50 {m['p50']:.2f} ms, "
                f"p99 {m['p99']:.2f} ms (event fully handled, incl. publishing a result: p99 "
                f"{m['handled_p99']:.2f} ms); {m['calls_per_trip']:.1f} Redis calls per round "
                f"trip; applied {m['applied']}, late {m['late']}, questions {m['in_redis']}"
            )
        m = runs[modes[-1][0]]
        print(f"events {total} ({questions} questions x (1 submit + {n_max} scores))")
        print(
            f"broker raw consume: {raw_rate:,.0f} events/s; controller / raw = "
            f"{m['rate'] / raw_rate:.3f}x"
        )
        if compare:
            for name, *_ in modes[:-1]:
                base = runs[name]
                print(
                    f"default / {name}: {m['rate'] / base['rate']:.2f}x events/s, "
                    f"{m['p99'] / base['p99']:.2f}x p99"
                )
        print(
            f"targets: >= 5,000 events/s ({'met' if m['rate'] >= 5000 else 'NOT met'}), "
            f"p99 <= 10 ms ({'met' if m['p99'] <= 10 else 'NOT met'})"
        )
    finally:
        broker.stop()
        rs.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--n-max", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--compare", action="store_true", help="also run without auto-pipelining and hiredis"
    )
    a = ap.parse_args()
    asyncio.run(main(a.questions, a.n_max, a.seed, a.compare))
