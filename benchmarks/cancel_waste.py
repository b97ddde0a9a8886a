"""Tokens generated after the stop decision / all tokens generated, across a batch.

    .venv/bin/python benchmarks/cancel_waste.py [--questions 60] [--n-max 16] [--token-delay 0.001]

Runs the whole pipeline (generator gRPC server with the sim backend publishing to Kafka,
verifier worker, controller) against a real Tansu broker and redis-server on loopback. The sim
generator decodes in steps of 8 tokens (``token_delay`` s per token) and logs when each step
finishes; the controller logs when it decides to stop each question. Waste = tokens of steps
that finished after their question's stop decision. Target: <= 1%.
"""

from __future__ import annotations

import argparse
import asyncio

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.scoring.confidence import Backend as Confidence
from services.common.infra import start_broker, start_redis
from services.local import LocalPipeline


async def main(questions: int, n_max: int, token_delay: float, s_min: float) -> None:
    broker, rs = start_broker(), start_redis()
    try:
        sim = Sim(seed=0, token_delay=token_delay)
        sim.token_log = []
        async with LocalPipeline(
            f"127.0.0.1:{broker.port}", f"redis://127.0.0.1:{rs.port}/0", sim, Confidence()
        ) as p:
            ids = [f"w{i}" for i in range(questions)]
            await p.submit(ids, "optscale0", n_max, s_min)
            results = await p.results(set(ids), "bench-waste", wait_s=600)
            stopped = p.controllers[0].worker.stopped_at
            await asyncio.sleep(0.5)  # let aborted work settle; anything logged now is waste
        total = sum(n for _, _, n in sim.token_log)
        after = sum(n for q, t, n in sim.token_log if q in stopped and t > stopped[q])
        used = sum(r.completion_tokens for r in {r.question_id: r for r in results}.values())
        print(
            f"questions {questions}, N_max {n_max}, s_min {s_min}, "
            f"token delay {token_delay * 1000:.1f} ms"
        )
        print(f"tokens generated {total}; in the results {used}; after the stop decision {after}")
        print(f"waste after stop / total: {after / max(1, total):.2%} (target <= 1%)")
    finally:
        broker.stop()
        rs.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--n-max", type=int, default=16)
    ap.add_argument("--token-delay", type=float, default=0.001)
    ap.add_argument("--s-min", type=float, default=0.9)
    a = ap.parse_args()
    asyncio.run(main(a.questions, a.n_max, a.token_delay, a.s_min))
