"""N_max up to 256 end to end (real broker and redis-server, sim generator with the real
generators' limit of 64 samples per ``Generate`` call): the controller splits larger
dispatches into several calls, so nothing is refused and every sample counts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from optscale.engines.generation.sim import Backend as Sim
from optscale.v1 import events_pb2
from services.common.infra import Proc
from services.local import LocalPipeline
from tests.integration.conftest import local_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(broker: Proc, redis_server: Proc) -> AsyncIterator[LocalPipeline]:
    async with local_pipeline(broker, redis_server, Sim(seed=5, max_k=64)) as p:
        yield p


@pytest.mark.parametrize(("policy", "n_max"), [("bon", 256), ("optscale0", 256), ("bon", 100)])
async def test_large_n_max_is_answered_from_its_samples(
    stack: LocalPipeline, policy: str, n_max: int
) -> None:
    assert stack.store is not None
    ids = [f"{policy}-{n_max}-{i}" for i in range(3)]
    await stack.submit(ids, policy, n_max, 0.999, max_tokens=64)
    results = await stack.results(set(ids), f"t-results-large-{policy}-{n_max}", wait_s=120)
    assert sorted({r.question_id for r in results}) == sorted(ids)
    for r in results:
        assert r.status == events_pb2.RESULT_STATUS_DONE, (r.question_id, r.stop_reason)
        assert r.samples_failed == 0 and 0 < r.samples_used <= n_max
        if policy == "bon":
            assert r.samples_used == n_max
        sq = await stack.store.get(r.question_id)
        assert sq is not None and sq.n_scored == r.samples_used and sq.n_failed == 0
