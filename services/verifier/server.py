"""gRPC ``Verifier.Score``: validates candidates, scores them through a micro-batcher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optscale.errors import InvalidArgumentError
from optscale.types import GeneratedSample, ScoredSample
from optscale.v1 import verifier_pb2, verifier_pb2_grpc
from services.common.batcher import MicroBatcher
from services.common.convert import candidate_from_pb, scored_to_pb
from services.common.metrics import VERIFIER_BATCH
from services.common.server import unary

SERVICE = "optscale.v1.Verifier"


class VerifierServicer(verifier_pb2_grpc.VerifierServicer):
    def __init__(
        self,
        backend: Any,
        log: Any,
        *,
        max_batch: int = 16,
        max_wait: float = 0.005,
        max_candidates: int = 256,
    ) -> None:
        self.backend = backend
        self.log = log
        self.max_candidates = max_candidates
        self.version = str(getattr(backend, "model_name", backend.name))
        self.batcher: MicroBatcher[tuple[str, GeneratedSample], ScoredSample] = MicroBatcher(
            self._score, max_batch=max_batch, max_wait=max_wait, on_batch=VERIFIER_BATCH.observe
        )

    async def _score(self, items: Sequence[tuple[str, GeneratedSample]]) -> list[ScoredSample]:
        return list(await self.backend.score_batch(items))

    async def Score(
        self, request: verifier_pb2.ScoreRequest, context: Any
    ) -> verifier_pb2.ScoreResponse:
        async def call() -> verifier_pb2.ScoreResponse:
            n = len(request.candidates)
            if not 1 <= n <= self.max_candidates:
                raise InvalidArgumentError(
                    "candidates", n, f"need 1 to {self.max_candidates} candidates"
                )
            samples = [candidate_from_pb(c) for c in request.candidates]
            for s in samples:  # fail the request, not a shared batch
                check = getattr(self.backend, "score_one", None)
                if check is not None:
                    check(s)
            items = [(c.prompt, s) for c, s in zip(request.candidates, samples, strict=True)]
            scored = await self.batcher.submit_many(items)
            return verifier_pb2.ScoreResponse(
                scored=[
                    scored_to_pb(s, c, self.version)
                    for s, c in zip(scored, request.candidates, strict=True)
                ]
            )

        return await unary("verifier", "Score", context, self.log, call)


def make_backend(cfg: Any) -> Any:
    if cfg.backend == "confidence":
        from optscale.engines.scoring.confidence import Backend

        return Backend(cfg.aggregation)
    if cfg.backend == "sim":
        from optscale.engines.scoring.sim import Backend as Sim

        return Sim(cfg.seed, delay=cfg.sim_delay, per_sample=cfg.sim_per_sample)
    if cfg.backend == "prm":  # a GPU pool
        from optscale.engines.scoring.prm import Backend as Prm

        return Prm(
            cfg.model or "Qwen/Qwen2.5-Math-PRM-7B",
            aggregation=cfg.aggregation,
            max_length=cfg.max_length,
            batch_size=cfg.max_batch,
            device=cfg.device or None,
        )
    if cfg.backend == "vllm":  # the gpu extra: the same protocol on vLLM's pooling runner
        from optscale.engines.scoring.vllm_prm import Backend as VllmPrm

        return VllmPrm(
            cfg.model or "Qwen/Qwen2.5-Math-PRM-7B",
            aggregation=cfg.aggregation,
            max_length=cfg.max_length,
            batch_size=cfg.max_batch,
            step_tag_id=cfg.step_tag_id,
            engine_args=cfg.vllm_engine_args,
        )
    raise InvalidArgumentError("backend", cfg.backend, "one of confidence, sim, prm, vllm")
