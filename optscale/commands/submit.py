"""``optscale submit QUESTIONS.jsonl``: produce questions straight to optscale.question-events
(the batch path; results arrive on optscale.results — see ``optscale results``).

Every submission belongs to a batch: ``--batch-id``, else a generated id. The batch's question
ids are recorded in the controllers' Redis first (:mod:`optscale.commands._batch_record`; a
question id counts once per batch, so a failed send can simply be submitted again), then the
questions are produced, each ``Submitted`` carrying the batch id, and stdout gets one line
``batch <ID> <N> questions`` for scripts (``optscale results --follow --batch ID``)."""

from __future__ import annotations

import argparse

NAME = "submit"
HELP = "produce questions to Kafka for the controllers (batch path)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("questions", nargs="?", help="questions JSONL (id, question, answer)")
    parser.add_argument("--dataset", help="a benchmark from ../shared/datasets instead")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: "
                        "$OPTSCALE_KAFKA_BOOTSTRAP, else the local stack's 127.0.0.1:19092)")
    parser.add_argument("--redis-url", help="the controllers' Redis, where the batch is recorded "
                        "(default: $OPTSCALE_REDIS_URL, else the local stack's)")
    parser.add_argument("--policy", default="optscale0")
    parser.add_argument("--n-max", type=int, default=16)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--s-min", type=float)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--params",
        help="tuned params from `optscale calibrate` (policy, N_max, alpha, s_min and options)",
    )
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="submit even questions the --params were tuned on (printed)",
    )
    parser.add_argument(
        "--budget",
        type=int,
        help="a token budget shared by the submitted questions (they stop with reason 'budget' "
        "once their scored samples' tokens reach it): the budget of this batch",
    )
    parser.add_argument(
        "--batch-id",
        help="the batch the questions belong to (default: a new id, printed); submitting into "
        "an existing batch adds the new questions to its total (a question id already in it "
        "counts once)",
    )
    parser.add_argument(
        "--wave",
        type=int,
        default=0,
        help="with --budget: at most this many of the batch's samples in flight per controller, "
        "each freed slot to the question whose policy prices a sample highest (bayes/hybrid)",
    )
    parser.add_argument(
        "--priors",
        help="--policy dsc: rank the batch by the priors' mu_bar (easiest first): a priors file "
        "or 'predictor[:DIR]' (the trained predictor in process; the default)",
    )
    parser.add_argument(
        "--options",
        default="",
        help="further policy options as JSON, e.g. '{\"pace\": 0.5}' (over --params' ones)",
    )


def apply_params(args: argparse.Namespace, question_ids: list[str]) -> None:
    """Fill policy, N_max, alpha, s_min and options from ``--params`` where the command line
    leaves them at their defaults; refuse params tuned at another N_max or on any of the
    submitted questions (unless ``--allow-overlap``)."""
    import json

    from optscale.config import QuestionConfig
    from optscale.errors import InvalidArgumentError
    from optscale.params import check_n_max, check_overlap, read_params

    opts = dict(QuestionConfig.options_from(args.options))
    if args.params:
        p = read_params(args.params)
        if args.policy not in ("optscale0", p.policy):
            raise InvalidArgumentError("policy", args.policy, f"{args.params} is for {p.policy}")
        args.policy = p.policy
        if args.n_max == 16:
            args.n_max = p.n_max
        check_n_max(p, args.n_max)
        warning = check_overlap(p, question_ids, allow_overlap=args.allow_overlap)
        if warning:
            import sys

            print(warning, file=sys.stderr)  # stdout: the batch line only
        args.alpha = p.alpha if args.alpha is None else args.alpha
        args.s_min = p.s_min if args.s_min is None else args.s_min
        opts = {**dict(p.policy_params), **opts}
    args.options = json.dumps(opts, sort_keys=True) if opts else ""


def build_events(args: argparse.Namespace, questions: list) -> list:  # type: ignore[type-arg]
    from optscale.errors import InvalidArgumentError
    from optscale.ids import check_question_id
    from optscale.v1 import events_pb2
    from services.controller.questions import config_from_submitted

    out = []
    for q in questions:
        check_question_id(q.id, "id")
        ev = events_pb2.QuestionEvent(question_id=q.id, schema_version=1)
        s = ev.submitted
        s.text = q.text
        s.reference_answer = q.answer or ""
        s.dataset = q.dataset or ""
        s.policy.policy = args.policy
        s.policy.n_max = args.n_max
        if args.alpha is not None:
            s.policy.alpha = args.alpha
        if args.s_min is not None:
            s.policy.s_min = args.s_min
        s.policy.options_json = getattr(args, "options", "") or ""
        s.batch_id = getattr(args, "batch_id", None) or ""
        if getattr(args, "budget", None) is not None:
            s.batch.batch_id = args.batch_id or ""
            s.batch.token_budget = max(0, args.budget)
            s.batch.wave = max(0, getattr(args, "wave", 0) or 0)
        s.sampling.temperature, s.sampling.top_p = 0.7, 0.95
        s.sampling.max_tokens = args.max_tokens
        if args.seed is not None:
            s.sampling.seed = args.seed
        try:
            config_from_submitted(s, prior_optional=True)  # the controller may predict it
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{q.id}: {exc.field}", exc.value, exc.why) from exc
        out.append(ev)
    return out


def batch_id(args: argparse.Namespace) -> str:
    """``--batch-id`` (checked), else a new one from the time and 6 random hex digits."""
    import secrets
    import time

    from optscale.batch_progress import new_batch_id
    from optscale.ids import check_question_id

    if args.batch_id is not None:
        return check_question_id(args.batch_id, "batch-id")
    return new_batch_id(time.time(), secrets.token_hex(3))


def run(args: argparse.Namespace) -> int:
    import asyncio
    import sys
    import time

    from optscale.commands._batch_record import (
        kafka_bootstrap,
        record_batch,
        redis_at,
        redis_settings,
    )
    from optscale.datasets import load_dataset, load_questions_jsonl
    from optscale.errors import BackendUnavailableError, InvalidArgumentError

    if bool(args.questions) == bool(args.dataset):
        raise InvalidArgumentError("questions", args.questions, "give a file or --dataset")
    qs = (
        load_dataset(args.dataset, limit=args.limit, offset=args.offset)
        if args.dataset
        else load_questions_jsonl(args.questions, limit=args.limit, offset=args.offset)
    )
    if not qs:
        raise InvalidArgumentError("questions", args.questions or args.dataset, "none to submit")
    apply_params(args, [q.id for q in qs])
    if args.dataset:  # MATH ids have '/', the sample-id separator: sent with ':' instead
        from dataclasses import replace

        from optscale.ids import pipeline_id

        qs = [replace(q, id=pipeline_id(q.id)) for q in qs]
    args.batch_id = batch_id(args)
    if args.policy == "dsc":  # batch DSC: each question's rank in the batch
        from optscale.commands._dsc_rank import build_dsc_events

        events = build_dsc_events(args, qs, build_events)
    else:
        events = build_events(args, qs)
    bootstrap = kafka_bootstrap(args.bootstrap)
    url, ttl_ms = redis_settings(args.redis_url)

    async def record() -> tuple[int, int]:
        async with redis_at(url) as r:
            ids = [e.question_id for e in events]
            return await record_batch(r, args.batch_id, ids, time.time(), ttl_ms)

    async def send() -> None:
        from services.common import kafka

        p = await kafka.producer(bootstrap)
        try:
            for e in events:
                await p.send(
                    kafka.QUESTION_EVENTS, e.SerializeToString(), key=e.question_id.encode()
                )
            await p.flush()
        finally:
            await p.stop()

    added, total = asyncio.run(record())
    try:
        asyncio.run(send())
    except Exception as exc:
        raise BackendUnavailableError(
            f"sending to {bootstrap} failed ({exc!r}); batch {args.batch_id} already counts "
            f"these questions: submit them again with --batch-id {args.batch_id}"
        ) from exc
    print(f"submitted {len(events)} questions to {bootstrap}", file=sys.stderr)
    if total != len(events):
        print(f"batch {args.batch_id} now has {total} questions ({len(events) - added} of "
              "these were in it already)", file=sys.stderr)
    print(f"batch {args.batch_id} {len(events)} questions", flush=True)
    return 0
