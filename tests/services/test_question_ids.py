"""Question ids are limited to a safe character set on every pipeline entry point: the
controller's gRPC Submit / GetResult / Cancel, question events from Kafka, the generator's
Generate request and ``optscale submit``; all of them use ``optscale.ids.check_question_id``."""

from __future__ import annotations

import argparse
import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from optscale.errors import InvalidArgumentError
from optscale.ids import check_question_id
from optscale.types import Question
from optscale.v1 import controller_pb2, events_pb2, generator_pb2
from services.common.convert import generate_request_from_pb
from services.controller.consumer import _decode
from services.controller.questions import SubmitDefaults
from services.controller.server import ControllerServicer

UNSAFE = ["a\x00b", "a\nb", "q/1", "a{b}", "sp ace", "é", "", "x" * 257]
SAFE = ["q1", "gsm8k-test-0", "aime2024-I-1", "a.b_c:d-e", "x" * 256]


@pytest.mark.parametrize("qid", SAFE)
def test_safe_ids_pass(qid: str) -> None:
    assert check_question_id(qid) == qid


@pytest.mark.parametrize("qid", UNSAFE)
def test_unsafe_ids_are_refused_with_the_field_named(qid: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        check_question_id(qid, "questions[3].question_id")
    assert err.value.field == "questions[3].question_id"


def test_the_refusal_names_the_bad_characters() -> None:
    with pytest.raises(InvalidArgumentError, match=r"found '/'"):
        check_question_id("test/algebra/1.json")


def _servicer() -> ControllerServicer:
    return ControllerServicer(None, None, None, defaults=SubmitDefaults())  # type: ignore[arg-type]


@pytest.mark.parametrize("qid", ["a\x00b", "a\nb", "q/1"])
def test_grpc_submit_refuses_unsafe_ids(qid: str) -> None:
    req = controller_pb2.SubmitRequest(
        questions=[
            controller_pb2.QuestionSpec(question_id="ok", text="t"),
            controller_pb2.QuestionSpec(question_id=qid, text="t"),
        ]
    )
    with pytest.raises(InvalidArgumentError) as err:
        _servicer()._events(req)
    assert err.value.field == "questions[1].question_id"


class _Context:
    def __init__(self) -> None:
        self.aborted: tuple[Any, str] | None = None

    async def abort(self, code: Any, message: str) -> None:
        self.aborted = (code, message)
        raise RuntimeError("aborted")


@pytest.mark.parametrize("method", ["GetResult", "Cancel"])
def test_get_result_and_cancel_refuse_unsafe_ids(method: str) -> None:
    import grpc

    ctx = _Context()
    req = SimpleNamespace(question_id="q/1")
    with pytest.raises(RuntimeError, match="aborted"):
        asyncio.run(getattr(_servicer(), method)(req, ctx))
    assert ctx.aborted is not None and ctx.aborted[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert "question_id" in ctx.aborted[1]


@pytest.mark.parametrize("qid", ["a\x00b", "a\nb", "q/1"])
def test_question_events_with_unsafe_ids_go_to_the_dlq(qid: str) -> None:
    ev = events_pb2.QuestionEvent(question_id=qid, schema_version=1)
    ev.submitted.text = "t"
    parked: list[tuple[str, str]] = []

    async def publisher(topic: str, key: str, value: bytes, *, reason: str = "") -> None:
        parked.append((topic, reason))

    msg = SimpleNamespace(value=ev.SerializeToString(), key=qid.encode(), partition=0, offset=7)
    assert asyncio.run(_decode(msg, publisher, None)) is None  # type: ignore[arg-type]
    assert len(parked) == 1 and parked[0][0] == "optscale.dlq"
    assert "question_id" in parked[0][1]


def test_a_safe_question_event_is_decoded() -> None:
    ev = events_pb2.QuestionEvent(question_id="q-1", schema_version=1)
    ev.submitted.text = "t"
    msg = SimpleNamespace(value=ev.SerializeToString(), key=b"q-1", partition=0, offset=7)

    async def publisher(*a: Any, **k: Any) -> None:
        raise AssertionError("a good event was parked")

    got = asyncio.run(_decode(msg, publisher, None))  # type: ignore[arg-type]
    assert got is not None and got.question_id == "q-1"


def test_generate_requests_with_unsafe_ids_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="question_id"):
        generate_request_from_pb(generator_pb2.GenerateRequest(question_id="q/1", prompt="p", k=1))
    assert generate_request_from_pb(
        generator_pb2.GenerateRequest(question_id="q1", prompt="p", k=1)
    ).question_id == "q1"


def test_cli_submit_refuses_unsafe_ids_before_producing_anything() -> None:
    from optscale.commands.submit import build_events

    args = argparse.Namespace(
        policy="bon", n_max=4, alpha=None, s_min=None, max_tokens=64, seed=None
    )
    good = Question("q1", "what?", "42")
    assert [e.question_id for e in build_events(args, [good])] == ["q1"]
    with pytest.raises(InvalidArgumentError, match=r"test/algebra/1\.json"):
        build_events(args, [good, Question("test/algebra/1.json", "what?", "42")])
