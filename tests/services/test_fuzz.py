"""Fuzzing every unary/streaming method with malformed and extreme inputs: each call ends with
OK or a client-error status (INVALID_ARGUMENT, RESOURCE_EXHAUSTED), never INTERNAL or a hang."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.scoring.confidence import Backend as Confidence
from optscale.v1 import (
    common_pb2,
    generator_pb2,
    generator_pb2_grpc,
    predictor_pb2,
    predictor_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)
from services.common.logging import configure
from services.common.server import Server
from services.generator.server import GeneratorServicer
from services.predictor.server import ConstantPrior, PredictorServicer
from services.verifier.server import VerifierServicer

OK = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
texts = st.one_of(
    st.text(max_size=50),
    st.just(""),
    st.just("x" * 40_000),
    st.text(alphabet="\u0000\u202e\U0001f600é漢", max_size=20),
)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(-0.0))
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Running:
    """The three servers in an event loop on a background thread; a sync client drives them."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    async def _start(self) -> int:
        log = configure("fuzz", "critical")
        self.server = Server(["fuzz"])
        generator_pb2_grpc.add_GeneratorServicer_to_server(
            GeneratorServicer(Sim(max_k=16), log), self.server.server
        )
        verifier_pb2_grpc.add_VerifierServicer_to_server(
            VerifierServicer(Confidence(), log), self.server.server
        )
        predictor_pb2_grpc.add_PredictorServicer_to_server(
            PredictorServicer(ConstantPrior(0.9, 0.05), log), self.server.server
        )
        return await self.server.start("127.0.0.1", 0)

    def code(self, fn: Any) -> grpc.StatusCode:
        try:
            fn()
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def srv() -> Any:
    r = Running()
    yield r
    r.channel.close()
    asyncio.run_coroutine_threadsafe(r.server.stop(0), r.loop).result(10)
    r.loop.call_soon_threadsafe(r.loop.stop)


@SETTINGS
@given(
    qid=texts,
    prompt=texts,
    k=st.integers(-5, 10**6),
    t=floats,
    p=floats,
    mt=st.integers(0, 2**32 - 1),
    first=st.integers(0, 2**32 - 1),
)
def test_generate(
    srv: Any, qid: str, prompt: str, k: int, t: float, p: float, mt: int, first: int
) -> None:
    stub = generator_pb2_grpc.GeneratorStub(srv.channel)
    req = generator_pb2.GenerateRequest(
        question_id=qid,
        prompt=prompt,
        k=max(0, min(k, 2**32 - 1)),
        first_index=first,
        params=common_pb2.SamplingParams(temperature=t, top_p=p, max_tokens=mt),
    )
    assert srv.code(lambda: list(stub.Generate(req, timeout=20))) in OK


@SETTINGS
@given(ids=st.lists(texts, max_size=5), lps=st.lists(floats, max_size=5), mean=floats)
def test_score(srv: Any, ids: list[str], lps: list[float], mean: float) -> None:
    stub = verifier_pb2_grpc.VerifierStub(srv.channel)
    cands = [common_pb2.Candidate(sample_id=i, step_logprobs=lps, mean_logprob=mean) for i in ids]
    code = srv.code(lambda: stub.Score(verifier_pb2.ScoreRequest(candidates=cands), timeout=20))
    assert code in OK
    if any(not math.isfinite(x) for x in lps):
        assert code != grpc.StatusCode.OK


@SETTINGS
@given(qs=st.lists(texts, max_size=6))
def test_predict(srv: Any, qs: list[str]) -> None:
    stub = predictor_pb2_grpc.PredictorStub(srv.channel)
    code = srv.code(lambda: stub.Predict(predictor_pb2.PredictRequest(questions=qs), timeout=20))
    assert code in OK


def test_oversized_request_is_refused(srv: Any) -> None:
    stub = predictor_pb2_grpc.PredictorStub(srv.channel)
    huge = predictor_pb2.PredictRequest(questions=["x" * (5 * 1024 * 1024)])
    assert srv.code(lambda: stub.Predict(huge, timeout=20)) == grpc.StatusCode.RESOURCE_EXHAUSTED
