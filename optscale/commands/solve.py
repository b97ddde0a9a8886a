"""``optscale solve``: the embedded solver (one process, CPU, no servers)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from optscale.policies import DEFAULT_ALPHA, DEFAULT_S_MIN

NAME = "solve"
HELP = "solve questions with early-stopping best-of-N in one process (CPU, no servers)"

# The stopping defaults are the paper's PRM settings (optscale.policies.DEFAULT_*). The
# confidence scorer's scores are not PRM-like (see README): run `optscale calibrate` on a
# recorded pool and pass --params to use tuned values.


def add_common(parser: argparse.ArgumentParser, *, policy: bool = True) -> None:
    src = parser.add_argument_group("questions")
    src.add_argument(
        "questions",
        nargs="?",
        metavar="QUESTIONS.jsonl",
        help="questions file (JSONL: id, question/text, answer optional)",
    )
    src.add_argument(
        "--questions", dest="questions_opt", metavar="FILE", help="same as the positional argument"
    )
    src.add_argument("--dataset", help="a benchmark from ../shared/datasets (e.g. gsm8k)")
    src.add_argument("--limit", type=int, default=None)
    src.add_argument("--offset", type=int, default=0)
    gen = parser.add_argument_group("generation and scoring")
    gen.add_argument("--generator", default="llamacpp", choices=["llamacpp", "hf", "sim"])
    gen.add_argument(
        "--model",
        default=None,
        help="model spec (default: the packaged default model of the backend)",
    )
    gen.add_argument("--verifier", default="confidence", choices=["confidence", "sim", "prm"])
    gen.add_argument(
        "--aggregation",
        default="mean",
        choices=["mean", "min", "last", "product"],
        help="step scores -> sample score (confidence, prm; default mean)",
    )
    gen.add_argument("--max-tokens", type=int, default=512)
    gen.add_argument("--temperature", type=float, default=0.7)
    gen.add_argument("--top-p", type=float, default=0.95)
    gen.add_argument("--n-threads", type=int, default=None, help="llama.cpp threads")
    gen.add_argument("--seed", type=int, default=0)
    if policy:
        pol = parser.add_argument_group("stopping policy")
        pol.add_argument(
            "--policy",
            default="optscale0",
            choices=[
                "optscale0",
                "optscalet",
                "bon",
                "sc",
                "wsc",
                "esc",
                "asc",
                "bayes",
                "hybrid",
                "dsc_prior",
            ],
        )
        pol.add_argument("--n-max", type=int, default=8)
        pol.add_argument("--alpha", type=float, default=None, help=f"default {DEFAULT_ALPHA}")
        pol.add_argument("--s-min", type=float, default=None, help=f"default {DEFAULT_S_MIN}")
        pol.add_argument("--params", help="alpha/s_min from `optscale calibrate`")
        pol.add_argument(
            "--allow-overlap",
            action="store_true",
            help="run --params even on questions they were tuned on (printed)",
        )
        pol.add_argument(
            "--priors",
            help="OptScale^t priors: JSON {question_id: [mu, sigma]}, or 'predictor[:DIR]'",
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument(
        "--out", default="runs/solve.jsonl", help="results JSONL (one per question)"
    )
    parser.add_argument(
        "--record", metavar="POOL.jsonl", help="also record every scored sample in pool format"
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip questions already in --record (or --out)"
    )
    pr = parser.add_argument_group("prefix pruning (off by default)")
    pr.add_argument(
        "--prune-z",
        type=float,
        default=None,
        metavar="Z",
        help="abort a sample in the generator at a step end (blank line) when its prefix score "
        "(token-confidence step scores, --aggregation) < m - Z*max(sd, 0.02) of the question's "
        "finished samples' scores (at least 2; optscale/pruning.py); the pruned sample counts "
        "with its prefix score and no answer. Needs --verifier confidence and --generator "
        "llamacpp or sim. OFF by default: on the recorded GSM8K pool's dev half no Z beat no "
        "pruning with the confidence scorer (benchmarks/prefix_pruning.py, docs/policies.md)",
    )
    pr.add_argument(
        "--sim-steps",
        type=int,
        default=None,
        metavar="N",
        help="--generator sim: cut each sample into N steps (default 1), so it can be pruned",
    )
    pr.add_argument(
        "--prune-min-steps",
        type=int,
        default=1,
        metavar="N",
        help="with --prune-z: judge a sample only once N steps are in (default 1)",
    )
    mr = parser.add_argument_group("generation strategy")
    mr.add_argument(
        "--strategy",
        default="samples",
        choices=["samples", "mr-thinking"],
        help="samples: independent samples under --policy (default); mr-thinking: Multi-round "
        "Thinking, each round shown the previous round's answer, --n-max rounds "
        "(optscale/mr_thinking.py)",
    )
    mr.add_argument(
        "--stop-when-unchanged",
        action="store_true",
        help="mr-thinking: stop a question when a round's answer equals the previous one's",
    )
    mr.add_argument(
        "--carry",
        default="response",
        choices=["response", "answer"],
        help="mr-thinking: put the previous round's whole response (default, the paper's) or "
        "only its final answer into the next prompt",
    )


def load_questions(args: argparse.Namespace) -> list[Any]:
    from optscale.errors import InvalidArgumentError

    for flag, value in (("--limit", args.limit), ("--offset", args.offset)):
        if value is not None and value < 0:
            raise InvalidArgumentError(flag, value, "must be >= 0")
    path = args.questions or getattr(args, "questions_opt", None)
    if path and args.dataset:
        raise InvalidArgumentError("questions", path, "give a file or --dataset, not both")
    if path:
        from optscale.datasets import load_questions_jsonl

        return list(load_questions_jsonl(path, limit=args.limit, offset=args.offset))
    if args.dataset:
        from optscale.datasets import load_dataset

        return list(load_dataset(args.dataset, limit=args.limit, offset=args.offset))
    raise InvalidArgumentError("questions", None, "give a questions file or --dataset")


def build_backends(args: argparse.Namespace) -> tuple[Any, Any, str]:
    from optscale.inprocess import make_generator, make_verifier

    opts: dict[str, Any] = {"model": args.model, "seed": args.seed}
    if args.n_threads is not None:
        opts["n_threads"] = args.n_threads
    if getattr(args, "sim_steps", None) is not None:
        opts["steps"] = args.sim_steps  # the sim's option (other backends don't take it)
    gen = make_generator(args.generator, **opts)
    ver = make_verifier(args.verifier, aggregation=args.aggregation)  # ignored by sim
    model_name = str(getattr(gen.backend, "model_name", None) or args.model or args.generator)
    return gen, ver, model_name


def policy_factory(
    args: argparse.Namespace, name: str, n_max: int, question_ids: Sequence[str] = ()
) -> Any:
    """The policy for each question. ``--params`` must have been tuned at this N_max and on
    none of ``question_ids`` (unless ``--allow-overlap``, which is printed)."""
    from optscale.errors import InvalidArgumentError
    from optscale.params import check_n_max, check_overlap, read_params
    from optscale.policies import make_policy

    alpha, s_min = DEFAULT_ALPHA, DEFAULT_S_MIN
    tuned: dict[str, Any] = {}
    if getattr(args, "params", None):
        p = read_params(args.params)
        check_n_max(p, n_max)
        allow = bool(getattr(args, "allow_overlap", False))
        warning = check_overlap(p, question_ids, allow_overlap=allow)
        if warning:
            print(warning)
        if p.policy != name:
            raise InvalidArgumentError("policy", name, f"{args.params} was tuned for {p.policy}")
        tuned = p.policy_kwargs()
        alpha, s_min = tuned.pop("alpha"), tuned.pop("s_min")
    if getattr(args, "alpha", None) is not None:
        alpha = args.alpha
    if getattr(args, "s_min", None) is not None:
        s_min = args.s_min
    priors: Any = None
    if name in ("optscalet", "dsc_prior"):
        if not getattr(args, "priors", None):
            raise InvalidArgumentError(
                "priors", None, f"--policy {name} needs --priors FILE or --priors predictor"
            )
        if args.priors.startswith("predictor"):
            priors = _PredictorPriors(args.priors.partition(":")[2] or None)
        else:
            from optscale.priors import load_priors

            priors = load_priors(args.priors)
    shared = None if priors else make_policy(name, n_max=n_max, alpha=alpha, s_min=s_min, **tuned)

    def make(q: Any) -> Any:
        if shared is not None:
            return shared
        from optscale.stats import GaussianPrior

        assert priors is not None
        ms = priors.get(q) if isinstance(priors, _PredictorPriors) else priors.get(q.id)
        if ms is None:
            raise InvalidArgumentError("priors", args.priors, f"no prior for question {q.id!r}")
        taus = priors.taus if isinstance(priors, _PredictorPriors) else ()
        prior = GaussianPrior(float(ms[0]), float(ms[1]), *taus)
        return make_policy(name, n_max=n_max, alpha=alpha, s_min=s_min, prior=prior, **tuned)

    make.alpha = alpha  # type: ignore[attr-defined]
    make.s_min = s_min  # type: ignore[attr-defined]
    return make


class _PredictorPriors:
    """Priors from the trained predictor, asked with each question's text."""

    def __init__(self, model_dir: str | None) -> None:
        from services.predictor.model import TrainedPredictor
        from services.predictor.server import DEFAULT_MODEL_DIR

        self.predictor = TrainedPredictor(model_dir or DEFAULT_MODEL_DIR)
        self.taus: tuple[float, float] = self.predictor.taus  # its measured dev error

    def get(self, q: Any) -> tuple[float, float]:
        ((mu, sigma),) = self.predictor.predict_sync([q.text])
        return mu, sigma


def sampling_params(args: argparse.Namespace) -> Any:
    from optscale.types import SamplingParams

    return SamplingParams(
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        seed=args.seed,
    ).validate()


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    import sys
    from pathlib import Path

    from tqdm import tqdm

    from optscale.errors import InvalidArgumentError
    from optscale.pools import PoolWriter
    from optscale.solve import pool_records, read_result_ids, solve_all

    if args.n_max < 1:
        raise InvalidArgumentError("n_max", args.n_max, "must be >= 1")
    pruning = prefix_pruning(args)
    questions = load_questions(args)
    writer = PoolWriter(args.record) if args.record else None
    out = Path(args.out)
    if args.resume:
        done: set[str] = set()
        if writer is not None:
            done = writer.recorded_ids()
        else:
            done = read_result_ids(out)  # a bad line is a DataError; the file is left as is
        before = len(questions)
        questions = [q for q in questions if q.id not in done]
        print(f"resume: {before - len(questions)} questions already done", file=sys.stderr)
    if getattr(args, "strategy", None) == "mr-thinking":  # `optscale eval` has no --strategy
        from optscale.commands._solve_mr import run_mr_thinking

        return run_mr_thinking(args, questions, out)
    make = policy_factory(args, args.policy, args.n_max, [q.id for q in questions])
    params = sampling_params(args)
    gen, ver, model_name = build_backends(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"{len(questions)} questions, policy={args.policy} N_max={args.n_max} "
        f"alpha={make.alpha} s_min={make.s_min}, generator={args.generator} ({model_name}), "
        f"verifier={args.verifier}" + (f", prefix pruning z={pruning.z}" if pruning else ""),
        file=sys.stderr,
    )
    bar = tqdm(total=len(questions), unit="q", file=sys.stderr, dynamic_ncols=True)
    counters = {"samples": 0, "tokens": 0}

    with out.open("a" if args.resume else "w", encoding="utf-8") as fh:

        def on_sample(sc: Any) -> None:
            counters["samples"] += 1
            counters["tokens"] += sc.tokens
            bar.set_postfix(samples=counters["samples"], tokens=counters["tokens"], refresh=False)

        stats_ref: dict[str, Any] = {}

        def on_result(result: Any, scored: Any) -> None:
            fh.write(json.dumps(result.as_dict()) + "\n")
            fh.flush()
            if writer is not None:
                q = next(q for q in questions if q.id == result.id)
                writer.write_question(
                    pool_records(
                        q, scored, dataset=args.dataset, model=model_name, verifier=args.verifier
                    )
                )
            stats_ref["n"] = stats_ref.get("n", 0) + 1
            bar.set_postfix(
                samples=counters["samples"],
                tokens=counters["tokens"],
                per_q=f"{counters['samples'] / stats_ref['n']:.1f}",
                refresh=False,
            )
            bar.update(1)

        try:
            stats = asyncio.run(
                solve_all(
                    questions,
                    make,
                    gen,
                    ver,
                    params,
                    n_max=args.n_max,  # answers read per question.dataset (gsm8k, ...)
                    on_result=on_result,
                    on_sample=on_sample,
                    pruning=pruning,
                )
            )
        finally:
            bar.close()
            close = getattr(gen.backend, "close", None)
            if close is not None:
                close()
    print(stats.summary())
    print(f"results: {out}" + (f", pool: {args.record}" if args.record else ""))
    return 0


def prefix_pruning(args: argparse.Namespace) -> Any:
    """``--prune-z`` / ``--prune-min-steps`` as a :class:`~optscale.pruning.PrefixPruning`
    (``None``: off); refused where the generator cannot judge steps or the scorer is not the
    confidence scorer whose step scores the judge computes."""
    from optscale.errors import InvalidArgumentError
    from optscale.pruning import PrefixPruning

    z = getattr(args, "prune_z", None)
    if z is None:
        return None
    if args.verifier != "confidence":
        raise InvalidArgumentError("prune_z", z, "needs --verifier confidence (step scores)")
    if args.generator not in ("llamacpp", "sim"):
        raise InvalidArgumentError("prune_z", z, "needs --generator llamacpp or sim")
    if getattr(args, "strategy", "samples") != "samples":
        raise InvalidArgumentError("prune_z", z, "prunes independent samples (--strategy samples)")
    if args.record:
        raise InvalidArgumentError(
            "record", args.record, "a pool holds whole samples; pruned ones are cut (no --prune-z)"
        )
    return PrefixPruning(z=z, min_steps=args.prune_min_steps, aggregation=args.aggregation)
