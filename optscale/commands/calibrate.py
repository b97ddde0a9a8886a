"""``optscale calibrate POOL... --out params.json``: choose alpha / s_min on a pool's dev half
(several files or glob patterns: one pool, see :func:`optscale.pools.read_pools`)."""

from __future__ import annotations

import argparse

NAME = "calibrate"
HELP = (
    "choose alpha and s_min on a pool's dev half by the gain over the best fixed N; writes "
    "nothing when stopping does not beat the BoN curve"
)
NOT_USEFUL = 3  # exit code: stopping does not pay with this scorer, no params written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pools",
        nargs="+",
        metavar="POOL",
        help="a recorded pool (its dev half is used): one file, or several files or glob "
        "patterns read as one pool (recorded the same way, each question in one file)",
    )
    parser.add_argument("--out", required=True, help="params JSON to write")
    parser.add_argument(
        "--format", default="auto", choices=["auto", "ours", "reference", "samples"]
    )
    parser.add_argument("--prompts", help="reference format: prompts file with the answers")
    parser.add_argument(
        "--split",
        choices=["dev", "all"],
        default="dev",
        help="'dev' (default): the dev half (split by id hash); 'all': every question, which "
        "then can never be evaluated with these params",
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument(
        "--policy",
        default="optscale0",
        choices=["optscale0", "bayes", "hybrid"],
        help="optscale0: alpha x s_min grid; bayes, hybrid: price grid (P(correct | score) fitted "
        "on the dev samples)",
    )
    parser.add_argument(
        "--n-max",
        type=int,
        default=None,
        help="N_max to calibrate at (default: the pool's per-question count)",
    )
    parser.add_argument("--alphas", default="0.5,0.7,0.8,0.9,0.95,0.99")
    parser.add_argument("--s-mins", default="0.5,0.6,0.7,0.8,0.85,0.9,0.95,0.98")
    parser.add_argument("--prices", default="1e-6,3e-6,1e-5,3e-5,1e-4,3e-4")
    parser.add_argument(
        "--min-gain",
        type=float,
        default=0.0,
        help="accuracy gain over the BoN curve (fraction) required to write params (default 0)",
    )
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--finish", choices=["length", "dispatch"], default="length")


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
    from optscale.pools import read_pools, split_pool

    pool = read_pools(args.pools, args.format, prompts=args.prompts)
    if args.split == "dev":
        pool, _ = split_pool(pool, seed=args.split_seed)
    print(pool.summary(), file=sys.stderr)
    alphas, s_mins = _floats("alphas", args.alphas), _floats("s_mins", args.s_mins)
    prices = _floats("prices", args.prices)
    total = {"optscale0": len(alphas) * len(s_mins), "hybrid": 2 * len(prices)}
    with tqdm(
        total=total.get(args.policy, len(prices)), desc="calibrate", file=sys.stderr, leave=False
    ) as bar:
        cal = calibrate(
            pool,
            policy=args.policy,
            n_max=args.n_max,
            alphas=alphas,
            s_mins=s_mins,
            prices=prices,
            min_gain=args.min_gain,
            orders=args.orders,
            seed=args.seed,
            split=f"{args.split} (seed {args.split_seed})",
            finish=args.finish,
            progress=bar.update,
        )
    print(f"{args.split} questions of {cal.pool}: {len(cal.question_ids)}, N_max={cal.n_max}")
    print("BoN(k): " + ", ".join(f"k={k} {100 * a:.1f}% {t:.0f} tok" for k, t, a in cal.curve))
    ratio = ">curve" if cal.ratio is None else f"{cal.ratio:.2f}x"
    print(
        f"best {cal.policy}: {cal.setting} -> accuracy "
        f"{100 * cal.accuracy:.1f}%, {cal.tokens:.0f} served tokens/question; "
        f"{100 * cal.gain:+.1f} points vs the BoN curve at equal tokens, {ratio} its tokens at "
        "equal accuracy"
    )
    print(cal.verdict)
    if not cal.useful:
        print(f"no params written to {args.out}")
        return NOT_USEFUL
    write_params(cal, args.out)
    print(f"wrote {args.out}")
    return 0
