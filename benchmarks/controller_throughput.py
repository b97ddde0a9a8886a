"""Score events per second through one controller, real broker + redis-server, and the p99
latency from consuming a score event to the dispatch/stop decision.

    .venv/bin/python benchmarks/controller_throughput.py [--questions 500] [--n-max 16]
        [--compare] [--payload short|realistic|realistic-by-value ...] [--rounds 3]

Starts Tansu and redis-server on loopback, produces ``questions`` Submitted events followed by
``n_max`` Scored events each (sim score distributions), then runs one controller (the real
Kafka loop, Redis Lua transitions and policy decisions) until every question is final. Each
payload mode runs on a fresh broker in the same run: ``short`` (one-character texts),
``realistic`` (300-character prompts, 8 KB traces, 16 step scores; the Scored events built by
the verifier's ``scored_event``, by reference) and ``realistic-by-value`` (the same candidates
inside every Scored event, the form before payloads by reference, for comparison). The
measured runs interleave the modes over ``--rounds`` rounds (a fresh consumer group and Redis
db each) and the table prints medians: the machine is shared and its load swings between
runs. The generator is a no-op lease holder (this measures the controller, not generation).
Also measures the broker's raw consume rate of each mode's topic, and the controller's CPU
time per event (this process's ``process_time``: less sensitive to the load than wall time).
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
import dataclasses
import random
import statistics
import time
from typing import Any

import redis.asyncio as aioredis

from optscale.types import ScoredSample
from optscale.v1 import common_pb2, events_pb2, generator_pb2
from services.common import kafka
from services.common.convert import candidate_from_pb, sample_done, scored_event, scored_to_pb
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


# payload modes: (question/prompt characters, trace characters, step scores, Scored by value)
PAYLOADS: dict[str, tuple[int, int, int, bool]] = {
    "short": (1, 1, 0, False),  # the synthetic texts the first 5,000 events/s was measured on
    "realistic": (300, 8192, 16, False),  # 300-char prompts, 8 KB traces, by reference
    "realistic-by-value": (300, 8192, 16, True),  # the same, text inside every Scored event
}
VERIFIER = "bench-verifier"


def _texts(payload: str) -> tuple[str, str]:
    """(prompt, trace) of the payload's sizes."""
    prompt_chars, trace_chars, _, _ = PAYLOADS[payload]
    prompt = ("Natalia sold clips to 48 of her friends in April. " * 7)[:prompt_chars]
    step = "Step: half of 48 is 24, so in May she sold 24 clips; 48 + 24 = 72. "
    return prompt, (step * (trace_chars // len(step) + 1))[:trace_chars]


def scored_events(
    q: str, n_max: int, rng: random.Random, payload: str
) -> list[events_pb2.QuestionEvent]:
    """The Scored events of one question as the verifier builds them from the candidates
    (``scored_event``: by reference), or with the whole candidate inside (by value, the form
    before payloads by reference, which the controller still reads)."""
    prompt, trace = _texts(payload)
    _, _, steps, by_value = PAYLOADS[payload]
    big = len(trace) > 1
    mu, sd = rng.uniform(0.5, 0.98), rng.uniform(0.02, 0.2)
    out = []
    for j in range(n_max):
        c = common_pb2.Candidate(
            question_id=q,
            sample_id=f"{q}/{j}",
            text=trace,
            prompt=prompt,
            answer=str(rng.randint(0, 3)),
            completion_tokens=rng.randint(1500, 2500) if big else rng.randint(100, 400),
            prompt_tokens=len(prompt) // 4 + 1,
            finish_reason=common_pb2.FINISH_REASON_STOP,
        )
        score = min(1.0, max(0.0, rng.gauss(mu, sd)))
        s = ScoredSample(candidate_from_pb(c), score, (score,) * steps)
        e = events_pb2.QuestionEvent(question_id=q, schema_version=1)
        if by_value:
            e.scored.scored.CopyFrom(scored_to_pb(s, c, VERIFIER))
        else:
            e.scored.CopyFrom(scored_event(s, c, VERIFIER))
        out.append(e)
    return out


async def produce(
    bootstrap: str, questions: int, n_max: int, seed: int, payload: str
) -> tuple[int, float]:
    """Produce the events; returns (Scored events, mean bytes of one)."""
    rng = random.Random(seed)
    prompt, _ = _texts(payload)
    p = await kafka.producer(bootstrap)
    n, size = 0, 0
    for i in range(questions):
        q = f"q{i}"
        ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
        ev.submitted.text = prompt
        ev.submitted.policy.policy = "optscale0"
        ev.submitted.policy.n_max = n_max
        ev.submitted.policy.s_min = 0.9
        await p.send(kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode())
        for e in scored_events(q, n_max, rng, payload):
            value = e.SerializeToString()
            await p.send(kafka.QUESTION_EVENTS, value, key=q.encode())
            n, size = n + 1, size + len(value)
    await p.flush()
    await p.stop()
    return n, size / max(1, n)


def generate_event_bytes(payload: str) -> tuple[int, int]:
    """Bytes of one ``GenerateEvent`` on the controller's lease stream: by reference
    (``SampleDone``, what a generator sends with ``publish``) and by value (the candidate)."""
    prompt, trace = _texts(payload)
    c = common_pb2.Candidate(
        question_id="q0", sample_id="q0/0", text=trace, prompt=prompt, answer="1",
        completion_tokens=2048, prompt_tokens=76, finish_reason=common_pb2.FINISH_REASON_STOP,
    )  # fmt: skip
    by_ref = generator_pb2.GenerateEvent(done=sample_done(c))
    return by_ref.ByteSize(), generator_pb2.GenerateEvent(candidate=c).ByteSize()


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
    t0, cpu0 = time.perf_counter(), time.process_time()
    while w.stats["events"] < total:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop.set()
    await task
    await kafka.stop_quietly(cons, producer)
    in_redis = len(await r.keys("oq:{*}:h"))
    await r.aclose()
    lat, dec = sorted(w.latencies), sorted(w.decisions)
    return {
        "rate": total / dt,
        "cpu_us": cpu / total * 1e6,  # this process (the controller) only
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


@dataclasses.dataclass
class Prepared:
    """One payload mode's broker with its events produced."""

    broker: Any
    bootstrap: str
    total: int  # events
    size: float  # mean bytes of one Scored event
    raw: float  # the broker's raw consume rate, events/s


async def prepare(payload: str, questions: int, n_max: int, seed: int, redis_port: int) -> Prepared:
    """A fresh broker for ``payload``: produce, measure the raw consume rate, warm up (not
    measured: the first controller in a process and the broker's first consumer group run
    markedly slower; without this the mode measured first loses)."""
    broker = start_broker()
    bootstrap = f"127.0.0.1:{broker.port}"
    await kafka.ensure_topics(bootstrap, partitions=4)
    scored, size = await produce(bootstrap, questions, n_max, seed, payload)
    total = scored + questions
    raw = await raw_consume(bootstrap, total)
    await run_controller_once(bootstrap, redis_port, total, "bench-warmup", True, True)
    return Prepared(broker, bootstrap, total, size, raw)


async def main(
    questions: int, n_max: int, seed: int, compare: bool, payloads: list[str], rounds: int
) -> None:
    modes = (
        [("one call per round trip", False, True), ("pure-Python reply parser", True, False)]
        if compare
        else []
    )
    modes.append(("auto-pipelined + hiredis (default)", True, True))
    rs, ready = start_redis(), {}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        p: {n: [] for n, *_ in modes} for p in payloads
    }
    try:
        for p in payloads:
            ready[p] = await prepare(p, questions, n_max, seed, rs.port)
        # rounds interleave the payload modes: on a shared machine the load swings between
        # runs, so each mode sees the same swings and the same-round ratios compare fairly
        for r in range(rounds):
            for p in payloads:
                for i, (name, auto, hiredis) in enumerate(modes):
                    pr = ready[p]
                    group = f"bench-controller-{r}-{i}"
                    m = await run_controller_once(
                        pr.bootstrap, rs.port, pr.total, group, auto, hiredis
                    )
                    runs[p][name].append(m)
                    print(
                        f"round {r + 1} [{p}] {name}: {m['rate']:,.0f} events/s; decision "
                        f"latency p50 {m['p50']:.2f} ms, p99 {m['p99']:.2f} ms (event fully "
                        f"handled, incl. publishing a result: p99 {m['handled_p99']:.2f} ms); "
                        f"{m['calls_per_trip']:.1f} Redis calls per round trip; applied "
                        f"{m['applied']}, late {m['late']}, questions {m['in_redis']}"
                    )
    finally:
        for pr in ready.values():
            pr.broker.stop()
        rs.stop()
    default = modes[-1][0]
    rate = {p: [m["rate"] for m in runs[p][default]] for p in payloads}
    p99 = {p: [m["p99"] for m in runs[p][default]] for p in payloads}
    cpu = {p: [m["cpu_us"] for m in runs[p][default]] for p in payloads}
    print(f"events per mode {questions} questions x (1 submit + {n_max} scores); {rounds} rounds")
    print(
        "payload             | Scored event bytes | controller events/s (median; min-max) | "
        "p99 ms (median) | controller CPU us/event (median) | broker raw events/s"
    )
    for p in payloads:
        span = f"{statistics.median(rate[p]):,.0f} ({min(rate[p]):,.0f}-{max(rate[p]):,.0f})"
        print(
            f"{p:<19} | {ready[p].size:>18,.0f} | {span:>37} | "
            f"{statistics.median(p99[p]):>15.2f} | {statistics.median(cpu[p]):>32.0f} | "
            f"{ready[p].raw:>19,.0f}"
        )
    if compare:
        for p in payloads:
            for name, *_ in modes[:-1]:
                pairs = zip(runs[p][default], runs[p][name], strict=True)
                ratios = [d["rate"] / b["rate"] for d, b in pairs]
                print(f"[{p}] default / {name}: {statistics.median(ratios):.2f}x events/s (median)")
    if "short" in rate and "realistic" in rate:
        ratios = [a / b for a, b in zip(rate["realistic"], rate["short"], strict=True)]
        print(
            f"realistic / short, same round: {statistics.median(ratios):.2f}x events/s (median; "
            f"{min(ratios):.2f}-{max(ratios):.2f})"
        )
        cpu_ratio = statistics.median(cpu["realistic"]) / statistics.median(cpu["short"])
        print(f"realistic / short controller CPU per event: {cpu_ratio:.2f}x (less load-dependent)")
    ref, val = generate_event_bytes("realistic")
    print(f"Generate stream, realistic sample: {ref} bytes by reference, {val:,} by value")
    for p in payloads:
        if p == "realistic-by-value":
            continue  # the form before payloads by reference, for comparison only
        ok_rate, ok_p99 = statistics.median(rate[p]) >= 5000, statistics.median(p99[p]) <= 10
        print(
            f"[{p}] targets (medians): >= 5,000 events/s ({'met' if ok_rate else 'NOT met'}), "
            f"p99 <= 10 ms ({'met' if ok_p99 else 'NOT met'})"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--n-max", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--compare", action="store_true", help="also run without auto-pipelining and hiredis"
    )
    ap.add_argument(
        "--payload",
        action="append",
        choices=sorted(PAYLOADS),
        help="payload mode(s) to run (repeatable; default: all three, in one run)",
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="measured runs per mode, interleaved (default 3)"
    )
    a = ap.parse_args()
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    payloads = a.payload or list(PAYLOADS)
    asyncio.run(main(a.questions, a.n_max, a.seed, a.compare, payloads, a.rounds))
