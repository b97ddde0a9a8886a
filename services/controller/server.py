"""gRPC ``Controller``: Submit, Solve (result stream), GetResult, Cancel.

Submit validates and produces ``Submitted`` events (key = question id); the consumer group
does the work. A question id already used by a different question is ``ALREADY_EXISTS``
(checked against the store: two different questions submitted under one new id at the same
moment are not caught here; the controller keeps the first and logs the second as a
duplicate). Results are read from Redis, the source of truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.json_format import ParseDict

from optscale.config import QuestionConfig
from optscale.errors import AlreadyExistsError, InvalidArgumentError
from optscale.ids import check_question_id
from optscale.ports import StateStore
from optscale.v1 import controller_pb2, controller_pb2_grpc, events_pb2
from services.common import kafka
from services.common.server import streaming, unary
from services.controller.questions import SubmitDefaults, config_from_submitted, differences

SERVICE = "optscale.v1.Controller"


class ControllerServicer(controller_pb2_grpc.ControllerServicer):
    def __init__(
        self,
        store: StateStore,
        producer: Any,
        log: Any,
        *,
        defaults: SubmitDefaults,
        max_questions: int = 1000,
        prior_optional: bool = False,
    ) -> None:
        """``prior_optional``: the controller has a predictor, so optscalet questions may come
        without a prior."""
        self.store = store
        self.producer = producer
        self.log = log
        self.defaults = defaults
        self.max_questions = max_questions
        self.prior_optional = prior_optional

    def _events(
        self, req: controller_pb2.SubmitRequest
    ) -> list[tuple[events_pb2.QuestionEvent, QuestionConfig]]:
        n = len(req.questions)
        if not 1 <= n <= self.max_questions:
            raise InvalidArgumentError("questions", n, f"need 1 to {self.max_questions}")
        seen: set[str] = set()
        out = []
        for i, q in enumerate(req.questions):
            check_question_id(q.question_id, f"questions[{i}].question_id")
            if q.question_id in seen:
                raise InvalidArgumentError(
                    f"questions[{i}].question_id", q.question_id, "duplicate in this request"
                )
            seen.add(q.question_id)
            ev = events_pb2.QuestionEvent(question_id=q.question_id, schema_version=1)
            s = ev.submitted
            s.text, s.reference_answer, s.dataset = q.text, q.reference_answer, q.dataset
            s.sampling.CopyFrom(req.sampling)
            s.policy.CopyFrom(req.policy)
            if req.HasField("batch"):
                s.batch.CopyFrom(req.batch)
            try:
                cfg = config_from_submitted(s, self.defaults, prior_optional=self.prior_optional)
            except InvalidArgumentError as exc:
                raise InvalidArgumentError(
                    f"questions[{i}].{exc.field}", exc.value, exc.why
                ) from exc
            out.append((ev, cfg))
        return out

    async def _check_unused(self, q: str, cfg: QuestionConfig) -> None:
        """A question id already used by a different question is refused (ALREADY_EXISTS);
        the same question again is fine (its result is, or will be, the stored one). Ids
        whose keys expired (``OPTSCALE_CONTROLLER_RESULT_TTL_SECONDS``) are free again."""
        sq = await self.store.get(q)
        if sq is None:
            return
        diff = differences(sq.config, cfg)
        if diff:
            raise AlreadyExistsError(
                f"question id {q!r} is already used by a different question "
                f"(differs in {', '.join(diff)}); submit it under a new id"
            )

    async def _submit(self, req: controller_pb2.SubmitRequest) -> list[str]:
        checked = self._events(req)
        await asyncio.gather(*(self._check_unused(e.question_id, c) for e, c in checked))
        events = [e for e, _ in checked]
        futs = [
            await self.producer.send(
                kafka.QUESTION_EVENTS, e.SerializeToString(), key=e.question_id.encode()
            )
            for e in events
        ]
        await asyncio.gather(*futs)
        return [e.question_id for e in events]

    async def Submit(self, request: Any, context: Any) -> controller_pb2.SubmitResponse:
        async def call() -> controller_pb2.SubmitResponse:
            return controller_pb2.SubmitResponse(question_ids=await self._submit(request))

        return await unary("controller", "Submit", context, self.log, call)

    async def _result(self, q: str) -> events_pb2.Result | None:
        sq = await self.store.get(q)
        if sq is None or sq.result is None:
            return None
        return ParseDict(sq.result, events_pb2.Result())

    async def GetResult(self, request: Any, context: Any) -> controller_pb2.GetResultResponse:
        async def call() -> controller_pb2.GetResultResponse:
            check_question_id(request.question_id)
            r = await self._result(request.question_id)
            return controller_pb2.GetResultResponse(done=r is not None, result=r)

        return await unary("controller", "GetResult", context, self.log, call)

    async def Cancel(self, request: Any, context: Any) -> controller_pb2.CancelResponse:
        async def call() -> controller_pb2.CancelResponse:
            q = check_question_id(request.question_id)
            sq = await self.store.get(q)
            if sq is None or sq.status != "active":
                return controller_pb2.CancelResponse(cancelled=False)
            ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
            ev.cancelled.reason = "cancelled by client"
            await self.producer.send_and_wait(
                kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode()
            )
            return controller_pb2.CancelResponse(cancelled=True)

        return await unary("controller", "Cancel", context, self.log, call)

    async def Solve(self, request: Any, context: Any) -> AsyncIterator[events_pb2.Result]:
        async for r in streaming("controller", "Solve", context, self.log, self._solve(request)):
            yield r

    async def _solve(self, request: Any) -> AsyncIterator[events_pb2.Result]:
        pending = set(await self._submit(request))
        while pending:
            for q in sorted(pending):
                r = await self._result(q)
                if r is not None:
                    pending.discard(q)
                    yield r
            if pending:
                await asyncio.sleep(0.05)
