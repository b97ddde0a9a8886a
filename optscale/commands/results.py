"""``optscale results``: read optscale.results as JSON lines (deduplicated by question id)."""

from __future__ import annotations

import argparse

NAME = "results"
HELP = "print results from optscale.results as JSON lines (--follow to keep reading)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--follow", action="store_true", help="keep reading")
    parser.add_argument("--idle", type=float, default=3.0, help="stop after this many idle s")
    parser.add_argument("--group", help="consumer group (default: a fresh one, from the start)")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import time
    import uuid

    from google.protobuf.json_format import MessageToDict

    from optscale.v1 import events_pb2
    from services.common import kafka

    async def read() -> None:
        group = args.group or f"optscale-results-{uuid.uuid4().hex[:8]}"
        c = await kafka.consumer(args.bootstrap, kafka.RESULTS, group)
        seen: set[str] = set()
        last = time.monotonic()
        try:
            while args.follow or time.monotonic() - last < args.idle:
                recs = await c.getmany(timeout_ms=200)
                for msgs in recs.values():
                    for m in msgs:
                        r = events_pb2.Result.FromString(m.value)
                        last = time.monotonic()
                        if r.question_id in seen:
                            continue
                        seen.add(r.question_id)
                        print(json.dumps(MessageToDict(r)), flush=True)
                if recs:
                    await kafka.commit_batch(c, recs)
        finally:
            await c.stop()

    asyncio.run(read())
    return 0
