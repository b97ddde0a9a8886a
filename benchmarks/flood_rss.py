"""Memory under a flood: RSS of one process running the whole pipeline (controller, verifier
worker, sim generator over gRPC) while a batch of 10,000 questions is submitted at once.

    .venv/bin/python benchmarks/flood_rss.py [--questions 10000] [--max-active 256]

The controller admits at most ``--max-active`` questions at a time; the rest wait as ids (their
state is in Redis, their events in Kafka). Prints RSS before the flood, right after it was
submitted, its peak while draining and at the end, and RSS growth per 1,000 questions between
the first and the last quarter of the run (flat = about 0). Real Tansu broker and redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.scoring.confidence import Backend as Confidence
from services.common.infra import start_broker, start_redis
from services.local import LocalPipeline


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def main(questions: int, max_active: int) -> None:
    broker, rs = start_broker(), start_redis()
    samples: list[tuple[float, int, float]] = []  # (time, results so far, RSS)
    try:
        async with LocalPipeline(
            f"127.0.0.1:{broker.port}",
            f"redis://127.0.0.1:{rs.port}/0",
            Sim(seed=0),
            Confidence(),
            worker_options={"max_active": max_active},
        ) as p:
            worker = p.controllers[0].worker
            before = rss_mib()
            ids = [f"flood-{i}" for i in range(questions)]
            t0 = time.monotonic()
            await p.submit(ids, "optscale0", 8, 0.9)
            submitted = rss_mib()
            peak_owned = 0

            async def watch() -> None:
                nonlocal peak_owned
                while True:
                    peak_owned = max(peak_owned, len(worker.owned))
                    samples.append((time.monotonic() - t0, worker.stats["events"], rss_mib()))
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(watch())
            results = await p.results(set(ids), "bench-flood", wait_s=3600)
            watcher.cancel()
            end = rss_mib()
        quarter = max(1, len(samples) // 4)
        first = sum(r for _, _, r in samples[:quarter]) / quarter
        last = sum(r for _, _, r in samples[-quarter:]) / quarter
        done = len({r.question_id for r in results})
        print(
            f"questions {questions} (results {done}), max_active {max_active}, "
            f"peak questions sampling at once {peak_owned}, {samples[-1][0]:.0f} s"
        )
        print(
            f"RSS MiB: before {before:.0f}, after submitting {submitted:.0f}, "
            f"peak {max(r for _, _, r in samples):.0f}, end {end:.0f}"
        )
        print(
            f"RSS first quarter {first:.0f} MiB -> last quarter {last:.0f} MiB: "
            f"{(last - first) / questions * 1000:+.2f} MiB per 1,000 questions"
        )
    finally:
        rs.stop()
        broker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=10_000)
    ap.add_argument("--max-active", type=int, default=256)
    a = ap.parse_args()
    asyncio.run(main(a.questions, a.max_active))
