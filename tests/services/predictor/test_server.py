"""Predictor service over real gRPC: the documented constant prior, bad input, reflection."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from optscale.errors import InvalidArgumentError
from optscale.ports import Prior
from optscale.stats import DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA, GaussianPrior
from optscale.v1 import common_pb2, predictor_pb2, predictor_pb2_grpc
from services.common.convert import gaussian_prior_from_pb, prior_from_pb
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
    # the constant prior measured no error: it sends the default widths, explicitly
    assert all(p.HasField("tau_mu") and p.HasField("tau_sigma") for p in r.priors)
    assert prior_from_pb(r.priors[0]) == Prior(0.9, 0.05, "constant:mu=0.9,sigma=0.05")
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


class _Widths:
    async def predict(self, questions: list[str]) -> list[Prior]:
        return [Prior(0.5, 0.2, "w", tau_mu=0.43, tau_sigma=0.09) for _ in questions]


async def test_the_prior_widths_travel_over_grpc(serve: Any, log: Any) -> None:
    servicer = PredictorServicer(_Widths(), log)
    ch = await serve(
        [SERVICE], lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(servicer, s)
    )
    r = await predictor_pb2_grpc.PredictorStub(ch).Predict(
        predictor_pb2.PredictRequest(questions=["a?"])
    )
    assert prior_from_pb(r.priors[0]) == Prior(0.5, 0.2, "w", 0.43, 0.09)
    assert gaussian_prior_from_pb(r.priors[0]) == GaussianPrior(0.5, 0.2, 0.43, 0.09)


def test_a_prior_without_widths_gets_the_defaults_and_bad_widths_name_the_field() -> None:
    old = common_pb2.Prior(mu_bar=0.5, sigma_bar=0.2, model_version="old")
    assert prior_from_pb(old) == Prior(0.5, 0.2, "old", DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA)
    with pytest.raises(InvalidArgumentError) as err:
        gaussian_prior_from_pb(common_pb2.Prior(mu_bar=0.5, sigma_bar=0.2, tau_sigma=0.0))
    assert err.value.field == "tau_sigma"


def test_constant_prior_validates() -> None:
    with pytest.raises(InvalidArgumentError):
        ConstantPrior(0.9, 0.0)
