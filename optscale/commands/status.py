"""``optscale status``: the batch's progress once — answered / total, tokens used, tokens
saved against best-of-N at N_max (estimated), accuracy over the graded results — and the
summary table. Without ``--batch``: from optscale.question-events and optscale.results read to
their end, everything on the topics as one batch. With ``--batch ID``: that batch's results on
optscale.results against the total ``optscale submit`` recorded for it in Redis (an unknown
batch id is an error)."""

from __future__ import annotations

import argparse

NAME = "status"
HELP = "print the batch's progress and summary (submitted vs answered, tokens, accuracy) once"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: "
                        "$OPTSCALE_KAFKA_BOOTSTRAP, else the local stack's 127.0.0.1:19092)")
    parser.add_argument("--batch", help="this batch only (the id `optscale submit` printed)")
    parser.add_argument("--redis-url", help="the controllers' Redis, where batches are recorded "
                        "(with --batch; default: $OPTSCALE_REDIS_URL, else the local stack's)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to read the topics to their end")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from optscale.commands._batch import read_progress
    from optscale.commands._batch_record import kafka_bootstrap, load_record, redis_settings

    bootstrap = kafka_bootstrap(args.bootstrap)
    start = None
    if args.batch is not None:
        start = asyncio.run(load_record(redis_settings(args.redis_url)[0], args.batch)).progress()
    progress = asyncio.run(read_progress(bootstrap, args.timeout, start))
    print(progress.line())
    print(progress.summary())
    return 0
