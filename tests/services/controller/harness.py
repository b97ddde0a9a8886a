"""A controller worker on a given store with stand-ins for what is outside the process: a
generator whose streams stay open (recording each request) and a recording publisher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from optscale.memory import RecordingPublisher
from optscale.ports import GenerateRequest
from optscale.v1 import events_pb2
from services.controller.worker import ControllerWorker
from services.generator.config import GeneratorConfig

RESULTS, EVENTS = "results", "events"


MAX_K = GeneratorConfig().max_k  # the generators' limit on k per Generate call (64)


class HeldGenerator:
    """Records every Generate request; its streams stay open until cancelled (samples in
    flight), which is what the controller's leases hold. A request for more than ``MAX_K``
    samples is refused as the real generator refuses it (``INVALID_ARGUMENT``)."""

    def __init__(self) -> None:
        self.requests: list[tuple[GenerateRequest, int]] = []
        self.open = 0
        self.refused = 0

    async def generate(self, req: GenerateRequest, *, epoch: int) -> AsyncIterator[str]:
        self.requests.append((req, epoch))
        if req.k > MAX_K:
            self.refused += 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details=f"k: {req.k} must be in [1, {MAX_K}]",
            )
        self.open += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.open -= 1
        yield ""  # pragma: no cover - never reached


def worker(store: Any, **kw: Any) -> tuple[ControllerWorker, HeldGenerator, RecordingPublisher]:
    gen, pub = HeldGenerator(), RecordingPublisher()
    w = ControllerWorker(store, gen, pub, results_topic=RESULTS, events_topic=EVENTS, **kw)
    return w, gen, pub


def submitted(
    q: str,
    *,
    n_max: int = 8,
    policy: str = "optscale0",
    seed: int | None = None,
    s_min: float | None = None,
    alpha: float | None = None,
    options: str = "",
) -> events_pb2.QuestionEvent:
    ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
    ev.submitted.policy.options_json = options
    ev.submitted.text = f"question {q}?"
    ev.submitted.policy.policy = policy
    ev.submitted.policy.n_max = n_max
    if s_min is not None:
        ev.submitted.policy.s_min = s_min
    if alpha is not None:
        ev.submitted.policy.alpha = alpha
    if seed is not None:
        ev.submitted.sampling.seed = seed
    return ev


def scored(
    q: str, index: int, score: float, *, answer: str = "1", tokens: int = 10, epoch: int = 0
) -> events_pb2.QuestionEvent:
    """A Scored event as the verifier sends it: by reference (no text)."""
    ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
    s = ev.scored
    s.sample_id, s.answer, s.completion_tokens, s.epoch = f"{q}/{index}", answer, tokens, epoch
    s.score = score
    return ev


def failed(q: str, index: int, *, epoch: int = 0) -> events_pb2.QuestionEvent:
    ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
    ev.sample_failed.sample_id, ev.sample_failed.epoch = f"{q}/{index}", epoch
    ev.sample_failed.reason = "test"
    return ev


def cancelled(q: str, reason: str = "by test") -> events_pb2.QuestionEvent:
    ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
    ev.cancelled.reason = reason
    return ev


def results(pub: RecordingPublisher) -> list[events_pb2.Result]:
    return [events_pb2.Result.FromString(m.value) for m in pub.on(RESULTS)]


async def settle() -> None:
    """Let the lease tasks the worker just created start (they record their request)."""
    for _ in range(5):
        await asyncio.sleep(0)
