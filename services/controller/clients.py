"""gRPC clients the controller uses: the generator stream (the lease) and the predictor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from optscale.errors import InvalidArgumentError
from optscale.ports import GenerateRequest, Prior
from optscale.v1 import generator_pb2, generator_pb2_grpc, predictor_pb2, predictor_pb2_grpc
from services.common import tracing
from services.common.convert import params_to_pb, prior_from_pb
from services.common.keepalive import Keepalive
from services.common.prune_convert import prune_spec_to_pb
from services.common.security import Security, open_channel

# Client-side load balancing over every pod behind a headless Service
# (target "dns:///optscale-generator.optscale.svc:50051"): each call picks a pod; a stream
# stays on its pod, so cancelling it reaches the engine that runs its samples. A pod that went
# away is tried again after at most 5 s (gRPC's default backoff grows to 120 s), so a
# restarted one gets work soon after it is back.
CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.enable_retries", 0),
    ("grpc.max_reconnect_backoff_ms", 5000),
]
LEASE_DEADLINE_S = 3600.0  # above the generators' longest lease (connection-age grace 1,800 s)


class GrpcGenerator:
    """Opens ``Generator.Generate`` with ``publish=True``: candidates travel through Kafka;
    this stream only reports which sample ids finished. Closing it aborts the rest.

    Dead peers are noticed two ways: keepalive PINGs (``keepalive``, default from
    ``OPTSCALE_GRPC_KEEPALIVE_*``) fail the streams of a generator that stopped answering
    (SIGSTOPped, frozen node, lost network) with ``UNAVAILABLE`` within interval + timeout, and
    every call has a deadline (``deadline_s``, the controller's
    ``OPTSCALE_CONTROLLER_LEASE_DEADLINE_SECONDS``; 0 = none) for a generator that answers
    PINGs but makes no progress. Either way the lease (``services/controller/lease.py``) asks
    again for the unfinished sample ids — round robin sends them to a live generator — and
    reports them failed (the controller re-dispatches them) after its retries."""

    def __init__(
        self,
        target: str,
        security: Security | None = None,
        *,
        deadline_s: float = LEASE_DEADLINE_S,
        keepalive: Keepalive | None = None,
    ) -> None:
        if not deadline_s >= 0:
            raise InvalidArgumentError("lease deadline_s", deadline_s, "must be >= 0")
        self.deadline_s = deadline_s or None
        ka = Keepalive.from_env() if keepalive is None else keepalive
        self.channel = open_channel(target, security, [*CHANNEL_OPTIONS, *ka.client_options()])
        self.stub = generator_pb2_grpc.GeneratorStub(self.channel)

    async def generate(self, req: GenerateRequest, *, epoch: int) -> AsyncIterator[str]:
        pb = generator_pb2.GenerateRequest(
            question_id=req.question_id,
            prompt=req.prompt,
            k=req.k,
            params=params_to_pb(req.params),
            first_index=req.first_index,
            epoch=epoch,
            publish=True,
        )
        if req.pruning is not None:  # prefix pruning: the rule and the reference at dispatch
            pb.pruning.CopyFrom(prune_spec_to_pb(req.pruning))
        call = self.stub.Generate(
            pb,
            timeout=self.deadline_s,
            metadata=tracing.grpc_metadata(),  # the lease span's context (None: tracing off)
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
