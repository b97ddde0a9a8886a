"""gRPC ``Generator.Generate``: a thin adapter over a generator backend.

The call is the lease: cancelling it (or the caller's connection dropping) cancels this
handler, which closes the backend stream, which aborts every unfinished sample.

With ``publish`` each finished candidate goes to ``optscale.candidates`` and the stream reports
it by reference (``SampleDone``: ids and counts); without it the stream carries the candidate.

A request's ``pruning`` (prefix pruning, :mod:`services.generator.pruning`) aborts judged-out
samples in llama.cpp and sim: they finish ``pruned`` with their prefix score.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from optscale.errors import InvalidArgumentError
from optscale.v1 import generator_pb2, generator_pb2_grpc
from services.common import tracing
from services.common.convert import candidate_to_pb, generate_request_from_pb, sample_done
from services.common.metrics import GEN_INFLIGHT, GEN_QUEUED, GEN_SLOTS, GEN_TOKENS
from services.common.server import streaming
from services.generator.pruning import add_prefix_score, with_step_judge

SERVICE = "optscale.v1.Generator"


class GeneratorServicer(generator_pb2_grpc.GeneratorServicer):
    def __init__(
        self, backend: Any, log: Any, publish: Any = None, max_inflight: int = 256
    ) -> None:
        self.backend = backend
        self.log = log
        self.publish = publish  # async (Candidate) -> None, sends to optscale.candidates
        self.aborted = 0  # samples aborted because their call was cancelled
        # backpressure: calls wait (in order) until their k samples fit under max_inflight
        self.max_inflight = max_inflight
        GEN_SLOTS.set(max_inflight)
        self.inflight = 0
        self.queued = 0  # samples of calls waiting for room
        self._room = asyncio.Condition()

    async def Generate(
        self, request: generator_pb2.GenerateRequest, context: Any
    ) -> AsyncIterator[generator_pb2.GenerateEvent]:
        parent = tracing.from_grpc(context)  # the controller's lease span, when traced
        run = self._run(request, parent)
        async for ev in streaming("generator", "Generate", context, self.log, run):
            yield ev

    async def _run(
        self, request: generator_pb2.GenerateRequest, parent: Any = None
    ) -> AsyncIterator[generator_pb2.GenerateEvent]:
        req = with_step_judge(self.backend, request, generate_request_from_pb(request))
        if request.publish and self.publish is None:
            raise InvalidArgumentError("publish", True, "this generator has no Kafka producer")
        log = self.log.bind(question_id=req.question_id, k=req.k)
        model = str(getattr(self.backend, "model_name", ""))
        # waiting samples are demand too: the autoscaler sees queued + in flight (KEDA)
        self.queued += req.k
        GEN_QUEUED.inc(req.k)
        try:
            async with self._room:  # a call larger than the whole budget runs alone
                await self._room.wait_for(
                    lambda: self.inflight == 0 or self.inflight + req.k <= self.max_inflight
                )
                self.inflight += req.k
        finally:
            self.queued -= req.k
            GEN_QUEUED.dec(req.k)
        inner = self._generate(req, request, log, model, parent)
        try:
            async for ev in inner:
                yield ev
        finally:
            await inner.aclose()  # runs its finally now: aborts unfinished samples
            async with self._room:
                self.inflight -= req.k
                self._room.notify_all()

    async def _generate(
        self,
        req: Any,
        request: generator_pb2.GenerateRequest,
        log: Any,
        model: str,
        parent: Any = None,
    ) -> AsyncGenerator[generator_pb2.GenerateEvent, None]:
        remaining = req.k
        GEN_INFLIGHT.inc(remaining)
        spans = _sample_spans(req, parent)  # one per sample, children of the lease
        stream = self.backend.generate(req)
        try:
            async for s in stream:
                remaining -= 1
                GEN_INFLIGHT.dec()
                GEN_TOKENS.inc(s.completion_tokens)
                log.debug("sample finished", sample_id=s.sample_id, tokens=s.completion_tokens)
                c = candidate_to_pb(s, model_version=model, prompt=req.prompt, epoch=request.epoch)
                add_prefix_score(c, s, req.step_judge)  # a pruned sample's score
                span = spans.pop(s.sample_id, None)
                tracing.end(span, completion_tokens=s.completion_tokens)
                if request.publish and self.publish is not None:
                    with tracing.attached(tracing.context_of(span)):  # its Kafka headers
                        await self.publish(c)  # the text's one trip over Kafka
                    yield generator_pb2.GenerateEvent(done=sample_done(c))  # ids and counts
                else:
                    yield generator_pb2.GenerateEvent(candidate=c)
        finally:
            if remaining:
                self.aborted += remaining
                log.info("aborted unfinished samples", aborted=remaining)
            GEN_INFLIGHT.dec(remaining)
            for span in spans.values():
                tracing.end(span, aborted=True)
            await stream.aclose()


def _sample_spans(req: Any, parent: Any) -> dict[str, Any]:
    """A ``generator.sample`` span per sample id of the call (none when tracing is off)."""
    if not tracing.enabled():
        return {}
    spans = {}
    for i in range(req.k):
        sid = f"{req.question_id}/{req.first_index + i}"
        spans[sid] = tracing.start(
            "generator",
            "generator.sample",
            question_id=req.question_id,
            parent=parent,
            sample_id=sid,
        )
    return spans


def make_backend(cfg: Any) -> Any:
    if cfg.backend == "sim":
        from optscale.engines.generation.sim import Backend as Sim

        return Sim(
            seed=cfg.seed,
            token_delay=cfg.sim_token_delay,
            steps=cfg.sim_steps,
            max_k=cfg.max_k,
            max_tokens=cfg.max_tokens,
        )
    if cfg.backend == "llamacpp":
        from optscale.engines.generation.llamacpp import Backend as Llama

        return Llama(
            cfg.model,
            n_ctx=cfg.n_ctx,
            n_threads=cfg.n_threads or None,
            seed=cfg.seed,
            max_k=cfg.max_k,
            max_tokens=cfg.max_tokens,
        )
    if cfg.backend == "hf":
        from optscale.engines.generation.hf import Backend as Hf

        return Hf(
            cfg.model,
            device=cfg.device,
            n_ctx=cfg.n_ctx,
            n_threads=cfg.n_threads or None,
            seed=cfg.seed,
            max_k=cfg.max_k,
            max_tokens=cfg.max_tokens,
        )
    if cfg.backend == "openai":
        from optscale.engines.generation.openai import Backend as OpenAI

        return OpenAI(
            cfg.model,
            base_url=cfg.openai_base_url or None,
            max_k=cfg.max_k,
            max_tokens=cfg.max_tokens,
        )
    if cfg.backend == "vllm":  # the gpu extra
        from optscale.engines.generation.vllm import Backend as Vllm

        return Vllm(
            cfg.model, n_ctx=cfg.n_ctx, seed=cfg.seed, max_k=cfg.max_k, max_tokens=cfg.max_tokens
        )
    raise InvalidArgumentError("backend", cfg.backend, "one of llamacpp, hf, vllm, openai, sim")
