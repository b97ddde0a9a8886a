"""``optscale status``: the batch's progress once — answered / submitted, tokens used, tokens
saved against best-of-N at N_max (estimated), accuracy over the graded results — and the
summary table, from optscale.question-events and optscale.results read to their end."""

from __future__ import annotations

import argparse

NAME = "status"
HELP = "print the batch's progress and summary (submitted vs answered, tokens, accuracy) once"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default="127.0.0.1:19092", help="Kafka bootstrap servers")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to read the topics to their end")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from optscale.commands._batch import read_progress

    progress = asyncio.run(read_progress(args.bootstrap, args.timeout))
    print(progress.line())
    print(progress.summary())
    return 0
