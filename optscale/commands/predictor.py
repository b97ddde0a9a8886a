"""``optscale predictor train|eval``: the OptScale^t prior predictor (see services/predictor)."""

from __future__ import annotations

import argparse

NAME = "predictor"
HELP = "train / evaluate the OptScale^t prior predictor"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["train", "eval"])
    parser.add_argument("--targets", help="targets JSONL (default: shared optscale_prior_targets)")
    parser.add_argument(
        "--pool",
        action="append",
        default=[],
        help="train on per-question score mean/std of recorded pools instead",
    )
    parser.add_argument("--model-dir", default="runs/predictor", help="where weights live")
    parser.add_argument("--backbone", default="minilm", help="alias, directory or HF model id")
    parser.add_argument("--label", default="moments", choices=["moments", "raw"])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--limit", type=int, help="use only this many training questions")
    parser.add_argument("--seed", type=int, default=0)


def _targets(args: argparse.Namespace) -> str:
    from optscale.datasets import datasets_dir

    return args.targets or str(datasets_dir() / "optscale_prior_targets.jsonl")


def run(args: argparse.Namespace) -> int:
    import statistics

    from services.predictor import model as m

    if args.action == "train":
        if args.pool:
            from optscale.pools import read_pool

            ex = [e for p in args.pool for e in m.examples_from_pool(read_pool(p))]
        else:
            ex = m.read_targets(_targets(args), "train")  # MATH-500 ('val') is never used here
        ex = ex[: args.limit] if args.limit else ex
        cfg = m.TrainConfig(
            backbone=args.backbone, label=args.label, epochs=args.epochs, seed=args.seed
        )
        _, meta = m.train(ex, cfg, args.model_dir)
        print(
            f"trained {meta.version} on {meta.train_size} questions in {meta.seconds:.0f} s; "
            f"dev: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(meta.dev.items()))
        )
        print(f"saved to {args.model_dir}")
        return 0
    p = m.TrainedPredictor(args.model_dir)
    train_ex = m.read_targets(_targets(args), "train")
    held = m.read_targets(_targets(args), "val")  # the final number, touched only here
    true = m.labels(held, p.meta.label)
    ytr = m.labels(train_ex, p.meta.label)
    const = (statistics.mean(y[0] for y in ytr), statistics.mean(y[1] for y in ytr))
    rows = [
        ("predictor " + p.meta.version, m.metrics(p.predict_sync([e.text for e in held]), true)),
        (
            f"constant train mean ({const[0]:.3f}, {const[1]:.3f})",
            m.metrics([const] * len(held), true),
        ),
    ]
    print(f"held-out split: {len(held)} questions (MATH-500), labels: {p.meta.label}")
    print(f"{'model':44s} {'mu MAE':>8s} {'mu rho':>8s} {'sd MAE':>8s} {'sd rho':>8s}")
    for name, r in rows:
        print(
            f"{name:44s} {r['mu_mae']:8.4f} {r['mu_spearman']:8.3f} "
            f"{r['sigma_mae']:8.4f} {r['sigma_spearman']:8.3f}"
        )
    return 0
