"""``optscale record``: generate and score N samples per question into a pool (resumable)."""

from __future__ import annotations

import argparse

NAME = "record"
HELP = "record a pool: N_max scored samples per question (BoN, no early stop), resumable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from optscale.commands.solve import add_common

    add_common(parser, policy=False)
    parser.add_argument("--n-max", type=int, default=16, help="samples per question")
    parser.add_argument(
        "--out",
        required=True,
        metavar="POOL.jsonl[.gz]",
        help="pool file; questions already in it are skipped",
    )


def to_solve_args(args: argparse.Namespace, *, results: str) -> argparse.Namespace:
    ns = argparse.Namespace(**vars(args))
    ns.policy = "bon"
    ns.alpha = ns.s_min = ns.params = ns.priors = None
    ns.record = args.out
    ns.out = results
    ns.resume = True
    return ns


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from optscale.commands import solve

    results = Path("runs") / (Path(args.out).name + ".results.jsonl")
    return solve.run(to_solve_args(args, results=str(results)))
