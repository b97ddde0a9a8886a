"""Prefix pruning end to end on a real broker and redis-server (issue 18.4, services path): a
question submitted with ``prune_z`` gets its bad samples cut in the generator at their first
judged step end, scored with their prefix score through the verifier, and its result counts
the pruned samples' tokens (only what they decoded). Sampling one at a time (a batch wave of 1)
makes every dispatch after the second carry a reference of two finished samples."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import pytest

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.generation.sim import ScriptedSample
from optscale.v1 import events_pb2
from services.common import kafka
from services.common.infra import Proc
from services.local import LocalPipeline
from tests.integration.conftest import local_pipeline

pytestmark = pytest.mark.integration

GOOD = (math.log(0.8), math.log(0.85), math.log(0.8))
BAD = (math.log(0.1), math.log(0.9), math.log(0.9))
ENDS = (12, 24, 36)  # tokens by the end of each of three steps


def _script(q: str) -> dict[str, ScriptedSample]:
    """Samples 0 and 1 finish well (confidence ~0.82); 2 and 3 start badly (0.1)."""
    lps = [GOOD, GOOD, BAD, BAD]
    return {f"{q}/{i}": ScriptedSample("42", lp, ENDS) for i, lp in enumerate(lps)}


@pytest.fixture
async def stack(broker: Proc, redis_server: Proc) -> AsyncIterator[LocalPipeline]:
    script = {**_script("pruned-q"), **_script("unpruned-q")}
    async with local_pipeline(broker, redis_server, Sim(token_delay=0.0002, script=script)) as p:
        await p.start_controller()
        yield p


async def _submit(p: LocalPipeline, q: str, options: dict[str, object]) -> None:
    ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
    sub = ev.submitted
    sub.text, sub.reference_answer = f"question {q}", "42"
    sub.policy.policy, sub.policy.n_max = "bon", 4
    sub.policy.options_json = json.dumps(options)
    sub.sampling.max_tokens = 64
    sub.batch_id = sub.batch.batch_id = f"b-{q}"
    sub.batch.token_budget, sub.batch.wave = 1_000_000, 1  # one sample at a time
    await p.producer.send(kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode())
    await p.producer.flush()


async def test_a_question_with_prune_z_gets_its_bad_samples_pruned(stack: LocalPipeline) -> None:
    assert stack.store is not None
    await _submit(stack, "pruned-q", {"prune_z": 1.5})
    await _submit(stack, "unpruned-q", {})
    by_q = {r.question_id: r for r in await stack.results({"pruned-q", "unpruned-q"}, "t-prune")}
    pruned, whole = by_q["pruned-q"], by_q["unpruned-q"]
    assert pruned.status == whole.status == events_pb2.RESULT_STATUS_DONE
    assert pruned.samples_used == whole.samples_used == 4
    # samples 2 and 3 stopped at their first step end (12 tokens), 0 and 1 ran to 36
    assert pruned.completion_tokens == 36 + 36 + 12 + 12
    assert whole.completion_tokens == 4 * 36
    assert pruned.answer == "42" and pruned.chosen_sample_id in ("pruned-q/0", "pruned-q/1")
    sq = await stack.store.get("pruned-q")
    assert sq is not None
    obs = {o.sample_id: o for o in sq.observations}
    for i in (2, 3):  # scored with the prefix score, no answer
        o = obs[f"pruned-q/{i}"]
        assert o.answer is None and o.score == pytest.approx(0.1) and o.tokens == 12
