"""gRPC clients the controller uses: the generator stream (the lease) and the predictor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from optscale.ports import GenerateRequest, Prior
from optscale.v1 import generator_pb2, generator_pb2_grpc, predictor_pb2, predictor_pb2_grpc
from services.common.convert import params_to_pb, prior_from_pb
from services.common.security import Security, open_channel

# Client-side load balancing over every pod behind a headless Service
# (target "dns:///optscale-generator.optscale.svc:50051"): each call picks a pod; a stream
# stays on its pod, so cancelling it reaches the engine that runs its samples.
CHANNEL_OPTIONS = [("grpc.lb_policy_name", "round_robin"), ("grpc.enable_retries", 0)]


class GrpcGenerator:
    """Opens ``Generator.Generate`` with ``publish=True``: candidates travel through Kafka;
    this stream only reports which sample ids finished. Closing it aborts the rest."""

    def __init__(self, target: str, security: Security | None = None) -> None:
        self.channel = open_channel(target, security, CHANNEL_OPTIONS)
        self.stub = generator_pb2_grpc.GeneratorStub(self.channel)

    async def generate(self, req: GenerateRequest, *, epoch: int) -> AsyncIterator[str]:
        call = self.stub.Generate(
            generator_pb2.GenerateRequest(
                question_id=req.question_id,
                prompt=req.prompt,
                k=req.k,
                params=params_to_pb(req.params),
                first_index=req.first_index,
                epoch=epoch,
                publish=True,
            )
        )
        try:
            async for ev in call:
                # by reference (SampleDone); a generator from before that sends the candidate
                yield ev.done.sample_id if ev.HasField("done") else ev.candidate.sample_id
        finally:
            call.cancel()

    async def close(self) -> None:
        await self.channel.close(None)


class GrpcPredictor:
    """:class:`optscale.ports.PredictorClient` over ``Predictor.Predict``."""

    def __init__(self, target: str, security: Security | None = None) -> None:
        self.channel = open_channel(target, security, CHANNEL_OPTIONS)
        self.stub = predictor_pb2_grpc.PredictorStub(self.channel)

    async def predict(self, questions: Sequence[str]) -> list[Prior]:
        req = predictor_pb2.PredictRequest(questions=list(questions))
        r = await self.stub.Predict(req, timeout=30)
        return [prior_from_pb(p) for p in r.priors]

    async def close(self) -> None:
        await self.channel.close(None)
