"""The ``Result`` message a finished question publishes (``optscale.results``) and stores."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import ParseDict

from optscale.config import QuestionConfig
from optscale.grading import is_correct
from optscale.loop import QuestionLoop, Stop
from optscale.v1 import events_pb2

_STATUS = {
    "done": events_pb2.RESULT_STATUS_DONE,
    "failed": events_pb2.RESULT_STATUS_FAILED,
    "cancelled": events_pb2.RESULT_STATUS_CANCELLED,
}


def result_message(
    question_id: str, config: QuestionConfig, loop: QuestionLoop, stop: Stop
) -> events_pb2.Result:
    """What the loop ended with: the chosen answer (graded when the config has a reference),
    the samples used, failed and cancelled in flight, tokens, N* and the stop reason."""
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
    )
    if stop.decision.n_star is not None:
        res.n_star = float(stop.decision.n_star)
    if config.reference is not None and chosen is not None:
        res.correct = bool(
            chosen.answer is not None and is_correct(chosen.answer, config.reference)
        )
    return res


def result_payload(result: dict[str, Any]) -> bytes:
    """The bytes published on ``optscale.results`` for a result as stored
    (``MessageToDict`` form): whoever publishes a question's result — the controller that
    finalized it, or one republishing it from the store — sends exactly these bytes."""
    return ParseDict(result, events_pb2.Result()).SerializeToString(deterministic=True)
