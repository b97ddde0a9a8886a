"""What the chaos tests (``test_chaos.py``, ``test_elastic_chaos.py``) share: the question they
submit, the sample ids really generated in a run, and the check that a finished question
counted each of its samples once."""

from __future__ import annotations

from typing import Any

from optscale.v1 import common_pb2, events_pb2
from services.common import kafka
from services.controller.state import RedisStateStore

GROUP = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 300}


def submitted(q: str, n_max: int) -> bytes:
    """A ``Submitted`` event: OptScale^0 with ``n_max``, s_min 0.9, reference answer 42."""
    ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
    ev.submitted.text = f"question {q}"
    ev.submitted.reference_answer = "42"
    ev.submitted.policy.policy = "optscale0"
    ev.submitted.policy.n_max = n_max
    ev.submitted.policy.s_min = 0.9
    ev.submitted.sampling.max_tokens = 512
    return ev.SerializeToString()


async def generated(bootstrap: str, prefix: str) -> dict[str, int]:
    """sample id -> how often it is on ``optscale.candidates``, for questions ``prefix-*``."""
    cons = await kafka.consumer(bootstrap, kafka.CANDIDATES, f"chaos-cands-{prefix}", **GROUP)
    seen: dict[str, int] = {}
    try:
        idle = 0
        while idle < 3:
            batch = await cons.getmany(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for msgs in batch.values():
                for m in msgs:
                    if (m.key or b"").decode().startswith(prefix + "-"):
                        sid = common_pb2.Candidate.FromString(m.value).sample_id
                        seen[sid] = seen.get(sid, 0) + 1
    finally:
        await cons.stop()
    return seen


async def assert_counted_once(
    store: RedisStateStore, res: events_pb2.Result, n_max: int, generated: Any
) -> None:
    """The question of ``res`` is done in Redis; its applied sample ids are unique, as many as
    its scores and the result's ``samples_used``, within ``n_max``, include the chosen one, and
    were all really generated (``generated``: a collection of sample ids)."""
    q = res.question_id
    assert res.status == events_pb2.RESULT_STATUS_DONE, res
    sq = await store.get(q)
    assert sq is not None and sq.status == "done", q
    seen = [o.sample_id for o in sq.observations]
    assert len(seen) == len(set(seen)) == sq.n_scored == res.samples_used <= n_max, q
    assert res.chosen_sample_id in seen, q
    assert set(seen) <= set(generated), f"{q}: scored a sample never generated"
