"""Prior predictor: training lowers the loss, save/load round trip, serving, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from optscale.errors import DataError, InvalidArgumentError
from optscale.stats import DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA
from optscale.v1 import predictor_pb2, predictor_pb2_grpc
from services.predictor import model as m
from services.predictor.server import DEFAULT_MODEL_DIR, SERVICE, PredictorServicer
from services.predictor.taus import measure_taus

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


def test_training_records_the_dev_rmse_as_prior_widths(
    tiny: list[m.Example], encoder: m.Encoder, tmp_path: Path
) -> None:
    import json
    import math

    cfg = m.TrainConfig(epochs=20, patience=1000)
    _, meta = m.train(tiny, cfg, tmp_path, encoder=encoder, log=lambda *_: None)
    # independently: the run's dev split, the saved heads' predictions, the RMSE by hand
    _, dev = m.split_dev(tiny, cfg.dev_fraction, cfg.seed)
    loaded = m.TrainedPredictor(tmp_path, encoder=encoder)
    pred, true = loaded.predict_sync([e.text for e in dev]), m.labels(dev, "moments")
    for j, tau in enumerate((meta.tau_mu, meta.tau_sigma)):
        sq = sum((p[j] - t[j]) ** 2 for p, t in zip(pred, true, strict=True))
        assert tau == pytest.approx(math.sqrt(sq / len(dev)), rel=1e-5)
    assert f"{len(dev)} dev questions" in meta.tau_source
    assert loaded.taus == pytest.approx((meta.tau_mu, meta.tau_sigma))
    # measured afterwards on the same split: the same widths; other examples are refused
    again = measure_taus(tmp_path, tiny, encoder=encoder)
    assert (again.tau_mu, again.tau_sigma) == pytest.approx((meta.tau_mu, meta.tau_sigma))
    with pytest.raises(DataError, match="training data"):
        measure_taus(tmp_path, tiny[:40], encoder=encoder)
    # a checkpoint saved before the widths existed serves the defaults
    d = json.loads((tmp_path / "predictor.json").read_text())
    for k in ("tau_mu", "tau_sigma", "tau_source"):
        del d[k]
    (tmp_path / "predictor.json").write_text(json.dumps(d))
    assert m.TrainedPredictor(tmp_path, encoder=encoder).taus == (DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA)


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
    # the committed checkpoint's measured widths (its predictor.json) come with every prior
    tau_mu, tau_sigma = backend.meta.tau_mu, backend.meta.tau_sigma
    assert tau_mu is not None and tau_sigma is not None and backend.meta.tau_source
    assert all((p.tau_mu, p.tau_sigma) == (tau_mu, tau_sigma) for p in r.priors)
    assert (tau_mu, tau_sigma) == pytest.approx(
        (backend.meta.dev["mu_rmse"], backend.meta.dev["sigma_rmse"])
    )
    assert r.priors[0].model_version == backend.meta.version and backend.meta.version.startswith(
        "heads-"
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Predict(predictor_pb2.PredictRequest(questions=["   "]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
