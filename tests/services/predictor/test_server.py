"""Predictor service over real gRPC: the documented constant prior, bad input, reflection."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from optscale.errors import InvalidArgumentError
from optscale.v1 import predictor_pb2, predictor_pb2_grpc
from services.predictor.server import SERVICE, ConstantPrior, PredictorServicer


async def _stub(serve: Any, log: Any) -> tuple[predictor_pb2_grpc.PredictorStub, Any]:
    servicer = PredictorServicer(ConstantPrior(0.9, 0.05), log, max_questions=4, max_chars=100)
    ch = await serve(
        [SERVICE], lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(servicer, s)
    )
    return predictor_pb2_grpc.PredictorStub(ch), ch


async def test_predicts_one_prior_per_question_and_names_the_model(serve: Any, log: Any) -> None:
    stub, ch = await _stub(serve, log)
    r = await stub.Predict(predictor_pb2.PredictRequest(questions=["a?", "b?"]))
    assert [(p.mu_bar, p.sigma_bar) for p in r.priors] == [(0.9, 0.05)] * 2
    assert r.priors[0].model_version == "constant:mu=0.9,sigma=0.05"
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    names = [
        s.name
        async for resp in refl.ServerReflectionInfo(iter([req]))
        for s in resp.list_services_response.service
    ]
    assert SERVICE in names and "grpc.health.v1.Health" in names


@pytest.mark.parametrize(
    ("qs", "field"),
    [
        ([], "questions"),
        (["a"] * 5, "questions"),
        ([""], "questions[0]"),
        (["ok", "x" * 101], "questions[1]"),
    ],
)
async def test_bad_input(serve: Any, log: Any, qs: list[str], field: str) -> None:
    stub, _ = await _stub(serve, log)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(predictor_pb2.PredictRequest(questions=qs))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


def test_constant_prior_validates() -> None:
    with pytest.raises(InvalidArgumentError):
        ConstantPrior(0.9, 0.0)
