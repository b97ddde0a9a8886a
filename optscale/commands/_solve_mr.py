"""``optscale solve --strategy mr-thinking``: the command side of Multi-round Thinking
(:mod:`optscale.mr_thinking`); used by :mod:`optscale.commands.solve`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from optscale.commands.solve import build_backends, sampling_params


def run_mr_thinking(args: argparse.Namespace, questions: Sequence[Any], out: Any) -> int:
    """``--strategy mr-thinking``: one row per question in ``--out`` with every round."""
    import asyncio
    import json
    import sys

    from optscale.errors import InvalidArgumentError
    from optscale.mr_thinking import MRSettings, run_mr_thinking, summarize
    from optscale.solve import build_prompt

    if args.record:
        raise InvalidArgumentError(
            "record", args.record, "pools hold independent samples; mr-thinking rounds are in --out"
        )
    settings = MRSettings(args.n_max, args.stop_when_unchanged, args.carry).validate()
    params = sampling_params(args)
    gen, _, model_name = build_backends(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"{len(questions)} questions, mr-thinking rounds={settings.n_rounds} "
        f"stop_when_unchanged={settings.stop_when_unchanged} carry={settings.carry}, "
        f"generator={args.generator} ({model_name})",
        file=sys.stderr,
    )
    with out.open("a" if args.resume else "w", encoding="utf-8") as fh:

        def on_result(res: Any) -> None:
            fh.write(json.dumps(res.as_dict()) + "\n")
            fh.flush()

        try:
            results = asyncio.run(
                run_mr_thinking(
                    questions,
                    gen,
                    params,
                    settings,
                    build_prompt=build_prompt,
                    dataset=args.dataset,
                    on_result=on_result,
                )
            )
        finally:
            close = getattr(gen.backend, "close", None)
            if close is not None:
                close()
    if results:
        for n in range(1, settings.n_rounds + 1):
            row = summarize(results, n, stop_when_unchanged=settings.stop_when_unchanged)
            graded = sum(r.reference is not None for r in results)
            acc = f"{100 * row['accuracy']:.1f}%" if graded else "n/a"
            print(
                f"rounds<={n}: accuracy {acc}, {row['tokens_per_question']:.0f} tokens/question,"
                f" {row['rounds_per_question']:.2f} rounds/question"
            )
    print(f"results: {out}")
    return 0
