"""``optscale submit QUESTIONS.jsonl``: produce questions straight to optscale.question-events
(the batch path; results arrive on optscale.results — see ``optscale results``)."""

from __future__ import annotations

import argparse

NAME = "submit"
HELP = "produce questions to Kafka for the controllers (batch path)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("questions", nargs="?", help="questions JSONL (id, question, answer)")
    parser.add_argument("--dataset", help="a benchmark from ../shared/datasets instead")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--bootstrap", default="127.0.0.1:19092", help="Kafka bootstrap servers")
    parser.add_argument("--policy", default="optscale0")
    parser.add_argument("--n-max", type=int, default=16)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--s-min", type=float)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--seed", type=int)


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


def run(args: argparse.Namespace) -> int:
    import asyncio

    from optscale.datasets import load_dataset, load_questions_jsonl
    from optscale.errors import InvalidArgumentError

    if bool(args.questions) == bool(args.dataset):
        raise InvalidArgumentError("questions", args.questions, "give a file or --dataset")
    qs = (
        load_dataset(args.dataset, limit=args.limit, offset=args.offset)
        if args.dataset
        else load_questions_jsonl(args.questions, limit=args.limit, offset=args.offset)
    )
    events = build_events(args, qs)

    async def send() -> None:
        from services.common import kafka

        p = await kafka.producer(args.bootstrap)
        try:
            for e in events:
                await p.send(
                    kafka.QUESTION_EVENTS, e.SerializeToString(), key=e.question_id.encode()
                )
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(send())
    print(f"submitted {len(events)} questions to {args.bootstrap}")
    return 0
