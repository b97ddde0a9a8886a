"""``optscale calibrate DEV_POOL --out params.json``: choose alpha / s_min on a dev pool."""

from __future__ import annotations

import argparse

NAME = "calibrate"
HELP = "choose alpha and s_min on a dev pool (fewest tokens within tolerance of BoN accuracy)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pool", metavar="DEV_POOL", help="the dev pool (never the test pool)")
    parser.add_argument("--out", required=True, help="params JSON to write")
    parser.add_argument(
        "--format", default="auto", choices=["auto", "ours", "reference", "samples"]
    )
    parser.add_argument("--prompts", help="reference format: prompts file with the answers")
    parser.add_argument(
        "--split",
        choices=["all", "dev"],
        default="all",
        help="'dev': use only the dev half of the pool (split by id hash)",
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--policy", default="optscale0")
    parser.add_argument(
        "--n-max",
        type=int,
        default=None,
        help="N_max to calibrate at (default: the pool's per-question count)",
    )
    parser.add_argument("--alphas", default="0.5,0.7,0.8,0.9,0.95,0.99")
    parser.add_argument("--s-mins", default="0.5,0.6,0.7,0.8,0.85,0.9,0.95,0.98")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="allowed accuracy loss vs BoN (fraction, default 0.01)",
    )
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)


def _floats(name: str, s: str) -> list[float]:
    from optscale.errors import InvalidArgumentError

    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError as exc:
        raise InvalidArgumentError(name, s, "comma-separated numbers") from exc


def run(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from optscale.calibrate import calibrate, write_params
    from optscale.pools import read_pool, split_pool

    pool = read_pool(args.pool, args.format, prompts=args.prompts)
    if args.split == "dev":
        pool, _ = split_pool(pool, seed=args.split_seed)
    print(pool.summary(), file=sys.stderr)
    alphas, s_mins = _floats("alphas", args.alphas), _floats("s_mins", args.s_mins)
    with tqdm(
        total=len(alphas) * len(s_mins), desc="calibrate", file=sys.stderr, leave=False
    ) as bar:
        cal = calibrate(
            pool,
            policy=args.policy,
            n_max=args.n_max,
            alphas=alphas,
            s_mins=s_mins,
            tolerance=args.tolerance,
            orders=args.orders,
            seed=args.seed,
            progress=bar.update,
        )
    write_params(cal, args.out)
    print(f"dev pool {cal.dev_pool}: {cal.dev_questions} questions, N_max={cal.n_max}")
    print(f"BoN: accuracy {100 * cal.bon_accuracy:.1f}%, {cal.bon_tokens:.0f} tokens/question")
    print(
        f"chosen {cal.policy}: alpha={cal.alpha} s_min={cal.s_min} -> accuracy "
        f"{100 * cal.accuracy:.1f}%, {cal.tokens:.0f} tokens/question "
        f"({cal.tokens / cal.bon_tokens:.2f}x BoN)"
        + ("" if cal.qualified else f"  [no grid point within {cal.tolerance:.3f} of BoN]")
    )
    print(f"wrote {args.out}")
    return 0
