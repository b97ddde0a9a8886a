"""``optscale eval``: accuracy and completion tokens per policy on a dataset.

Implemented as record-then-replay: N_max samples per question are generated and scored once
(a pool, resumable), then every policy is replayed on that pool over seeded sample orders.
This is equivalent to running each policy live with the same samples, and costs one
generation pass instead of one per policy.
"""

from __future__ import annotations

import argparse

from optscale.policies import DEFAULT_ALPHA, DEFAULT_S_MIN

NAME = "eval"
HELP = "accuracy and completion tokens per policy on a dataset (record once, then replay)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from optscale.commands.solve import add_common

    add_common(parser, policy=False)
    parser.add_argument("--policies", default="bon,sc,wsc,esc,asc,optscale0,oracle")
    parser.add_argument("--n-max", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--s-min", type=float, default=None)
    parser.add_argument("--params", help="alpha/s_min from `optscale calibrate`")
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="replay --params even on questions they were tuned on (printed)",
    )
    parser.add_argument(
        "--pool",
        default=None,
        help="pool file to record into / reuse (default runs/eval-<dataset>.jsonl)",
    )
    parser.add_argument("--orders", type=int, default=50)


def run(args: argparse.Namespace) -> int:
    from optscale.commands import record, solve
    from optscale.params import check_n_max, check_overlap, read_params
    from optscale.pools import Pool, read_ours
    from optscale.replay import N_GRID, ReplayConfig, replay
    from optscale.report import full_report

    name = args.dataset or "questions"
    pool_path = args.pool or f"runs/eval-{name}.jsonl"
    args.out = pool_path
    rc = solve.run(record.to_solve_args(args, results=pool_path + ".results.jsonl"))
    if rc:
        return rc
    wanted = {q.id for q in solve.load_questions(args)}
    full = read_ours(pool_path)
    pool = Pool(full.name, [q for q in full.questions if q.question_id in wanted])
    alpha, s_min = DEFAULT_ALPHA, DEFAULT_S_MIN
    if args.params:
        p = read_params(args.params)
        check_n_max(p, args.n_max)
        warning = check_overlap(p, wanted, allow_overlap=args.allow_overlap)
        if warning:
            print(warning)
        alpha, s_min = p.alpha, p.s_min
    alpha = args.alpha if args.alpha is not None else alpha
    s_min = args.s_min if args.s_min is not None else s_min
    cfg = ReplayConfig(
        policies=tuple(p.strip() for p in args.policies.split(",") if p.strip()),
        n_max=tuple(n for n in N_GRID if n <= args.n_max) or (args.n_max,),
        orders=args.orders,
        seed=args.seed,
        alpha=alpha,
        s_min=s_min,
    )
    print()
    print(full_report(replay(pool, cfg)))
    return 0
