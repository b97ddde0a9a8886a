"""``optscale results``: read optscale.results as JSON lines (deduplicated by question id) on
stdout, with the batch's progress on stderr — answered / submitted, tokens used, tokens saved
against best-of-N at N_max (estimated), accuracy over the graded results — and a summary
table at the end. Submitted = distinct question ids submitted on optscale.question-events
(there is no batch id: everything on the topics is one batch)."""

from __future__ import annotations

import argparse

NAME = "results"
HELP = "print results from optscale.results as JSON lines (--follow to keep reading)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--follow", action="store_true", help="keep reading")
    parser.add_argument("--until-done", action="store_true",
                        help="follow, and stop once every submitted question has a result")
    parser.add_argument("--idle", type=float, default=3.0, help="stop after this many idle s")
    parser.add_argument("--group", help="consumer group (default: a fresh one, from the start)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress line and no summary on stderr")


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import sys
    import time
    import uuid

    from google.protobuf.json_format import MessageToDict

    from optscale.commands._batch import BatchReader
    from optscale.v1 import events_pb2
    from services.common import kafka

    tty = sys.stderr.isatty()

    def show(line: str) -> None:
        print(("\r\033[K" if tty else "") + line, end="" if tty else "\n", file=sys.stderr,
              flush=True)

    async def read() -> None:
        group = args.group or f"optscale-results-{uuid.uuid4().hex[:8]}"
        c = await kafka.consumer(args.bootstrap, kafka.RESULTS, group)
        reader = None if args.no_progress else await BatchReader(args.bootstrap).start()
        seen: set[str] = set()
        last, shown = time.monotonic(), ""
        follow = args.follow or args.until_done
        try:
            while True:
                if follow:
                    if args.until_done and reader and reader.caught_up and reader.progress.done:
                        break
                elif time.monotonic() - last >= args.idle:
                    break
                if reader is not None:
                    await reader.poll(timeout_ms=0)
                    line = reader.progress.line()
                    if line != shown:
                        show(shown := line)
                recs = await c.getmany(timeout_ms=200)
                for msgs in recs.values():
                    for m in msgs:
                        r = events_pb2.Result.FromString(m.value)
                        last = time.monotonic()
                        if r.question_id in seen:
                            continue
                        seen.add(r.question_id)
                        if tty and reader is not None:
                            print("\r\033[K", end="", file=sys.stderr)
                        print(json.dumps(MessageToDict(r)), flush=True)
                        shown = ""  # the line scrolled away on a terminal: show it again
                if recs:
                    await kafka.commit_batch(c, recs)
        finally:
            await c.stop()
            if reader is not None:
                await reader.stop()
                if tty:
                    print(file=sys.stderr)
                print(reader.progress.summary(), file=sys.stderr, flush=True)

    try:
        asyncio.run(read())
    except KeyboardInterrupt:  # --follow ends with Ctrl-C: the summary was printed
        return 0
    return 0
