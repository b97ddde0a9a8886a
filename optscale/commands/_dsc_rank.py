"""``optscale submit --policy dsc``: rank the batch by difficulty at submit time and send each
question its place in it (options ``dsc_batch``, ``rank``, ``batch_size``; see
:mod:`optscale.batch_dsc`). Difficulty is the prior's ``mu_bar`` (the expected verifier
score: higher is easier), from ``--priors``: a priors file (``optscale.priors.load_priors``
formats, by question id) or ``predictor[:DIR]`` (the trained prior predictor in process,
default ``services/predictor/default``) — the same sources as ``optscale solve --priors``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from optscale.errors import InvalidArgumentError

__all__ = ["DEFAULT_PRIORS", "build_dsc_events", "question_ease"]

DEFAULT_PRIORS = "predictor"


def question_ease(source: str, questions: Sequence[Any]) -> list[float]:
    """Each question's ``mu_bar`` from ``source`` (a file, or ``predictor[:DIR]``)."""
    if source.startswith("predictor"):
        from services.predictor.model import TrainedPredictor
        from services.predictor.server import DEFAULT_MODEL_DIR

        predictor = TrainedPredictor(source.partition(":")[2] or DEFAULT_MODEL_DIR)
        return [float(mu) for mu, _ in predictor.predict_sync([q.text for q in questions])]
    from optscale.priors import load_priors

    priors = load_priors(source)
    missing = [q.id for q in questions if q.id not in priors]
    if missing:
        raise InvalidArgumentError("priors", source, f"no prior for question {missing[0]!r}")
    return [float(priors[q.id][0]) for q in questions]


def build_dsc_events(
    args: argparse.Namespace,
    questions: Sequence[Any],
    build_events: Callable[[argparse.Namespace, list[Any]], list[Any]],
    ease: Sequence[float] | None = None,
) -> list[Any]:
    """The batch's events, easiest first (ties: file order), each with its rank in
    ``options_json`` over the command line's options. ``ease``: given (tests), else
    :func:`question_ease` of ``args.priors``."""
    if not args.batch_id:
        raise InvalidArgumentError("batch-id", args.batch_id, "--policy dsc needs a batch id")
    if ease is None:
        ease = question_ease(getattr(args, "priors", None) or DEFAULT_PRIORS, questions)
    order = sorted(range(len(questions)), key=lambda i: -ease[i])
    base = json.loads(args.options) if args.options else {}
    out: list[Any] = []
    for rank, i in enumerate(order):
        opts = {**base, "dsc_batch": args.batch_id, "rank": rank, "batch_size": len(order)}
        one = argparse.Namespace(**{**vars(args), "options": json.dumps(opts, sort_keys=True)})
        out.extend(build_events(one, [questions[i]]))
    return out
