"""The ``Result`` message a finished question publishes (``optscale.results``) and stores.

Grading (normalized match, else math-verify/sympy, which can take long on odd input) runs off
the event loop on a small thread pool of its own, with a timeout; an answer longer than
``MAX_GRADED_ANSWER_CHARS`` is not graded, and references are bounded at submission
(:data:`services.controller.questions.MAX_REFERENCE_CHARS`). An ungraded result has no
``correct`` field."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.protobuf.json_format import ParseDict

from optscale.config import QuestionConfig
from optscale.grading import is_correct
from optscale.loop import QuestionLoop, Stop
from optscale.v1 import events_pb2

GRADING_TIMEOUT_S = 5.0
MAX_GRADED_ANSWER_CHARS = 1000
# at most this many gradings at once; a grading that times out keeps its thread until it
# ends (a thread cannot be killed), so later ones wait here rather than piling up threads
_GRADERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="optscale-grading")

_STATUS = {
    "done": events_pb2.RESULT_STATUS_DONE,
    "failed": events_pb2.RESULT_STATUS_FAILED,
    "cancelled": events_pb2.RESULT_STATUS_CANCELLED,
}


async def grade(answer: str | None, reference: str, timeout_s: float | None = None) -> bool | None:
    """Whether ``answer`` matches ``reference``, computed on the grading threads; None (not
    graded) when the answer is longer than ``MAX_GRADED_ANSWER_CHARS`` or grading takes
    longer than ``timeout_s`` (default ``GRADING_TIMEOUT_S``)."""
    if answer is None:
        return False
    if len(answer) > MAX_GRADED_ANSWER_CHARS:
        return None
    fut = asyncio.get_running_loop().run_in_executor(_GRADERS, is_correct, answer, reference)
    try:
        return bool(await asyncio.wait_for(fut, timeout_s or GRADING_TIMEOUT_S))
    except TimeoutError:
        return None


async def result_message(
    question_id: str,
    config: QuestionConfig,
    loop: QuestionLoop,
    stop: Stop,
    *,
    grading_timeout_s: float | None = None,
) -> events_pb2.Result:
    """What the loop ended with: the chosen answer (graded off the event loop when the config
    has a reference), the samples used, failed and cancelled in flight, tokens, N*, the stop
    reason and the question's batch id (empty without one)."""
    st = loop.state
    chosen = stop.chosen
    res = events_pb2.Result(
        question_id=question_id,
        answer=(chosen.answer or "") if chosen else "",
        chosen_sample_id=chosen.sample_id if chosen else "",
        score=chosen.score if chosen else 0.0,
        samples_used=st.n_scored,
        samples_failed=st.n_failed,
        samples_cancelled=st.n_inflight,
        completion_tokens=st.tokens,
        stop_reason=stop.reason,
        policy=loop.policy.name,
        n_max=loop.policy.n_max,
        status=_STATUS[stop.status],
        batch_id=config.batch_id or "",
    )
    if stop.decision.n_star is not None:
        res.n_star = float(stop.decision.n_star)
    if config.reference is not None and chosen is not None:
        correct = await grade(chosen.answer, config.reference, grading_timeout_s)
        if correct is not None:
            res.correct = correct
    return res


def result_payload(result: dict[str, Any]) -> bytes:
    """The bytes published on ``optscale.results`` for a result as stored
    (``MessageToDict`` form): whoever publishes a question's result — the controller that
    finalized it, or one republishing it from the store — sends exactly these bytes."""
    return ParseDict(result, events_pb2.Result()).SerializeToString(deterministic=True)
