"""Submit refuses a question id already used by a different question with ALREADY_EXISTS
(nothing of the request is produced); the same question again is accepted."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import grpc

from optscale.memory import InMemoryStateStore
from optscale.stats import GaussianPrior
from optscale.v1 import controller_pb2
from services.controller.questions import SubmitDefaults, config_from_submitted
from services.controller.server import ControllerServicer


class _Producer:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append(key)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class _Context:
    code: Any = None
    details = ""

    async def abort(self, code: Any, details: str) -> None:
        self.code, self.details = code, details
        raise RuntimeError("aborted")


def _request(*specs: tuple[str, str], policy: str = "bon") -> controller_pb2.SubmitRequest:
    req = controller_pb2.SubmitRequest(
        questions=[
            controller_pb2.QuestionSpec(question_id=q, text=t, reference_answer="4")
            for q, t in specs
        ]
    )
    req.policy.policy, req.policy.n_max = policy, 4
    return req


async def _stored(store: InMemoryStateStore, req: controller_pb2.SubmitRequest) -> None:
    """What the controller stores for the request's questions (the worker's create)."""
    servicer = ControllerServicer(
        store, _Producer(), None, defaults=SubmitDefaults(), prior_optional=True
    )
    for ev, _ in servicer._events(req):
        cfg = config_from_submitted(ev.submitted, prior_optional=True)
        if cfg.needs_prior:  # the controller's predictor filled it in
            cfg = dataclasses.replace(cfg, prior=GaussianPrior(0.6, 0.1, 0.4, 0.1))
        assert await store.create(ev.question_id, 1, cfg, 0)


async def _submit(store: InMemoryStateStore, req: Any) -> tuple[_Context, list[bytes]]:
    producer = _Producer()
    servicer = ControllerServicer(
        store, producer, None, defaults=SubmitDefaults(), prior_optional=True
    )
    ctx = _Context()
    try:
        await servicer.Submit(req, ctx)
    except RuntimeError:
        pass
    return ctx, producer.sent


async def test_the_same_question_again_is_accepted() -> None:
    store = InMemoryStateStore()
    await _stored(store, _request(("q1", "2 + 2?")))
    ctx, sent = await _submit(store, _request(("q1", "2 + 2?"), ("q2", "3 + 1?")))
    assert ctx.code is None and sent == [b"q1", b"q2"]


async def test_a_used_id_with_another_question_is_already_exists() -> None:
    store = InMemoryStateStore()
    await _stored(store, _request(("q1", "2 + 2?")))
    ctx, sent = await _submit(store, _request(("q2", "3 + 1?"), ("q1", "5 - 1?")))
    assert ctx.code == grpc.StatusCode.ALREADY_EXISTS
    assert "'q1'" in ctx.details and "text" in ctx.details
    assert sent == []  # nothing of the request was produced


async def test_other_settings_under_a_used_id_are_already_exists() -> None:
    store = InMemoryStateStore()
    await _stored(store, _request(("q1", "2 + 2?")))
    ctx, _ = await _submit(store, _request(("q1", "2 + 2?"), policy="sc"))
    assert ctx.code == grpc.StatusCode.ALREADY_EXISTS and "policy" in ctx.details


async def test_a_predicted_prior_is_not_a_difference() -> None:
    store = InMemoryStateStore()
    await _stored(store, _request(("t1", "2 + 2?"), policy="optscalet"))
    ctx, sent = await _submit(store, _request(("t1", "2 + 2?"), policy="optscalet"))
    assert ctx.code is None and sent == [b"t1"]


async def test_a_submitted_event_reusing_an_id_for_another_question_is_parked(
    store: Any,
) -> None:
    from tests.services.controller import harness
    from tests.services.controller.harness import settle, submitted

    w, _, pub = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("k", n_max=4, policy="bon"), 0)
    await w.handle(submitted("k", n_max=4, policy="bon"), 0)  # a redelivery: the same
    assert pub.on("optscale.dlq") == []
    other = submitted("k", n_max=4, policy="bon")
    other.submitted.text = "a different question"
    await w.handle(other, 0)
    await settle()
    (parked,) = pub.on("optscale.dlq")
    assert parked.key == "k" and parked.reason is not None
    assert parked.reason.startswith("already exists") and "text" in parked.reason
    sq = await store.get("k")
    assert sq is not None and sq.config.text == "question k?"  # the first one carries on
