"""``optscale replay POOL...``: re-run stopping policies offline on recorded pools (each POOL
on its own; a glob pattern, or all of them with ``--union``, as one pool)."""

from __future__ import annotations

import argparse
from typing import Any

from optscale.policies import DEFAULT_ALPHA, DEFAULT_S_MIN

NAME = "replay"
HELP = "re-run stopping policies offline on recorded pools; print the paper's Table-1 layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pools",
        nargs="+",
        metavar="POOL",
        help="pool files (.jsonl[.gz]/.json), each replayed on its own; a quoted glob pattern "
        "is one pool of all the files it matches (recorded the same way, each question in one "
        "file)",
    )
    parser.add_argument(
        "--union",
        action="store_true",
        help="read all the POOL files as one pool (e.g. a pool recorded in several files)",
    )
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "ours", "reference", "samples"],
        help="pool format (default: detect)",
    )
    parser.add_argument(
        "--prompts", help="reference format: prompts file with the answers, by position"
    )
    parser.add_argument(
        "--score-field",
        default="scores",
        choices=["scores", "last_scores"],
        help="reference format: which score to use (default: scores = mean step reward)",
    )
    parser.add_argument(
        "--policies",
        default="bon,sc,wsc,esc,asc,optscale0,optscalet,oracle",
        help="comma-separated policy names",
    )
    parser.add_argument(
        "--n-max",
        default=None,
        help="comma-separated N_max values, each at most the pool's per-question sample count "
        "(default: 1,2,4,...,64 up to it; with --params: the N_max it was tuned at)",
    )
    parser.add_argument(
        "--alpha", type=float, default=None, help=f"confidence (default {DEFAULT_ALPHA})"
    )
    parser.add_argument(
        "--s-min", type=float, default=None, help=f"target score (default {DEFAULT_S_MIN})"
    )
    parser.add_argument("--params", help="alpha/s_min from `optscale calibrate` (dev pool)")
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="evaluate even on questions the --params were tuned on (flagged in the output)",
    )
    parser.add_argument(
        "--finish",
        choices=["length", "dispatch"],
        default="length",
        help="when samples finish: 'length' (parallel decoding, short ones first; default) or "
        "'dispatch' (one after another)",
    )
    parser.add_argument(
        "--priors",
        help="OptScale^t priors: {question_id: [mu, sigma]} JSON, or 'predictor[:DIR]' to ask "
        "the trained predictor (default checkpoint) with the pool's question texts",
    )
    parser.add_argument("--orders", type=int, default=100, help="random orders per question")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split",
        choices=["all", "dev", "test"],
        default="all",
        help="replay only the dev or test half (split by question id hash)",
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument(
        "--allocate-budget",
        type=float,
        metavar="TOKENS",
        help="policy 'allocation' (batch budget allocation, one batch per order index): the "
        "batch's token budget per question (x the pool's questions); default: no budget",
    )
    parser.add_argument(
        "--allocate-price",
        type=float,
        default=0.0,
        help="policy 'allocation': P(correct) a token must buy (default 0: budget and N_max only)",
    )
    parser.add_argument(
        "--allocate-give-up",
        type=float,
        default=0.0,
        help="policy 'allocation': abandon a question below this P(some sample correct)",
    )
    parser.add_argument(
        "--allocate-wave", type=int, default=1, help="policy 'allocation': samples per wave"
    )
    parser.add_argument("--plots", metavar="DIR", help="write PNG plots here")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from tqdm import tqdm

    from optscale.errors import InvalidArgumentError
    from optscale.params import check_n_max, check_overlap, read_params
    from optscale.pools import read_pools, split_pool
    from optscale.priors import load_priors
    from optscale.replay import N_GRID, ReplayConfig, replay
    from optscale.report import full_report, write_plots

    alpha, s_min = DEFAULT_ALPHA, DEFAULT_S_MIN
    params = read_params(args.params) if args.params else None
    tuned: dict[str, object] = {}
    if params is not None:
        alpha, s_min = params.alpha, params.s_min
        tuned = {k: v for k, v in params.policy_kwargs().items() if k not in ("alpha", "s_min")}
        print(f"parameters from {args.params}: alpha={alpha} s_min={s_min} N_max={params.n_max}")
    if args.alpha is not None:
        alpha = args.alpha
    if args.s_min is not None:
        s_min = args.s_min
    if args.orders < 1:
        raise InvalidArgumentError("orders", args.orders, "must be >= 1")
    n_values = _n_values(args.n_max)
    if params is not None:
        for n in n_values or (params.n_max,):
            check_n_max(params, n)
        n_values = (params.n_max,)
    policies = tuple(x.strip() for x in args.policies.split(",") if x.strip())
    allocation = "allocation" in policies
    policies = tuple(p for p in policies if p != "allocation") or ("bon",)  # a table to print
    results = []
    for spec in [args.pools] if args.union else [[p] for p in args.pools]:
        pool = read_pools(spec, args.format, prompts=args.prompts, score_field=args.score_field)
        if args.split != "all":
            dev, test = split_pool(pool, seed=args.split_seed)
            pool = dev if args.split == "dev" else test
        print(pool.summary(), file=sys.stderr)
        for n in n_values:
            if n > pool.min_samples:
                raise InvalidArgumentError(
                    "n_max", n, f"{pool.name} has only {pool.min_samples} samples for some question"
                )
        if params is not None:
            ids = [q.question_id for q in pool.questions]
            warning = check_overlap(params, ids, allow_overlap=args.allow_overlap)
            if warning:
                print(warning)
        priors: dict[str, tuple[float, float]] | None = None
        if args.priors and args.priors.startswith("predictor"):
            priors = predictor_priors(pool, args.priors.partition(":")[2] or None)
        elif args.priors:
            priors = load_priors(args.priors, pool)
        cfg = ReplayConfig(
            policies=policies,
            n_max=n_values or N_GRID,
            orders=args.orders,
            seed=args.seed,
            alpha=alpha,
            s_min=s_min,
            priors=priors,
            finish=args.finish,
            policy_kwargs=tuned,
        )
        with tqdm(
            total=len(pool.questions),
            desc=f"replay {pool.name}",
            unit="q",
            file=sys.stderr,
            leave=False,
        ) as bar:
            result = replay(pool, cfg, progress=bar.update)
        print(full_report(result))
        print()
        alloc_rows = _replay_allocation(pool, result, args, tuned) if allocation else []
        if args.plots:
            for f in write_plots(result, pool, args.plots):
                print(f"wrote {f}")
        results.append({**result.as_dict(), "allocation": alloc_rows})
    if args.json:
        from pathlib import Path

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


def _replay_allocation(
    pool: Any, result: Any, args: argparse.Namespace, tuned: dict[str, object]
) -> list[dict[str, Any]]:
    """Batch budget allocation (:mod:`optscale.allocation`) on the orders replay used, at each
    N_max, against the same BoN curve; P(correct | score) from ``--params`` when it has one."""
    from optscale.allocation import AllocationConfig, allocate_orders
    from optscale.bayes import CorrectnessModel
    from optscale.replay import sample_orders

    pc = tuned.get("p_correct")
    p_correct = pc if isinstance(pc, CorrectnessModel) else CorrectnessModel()
    orders = {q.question_id: sample_orders(q, args.orders, args.seed) for q in pool.questions}
    budget = args.allocate_budget
    rows: list[dict[str, Any]] = []
    print(
        f"Batch allocation: budget {'none' if budget is None else f'{budget:g} tokens/question'}"
        f", price {args.allocate_price:g}, give-up {args.allocate_give_up:g}, wave "
        f"{args.allocate_wave}, P(correct|s) = sigmoid({p_correct.a:.2f} + {p_correct.b:.2f} s)"
        " (waves decode in parallel; served tokens include samples cut at the budget)"
    )
    for n in result.n_values:
        cfg = AllocationConfig(
            n_max=n,
            budget=None if budget is None else budget * len(pool.questions),
            price=args.allocate_price,
            give_up=args.allocate_give_up,
            wave=args.allocate_wave,
            p_correct=p_correct,
        )
        eps = [e for es in allocate_orders(orders, cfg).values() for e in es]
        acc = sum(e.correct for e in eps) / len(eps)
        served = sum(e.served_tokens for e in eps) / len(eps)
        row: dict[str, Any] = {"n_max": n, "accuracy": acc, "served_tokens_per_question": served}
        line = f"  N_max {n:3d}: accuracy {100 * acc:5.1f}%  served tokens/q {served:9.1f}"
        if result.curve is not None:
            st = result.curve.standing(served, acc, n)
            row.update(gain=st.gain, token_ratio=st.ratio)
            ratio = "n/a (beyond the curve)" if st.ratio is None else f"{st.ratio:.2f}x"
            line += f"  vs BoN curve: {100 * st.gain:+.1f} pts, tokens {ratio}"
        print(line)
        rows.append(row)
    print()
    return rows


def _n_values(spec: str | None) -> tuple[int, ...]:
    """The explicit N_max values (each >= 1), or () for the default grid."""
    from optscale.errors import InvalidArgumentError

    if spec is None:
        return ()
    try:
        values = tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError as exc:
        raise InvalidArgumentError("n_max", spec, "comma-separated integers") from exc
    if not values or min(values) < 1:
        raise InvalidArgumentError("n_max", spec, "each N_max must be an integer >= 1")
    return values


def predictor_priors(pool: object, model_dir: str | None) -> dict[str, tuple[float, float]]:
    """Priors for every pool question that has its text, from the trained predictor."""
    from services.predictor.model import TrainedPredictor
    from services.predictor.server import DEFAULT_MODEL_DIR

    p = TrainedPredictor(model_dir or DEFAULT_MODEL_DIR)
    qs = [q for q in pool.questions if q.question]  # type: ignore[attr-defined]
    out = p.predict_sync([q.question for q in qs])
    return {q.question_id: (mu, sd) for q, (mu, sd) in zip(qs, out, strict=True)}
