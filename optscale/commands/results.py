"""``optscale results``: read optscale.results as JSON lines (deduplicated by question id) on
stdout, with the batch's progress on stderr — answered / total, tokens used, tokens saved
against best-of-N at N_max (estimated), accuracy over the graded results — and a summary
table at the end.

Without ``--batch`` everything on the topics counts as one batch: the total is the distinct
question ids submitted on optscale.question-events. With ``--batch ID`` only that batch's
results are printed and counted, against the total ``optscale submit`` recorded for the batch
in Redis (:mod:`optscale.commands._batch_record`), and reading stops by itself once every
question of the batch is answered. An unknown batch id is an error before anything is read."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "results"
HELP = "print results from optscale.results as JSON lines (--follow to keep reading)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: "
                        "$OPTSCALE_KAFKA_BOOTSTRAP, else the local stack's 127.0.0.1:19092)")
    parser.add_argument("--batch", help="only this batch's results (the id `optscale submit` "
                        "printed), with progress against its recorded total; stops by itself "
                        "once every question of the batch is answered")
    parser.add_argument("--redis-url", help="the controllers' Redis, where batches are recorded "
                        "(with --batch; default: $OPTSCALE_REDIS_URL, else the local stack's)")
    parser.add_argument("--follow", action="store_true", help="keep reading")
    parser.add_argument("--until-done", action="store_true",
                        help="follow, and stop once every submitted question has a result")
    parser.add_argument("--idle", type=float, default=3.0, help="stop after this many idle s")
    parser.add_argument("--group", help="consumer group (default: a fresh one, from the start)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress line and no summary on stderr")


async def _read_to(c: Any, ends: dict[Any, int]) -> bool:
    """Has consumer ``c`` read its partitions of optscale.results up to ``ends``?"""
    assigned = c.assignment()
    if not assigned:
        return False
    for tp in assigned:
        if tp in ends and await c.position(tp) < ends[tp]:
            return False
    return True


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import sys
    import time
    import uuid

    from google.protobuf.json_format import MessageToDict

    from optscale.commands._batch import BatchReader
    from optscale.commands._batch_record import kafka_bootstrap, load_record, redis_settings
    from optscale.v1 import events_pb2
    from services.common import kafka

    bootstrap = kafka_bootstrap(args.bootstrap)
    record = None
    if args.batch is not None:  # before any consumer: an unknown batch consumes nothing
        record = asyncio.run(load_record(redis_settings(args.redis_url)[0], args.batch))
    tty = sys.stderr.isatty()
    show_progress = not args.no_progress

    def show(line: str) -> None:
        print(("\r\033[K" if tty else "") + line, end="" if tty else "\n", file=sys.stderr,
              flush=True)

    async def read() -> None:
        group = args.group or f"optscale-results-{uuid.uuid4().hex[:8]}"
        c = await kafka.consumer(bootstrap, kafka.RESULTS, group)
        reader = None
        if show_progress or record is not None or args.until_done:  # the reader sees 'done'
            progress = None if record is None else record.progress()
            reader = await BatchReader(bootstrap, progress).start()
        seen: set[str] = set()
        last, shown = time.monotonic(), ""
        follow = args.follow or args.until_done
        stop_when_done = args.until_done or record is not None
        ends: dict[Any, int] | None = None
        try:
            while True:
                if stop_when_done and reader and reader.caught_up and reader.progress.done:
                    # every result the progress counted is printed too before stopping
                    ends = ends if ends is not None else await reader.results_end()
                    if await _read_to(c, ends):
                        break
                if not follow and time.monotonic() - last >= args.idle:
                    break
                if reader is not None:
                    await reader.poll(timeout_ms=0)
                    line = reader.progress.line()
                    if show_progress and line != shown:
                        show(shown := line)
                recs = await c.getmany(timeout_ms=200)
                for msgs in recs.values():
                    for m in msgs:
                        r = events_pb2.Result.FromString(m.value)
                        last = time.monotonic()
                        if r.question_id in seen:
                            continue
                        if record is not None and r.batch_id != record.batch_id:
                            continue
                        seen.add(r.question_id)
                        if tty and show_progress:
                            print("\r\033[K", end="", file=sys.stderr)
                        print(json.dumps(MessageToDict(r)), flush=True)
                        shown = ""  # the line scrolled away on a terminal: show it again
                if recs:
                    await kafka.commit_batch(c, recs)
        finally:
            await c.stop()
            if reader is not None:
                await reader.stop()
                if show_progress:
                    if tty:
                        print(file=sys.stderr)
                    print(reader.progress.summary(), file=sys.stderr, flush=True)

    try:
        asyncio.run(read())
    except KeyboardInterrupt:  # --follow ends with Ctrl-C: the summary was printed
        return 0
    return 0
