"""Tokens the CPU engine decodes after a Generate call is cancelled, over real gRPC.

    .venv/bin/python benchmarks/generator_cancel.py [--model smollm2] [--trials 10]

Each trial opens ``Generator.Generate`` (k=4, max_tokens=400) on a loopback grpc.aio server
with the llama.cpp backend, cancels the call after a random number of decoded tokens, waits
until the engine thread is idle and counts the tokens decoded after the cancel. Prints the
ratio tokens-after-cancel / tokens-before-cancel (target <= 1%).
"""

from __future__ import annotations

import argparse
import asyncio
import random

import grpc

from optscale.engines.generation.llamacpp import Backend
from optscale.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from services.common.logging import configure
from services.common.server import Server
from services.generator.server import SERVICE, GeneratorServicer


async def main(model: str, trials: int, seed: int) -> None:
    backend = Backend(model, n_ctx=2048, max_k=8, max_tokens=1024)
    server = Server([SERVICE])
    servicer = GeneratorServicer(backend, configure("bench", "warning"))
    generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, server.server)
    port = await server.start("127.0.0.1", 0)
    rng = random.Random(seed)
    before = after = 0
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
            start = backend.tokens_total
            target = start + rng.randint(20, 300)
            call = stub.Generate(req)
            reader = asyncio.create_task(call.read())
            while backend.tokens_total < target and not reader.done():  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            at_cancel = backend.tokens_total
            call.cancel()
            reader.cancel()
            await asyncio.sleep(0.05)
            await asyncio.get_running_loop().run_in_executor(backend._pool, lambda: None)
            before += at_cancel - start
            after += backend.tokens_total - at_cancel
    await server.stop(0)
    backend.close()
    print(f"trials {trials}, model {backend.model_name}")
    print(f"tokens decoded before cancel: {before}")
    print(
        f"tokens decoded after cancel:  {after} (engine-side count after abort: "
        f"{backend.tokens_after_abort})"
    )
    print(f"after / before: {after / max(1, before):.2%} (target <= 1%)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    asyncio.run(main(a.model, a.trials, a.seed))
