"""gRPC ``Predictor.Predict``: per-question prior (mu_bar, sigma_bar) for OptScale^t, with the
prior's widths (tau_mu, tau_sigma): the trained checkpoint's measured dev RMSE.

Backend ``constant`` serves one documented prior for every question and says so in
``model_version`` (``constant:mu=..,sigma=..``), with the default widths; a trained predictor
replaces it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optscale.errors import InvalidArgumentError
from optscale.ports import Prior
from optscale.v1 import common_pb2, predictor_pb2, predictor_pb2_grpc
from services.common.batcher import MicroBatcher
from services.common.metrics import PREDICTOR_BATCH
from services.common.server import unary

SERVICE = "optscale.v1.Predictor"


class ConstantPrior:
    name = "constant"

    def __init__(self, mu_bar: float, sigma_bar: float) -> None:
        if not (math.isfinite(mu_bar) and math.isfinite(sigma_bar) and sigma_bar > 0):
            raise InvalidArgumentError("prior", (mu_bar, sigma_bar), "need finite mu, sigma > 0")
        self.prior = Prior(mu_bar, sigma_bar, f"constant:mu={mu_bar:g},sigma={sigma_bar:g}")

    async def predict(self, questions: Sequence[str]) -> list[Prior]:
        return [self.prior for _ in questions]


class PredictorServicer(predictor_pb2_grpc.PredictorServicer):
    def __init__(
        self,
        backend: Any,
        log: Any,
        *,
        max_batch: int = 32,
        max_wait: float = 0.005,
        max_questions: int = 256,
        max_chars: int = 32_000,
    ) -> None:
        self.backend = backend
        self.log = log
        self.max_questions = max_questions
        self.max_chars = max_chars
        self.batcher: MicroBatcher[str, Prior] = MicroBatcher(
            self.backend.predict,
            max_batch=max_batch,
            max_wait=max_wait,
            on_batch=PREDICTOR_BATCH.observe,
        )

    async def Predict(
        self, request: predictor_pb2.PredictRequest, context: Any
    ) -> predictor_pb2.PredictResponse:
        async def call() -> predictor_pb2.PredictResponse:
            qs = list(request.questions)
            if not 1 <= len(qs) <= self.max_questions:
                raise InvalidArgumentError(
                    "questions", len(qs), f"need 1 to {self.max_questions} questions"
                )
            for i, q in enumerate(qs):
                if not q.strip() or len(q) > self.max_chars:
                    why = f"must be 1 to {self.max_chars} characters"
                    raise InvalidArgumentError(f"questions[{i}]", f"<{len(q)} chars>", why)
            priors = await self.batcher.submit_many(qs)
            return predictor_pb2.PredictResponse(
                priors=[
                    common_pb2.Prior(
                        mu_bar=p.mu_bar,
                        sigma_bar=p.sigma_bar,
                        model_version=p.model_version,
                        tau_mu=p.tau_mu,
                        tau_sigma=p.tau_sigma,
                    )
                    for p in priors
                ]
            )

        return await unary("predictor", "Predict", context, self.log, call)


DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default"


def make_backend(cfg: Any) -> Any:
    if cfg.backend == "constant":
        return ConstantPrior(cfg.mu_bar, cfg.sigma_bar)
    if cfg.backend == "trained":
        from services.predictor.model import TrainedPredictor

        return TrainedPredictor(cfg.model_dir or DEFAULT_MODEL_DIR)
    raise InvalidArgumentError("backend", cfg.backend, "one of trained, constant")
