"""Prior predictor: training lowers the loss, save/load round trip, serving, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from optscale.errors import InvalidArgumentError
from optscale.v1 import predictor_pb2, predictor_pb2_grpc
from services.predictor import model as m
from services.predictor.server import DEFAULT_MODEL_DIR, SERVICE, PredictorServicer

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def encoder() -> m.Encoder:
    return m.Encoder("minilm")


@pytest.fixture(scope="module")
def tiny(shared_datasets: Path) -> list[m.Example]:
    return m.read_targets(shared_datasets / "optscale_prior_targets.jsonl", "train")[:60]


def test_labels_moment_match_and_raw() -> None:
    ex = [m.Example("a", "q", 0.5, 0.1)]
    ((mu, sd),) = m.labels(ex, "moments")
    assert abs(mu - 0.5) < 0.01 and abs(sd - 0.1) < 0.01
    assert m.labels(ex, "raw") == [(0.5, 0.1)]
    with pytest.raises(InvalidArgumentError):
        m.labels(ex, "nope")


def test_training_lowers_the_loss_and_round_trips(
    tiny: list[m.Example], encoder: m.Encoder, tmp_path: Path
) -> None:
    import torch

    cfg = m.TrainConfig(epochs=1, seed=0, patience=1000)
    heads0, _ = m.train(tiny, cfg, encoder=encoder, log=lambda *_: None)
    heads, meta = m.train(
        tiny,
        m.TrainConfig(epochs=80, patience=1000),
        tmp_path,
        encoder=encoder,
        log=lambda *_: None,
    )
    x = encoder([e.text for e in tiny])
    y = torch.tensor(m.labels(tiny, "moments"), dtype=torch.float32)
    with torch.no_grad():
        assert float(m._loss(*heads(x), y)) < float(m._loss(*heads0(x), y))
    loaded = m.TrainedPredictor(tmp_path, encoder=encoder)
    qs = [e.text for e in tiny[:5]]
    with torch.no_grad():
        mu, sd = heads(encoder(qs))
    assert loaded.predict_sync(qs) == list(zip(mu.tolist(), sd.tolist(), strict=True))
    assert loaded.meta.version == meta.version and all(s > 0 for _, s in loaded.predict_sync(qs))


def test_bad_questions(encoder: m.Encoder) -> None:
    with pytest.raises(InvalidArgumentError, match=r"questions\[1\]"):
        encoder(["ok", ""])
    with pytest.raises(InvalidArgumentError, match="longer than"):
        encoder(["x" * (m.MAX_CHARS + 1)])


async def test_service_serves_the_committed_checkpoint(
    serve: Any, log: Any, encoder: m.Encoder
) -> None:
    backend = m.TrainedPredictor(DEFAULT_MODEL_DIR, encoder=encoder)
    servicer = PredictorServicer(backend, log)
    ch = await serve(
        [SERVICE], lambda s: predictor_pb2_grpc.add_PredictorServicer_to_server(servicer, s)
    )
    stub = predictor_pb2_grpc.PredictorStub(ch)
    r = await stub.Predict(predictor_pb2.PredictRequest(questions=["What is 1+1?", "Prove it."]))
    assert len(r.priors) == 2 and all(p.sigma_bar > 0 for p in r.priors)
    assert r.priors[0].model_version == backend.meta.version and backend.meta.version.startswith(
        "heads-"
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(predictor_pb2.PredictRequest(questions=["   "]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
