"""Verifier service over real gRPC: batched scoring, step scores, bad input."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import grpc
import pytest

from optscale.engines.scoring.confidence import Backend
from optscale.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from services.verifier.server import SERVICE, VerifierServicer


def _cand(i: int, steps: tuple[float, ...] = (0.9, 0.5)) -> common_pb2.Candidate:
    return common_pb2.Candidate(
        question_id="q",
        sample_id=f"q/{i}",
        text="t",
        prompt="p",
        step_logprobs=[math.log(x) for x in steps],
    )


async def _stub(serve: Any, log: Any, **kw: Any) -> tuple[verifier_pb2_grpc.VerifierStub, Any]:
    sizes: list[int] = []
    servicer = VerifierServicer(Backend(), log, **kw)
    inner = servicer.batcher._on_batch
    servicer.batcher._on_batch = lambda n: (sizes.append(n), inner and inner(n))
    ch = await serve(
        [SERVICE], lambda s: verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, s)
    )
    return verifier_pb2_grpc.VerifierStub(ch), sizes


async def test_scores_in_order_with_step_scores_and_micro_batches(serve: Any, log: Any) -> None:
    stub, sizes = await _stub(serve, log, max_batch=8, max_wait=0.05)
    r = await stub.Score(verifier_pb2.ScoreRequest(candidates=[_cand(0), _cand(1, (0.2,))]))
    assert [s.candidate.sample_id for s in r.scored] == ["q/0", "q/1"]
    assert r.scored[0].score == pytest.approx(0.7) and r.scored[1].score == pytest.approx(0.2)
    assert list(r.scored[0].step_scores) == pytest.approx([0.9, 0.5])
    # concurrent single-candidate calls share batches
    sizes.clear()
    calls = [stub.Score(verifier_pb2.ScoreRequest(candidates=[_cand(i)])) for i in range(6)]
    await asyncio.gather(*calls)
    assert sum(sizes) == 6 and max(sizes) > 1


@pytest.mark.parametrize(
    ("cands", "field"),
    [
        ([], "candidates"),
        ([_cand(0)] * 300, "candidates"),
        ([common_pb2.Candidate(sample_id="")], "sample_id"),
        ([common_pb2.Candidate(sample_id="q/0", step_logprobs=[float("nan")])], "step_logprobs"),
        ([common_pb2.Candidate(sample_id="q/0", mean_logprob=float("inf"))], "mean_logprob"),
        ([common_pb2.Candidate(sample_id="q/0")], "sample"),
    ],
)
async def test_bad_input(serve: Any, log: Any, cands: list[Any], field: str) -> None:
    stub, _ = await _stub(serve, log)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Score(verifier_pb2.ScoreRequest(candidates=cands))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")
    ok = await stub.Score(verifier_pb2.ScoreRequest(candidates=[_cand(0)]))
    assert len(ok.scored) == 1


async def test_sim_backend_from_config_over_grpc(serve: Any, log: Any) -> None:
    from services.verifier.config import VerifierConfig
    from services.verifier.server import make_backend

    servicer = VerifierServicer(make_backend(VerifierConfig(backend="sim", seed=2)), log)
    ch = await serve(
        [SERVICE], lambda s: verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, s)
    )
    stub = verifier_pb2_grpc.VerifierStub(ch)
    req = verifier_pb2.ScoreRequest(candidates=[_cand(i) for i in range(5)])
    a, b = await stub.Score(req), await stub.Score(req)
    assert [s.score for s in a.scored] == [s.score for s in b.scored]
    assert all(0 <= s.score <= 1 and len(s.step_scores) == 3 for s in a.scored)
    with pytest.raises(Exception, match="backend"):
        make_backend(VerifierConfig(backend="orm"))


class _OneBadApple:
    """Confidence scores, except that a batch holding ``q/13`` raises (a non-OptScaleError
    from the engine, e.g. a CUDA OOM on that candidate's length)."""

    name = model_name = "bad-apple"

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def score_batch(self, items: Any) -> Any:
        self.sizes.append(len(items))
        if any(s.sample_id == "q/13" for _, s in items):
            raise RuntimeError("CUDA out of memory")
        return await Backend().score_batch(items)


async def test_one_bad_candidate_fails_only_its_own_call(serve: Any, log: Any) -> None:
    engine = _OneBadApple()
    servicer = VerifierServicer(engine, log, max_batch=4, max_wait=1.0)
    ch = await serve(
        [SERVICE], lambda s: verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, s)
    )
    stub = verifier_pb2_grpc.VerifierStub(ch)
    calls = [stub.Score(verifier_pb2.ScoreRequest(candidates=[_cand(i)])) for i in (1, 13, 2, 3)]
    good1, bad, good2, good3 = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(bad, grpc.aio.AioRpcError) and "CUDA" in (bad.details() or "")
    for r, i in ((good1, 1), (good2, 2), (good3, 3)):
        assert not isinstance(r, BaseException), r
        assert [s.candidate.sample_id for s in r.scored] == [f"q/{i}"]
    assert max(engine.sizes) > 1  # they did share a micro-batch
