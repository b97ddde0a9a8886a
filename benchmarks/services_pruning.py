"""Prefix pruning through the services: the same questions with and without ``prune_z``, one
run, real broker + redis-server, sim generator with step ends, confidence verifier.

    .venv/bin/python benchmarks/services_pruning.py [--questions 40] [--n-max 16] [--z 1.0]
        [--steps 4] [--policy optscale0] [--options '{"initial": 4, "pace": 0.5}']

Starts Tansu and redis-server on loopback and the in-process pipeline
(:class:`services.local.LocalPipeline`: the generator and verifier services, one controller).
The two arms run one after the other, each on a fresh broker and redis-server, with the same
question ids and seeds, so the sim draws the same samples: the comparison is paired. Prints,
per arm, the accuracy (reference answer "42"), completion tokens per question (pruned samples
count what they decoded), samples per question and pruned samples, and the token ratio
pruned / plain.

The sim is synthetic: a sample's step confidences are drawn around its quality q, which also
sets its correctness (q ** 4), so a low prefix is informative here by construction. This shows
the mechanism and its token accounting end to end, not a gain on a real model (see
docs/policies.md: on the recorded GSM8K pool token confidence of a prefix is not informative).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.scoring.confidence import Backend as Confidence
from optscale.v1 import events_pb2
from services.common import kafka
from services.common.infra import start_broker, start_redis
from services.local import LocalPipeline


async def _submit(
    p: LocalPipeline, q: str, a: argparse.Namespace, options: dict[str, object]
) -> None:
    ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
    sub = ev.submitted
    sub.text, sub.reference_answer = f"question {q}", "42"
    sub.policy.policy, sub.policy.n_max = a.policy, a.n_max
    sub.policy.options_json = json.dumps(options)
    sub.sampling.max_tokens = 512
    await p.producer.send(kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode())


async def _arm(a: argparse.Namespace, options: dict[str, object]) -> tuple[float, ...]:
    """One arm on a fresh broker and redis-server: (accuracy, tokens/q, samples/q, pruned)."""
    broker, redis_proc = start_broker(), start_redis()
    try:
        url = f"redis://127.0.0.1:{redis_proc.port}/0"
        sim = Sim(seed=0, token_delay=0.00005, steps=a.steps)
        async with LocalPipeline(f"127.0.0.1:{broker.port}", url, sim, Confidence()) as p:
            await p.start_controller()
            ids = [f"b{i}" for i in range(a.questions)]
            for q in ids:
                await _submit(p, q, a, options)
            await p.producer.flush()
            rs = await p.results(set(ids), "bench-prune", 600)
            rs = list({r.question_id: r for r in rs}.values())
            assert p.store is not None
            pruned = 0
            for q in ids:
                sq = await p.store.get(q)
                pruned += sum(o.answer is None for o in sq.observations) if sq else 0
    finally:
        broker.stop()
        redis_proc.stop()
    return (
        sum(bool(r.correct) for r in rs) / len(rs),
        sum(r.completion_tokens for r in rs) / len(rs),
        sum(r.samples_used for r in rs) / len(rs),
        pruned,
    )


async def _run(a: argparse.Namespace) -> None:
    base = json.loads(a.options)
    t0 = time.monotonic()
    rows = {"plain": await _arm(a, base), "pruned": await _arm(a, {**base, "prune_z": a.z})}
    print(
        f"{a.questions} questions, {a.policy} N_max {a.n_max} {a.options}, "
        f"sim steps {a.steps}, prune_z {a.z}; {time.monotonic() - t0:.0f} s"
    )
    print("arm     accuracy  tokens/q  samples/q  pruned samples (no answer)")
    for arm, (acc, tok, n, pr) in rows.items():
        print(f"{arm:7s} {acc:8.1%} {tok:9.0f} {n:10.2f}  {pr:.0f}")
    print(f"token ratio pruned / plain: {rows['pruned'][1] / rows['plain'][1]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--n-max", type=int, default=16)
    ap.add_argument("--z", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--policy", default="optscale0")
    ap.add_argument("--options", default='{"initial": 4, "pace": 0.5}')
    asyncio.run(_run(ap.parse_args()))


if __name__ == "__main__":
    main()
