"""Tokens the engine decodes after a Generate call is cancelled, over real gRPC.

    .venv/bin/python benchmarks/generator_cancel.py [--model smollm2] [--trials 10]
    .venv-vllm/bin/python benchmarks/generator_cancel.py --backend vllm [--trials 10]

Each trial opens ``Generator.Generate`` (k=4, max_tokens=400) on a loopback grpc.aio server
(``GeneratorServicer`` over the backend ``make_backend`` builds), cancels the call after a
random number of decoded tokens, waits until the engine is idle and counts the tokens it
decoded after the cancel (received by the backend after the cancel, plus for vllm what the
engine decoded after the abort). Prints the ratios tokens-after-cancel / tokens-before-cancel
(target <= 1%; it includes the engine step in flight when the call is cancelled) and
tokens-decoded-after-the-abort (engine side) / tokens-before-cancel.

* ``llamacpp`` (default): the engine thread's own count of tokens decoded after an abort.
* ``vllm``: ``AsyncLLM`` (``.venv-vllm``: vLLM's CPU build; ``--model`` a Hugging Face
  directory, default the SmolLM2 one ``scripts/make_test_models.py`` makes; engine flags from
  ``VLLM_ENGINE_ARGS``, default ``--enforce-eager --max-num-seqs 8``). Counted engine side:
  every engine step's outputs for the aborted request ids (``Backend.watch_engine_tokens``).
  "Idle" = no unfinished request in the engine and a fresh 4-token request has run to its
  end after the abort, so any step in flight at the abort has been counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
from typing import Any

import grpc

from optscale.ports import GenerateRequest
from optscale.types import SamplingParams
from optscale.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from services.common.logging import configure
from services.common.server import Server
from services.generator.config import GeneratorConfig
from services.generator.server import SERVICE, GeneratorServicer, make_backend

VLLM_DEFAULT_FLAGS = "--enforce-eager --max-num-seqs 8"


def _backend(name: str, model: str | None) -> Any:
    if name == "vllm":
        os.environ.setdefault("VLLM_ENGINE_ARGS", VLLM_DEFAULT_FLAGS)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        if model is None:
            from optscale.models import resolve_dir

            model = resolve_dir("smollm2")
    cfg = GeneratorConfig(
        backend=name, model=model or "smollm2", n_ctx=2048, max_k=8, max_tokens=1024
    )
    backend = make_backend(cfg)
    if name == "vllm":
        backend.watch_engine_tokens()
    return backend


async def _idle(name: str, backend: Any) -> None:
    """Wait until the engine decodes nothing more for the cancelled call."""
    await asyncio.sleep(0.05)
    if name == "llamacpp":
        await asyncio.get_running_loop().run_in_executor(backend._pool, lambda: None)
        return
    while backend.engine.output_processor.get_num_unfinished_requests():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    probe = GenerateRequest("idle-probe", "Hi", 1, SamplingParams(max_tokens=4, seed=0))
    _ = [s async for s in backend.generate(probe)]


async def main(name: str, model: str | None, trials: int, seed: int) -> None:
    backend = _backend(name, model)
    server = Server([SERVICE])
    servicer = GeneratorServicer(backend, configure("bench", "warning"))
    generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, server.server)
    port = await server.start("127.0.0.1", 0)
    rng = random.Random(seed)
    before = after = engine_after = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = generator_pb2_grpc.GeneratorStub(ch)
        for t in range(trials):
            req = generator_pb2.GenerateRequest(
                question_id=f"b{t}",
                prompt="Write a long story about a lighthouse keeper.",
                k=4,
                params=common_pb2.SamplingParams(
                    temperature=0.7, top_p=0.95, max_tokens=400, seed=t
                ),
            )
            start, after_start = backend.tokens_total, backend.tokens_after_abort
            target = start + rng.randint(20, 300)
            call = stub.Generate(req)
            reader = asyncio.create_task(call.read())
            while backend.tokens_total < target and not reader.done():  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            at_cancel = backend.tokens_total
            call.cancel()
            reader.cancel()
            await _idle(name, backend)
            engine_after += backend.tokens_after_abort - after_start
            before += at_cancel - start
            after += backend.tokens_total - at_cancel  # reached the backend after the cancel
            if name == "vllm":  # and, engine side, after the abort (dropped by vLLM's frontend)
                after += backend.tokens_after_abort - after_start
    await server.stop(0)
    backend.close()
    print(f"backend {name}, trials {trials}, model {backend.model_name}")
    print(f"tokens decoded before cancel: {before}")
    print(f"tokens decoded after cancel:  {after} (engine-side count after abort: {engine_after})")
    print(f"after cancel / before: {after / max(1, before):.2%} (target <= 1%)")
    print(f"after abort / before:  {engine_after / max(1, before):.2%} (engine side)")


if __name__ == "__main__":  # vLLM's engine processes re-import this module
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["llamacpp", "vllm"], default="llamacpp")
    ap.add_argument("--model", default=None, help="default: smollm2 (its HF directory for vllm)")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    asyncio.run(main(a.backend, a.model, a.trials, a.seed))
