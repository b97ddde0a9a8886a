"""``python -m services.generator [--backend sim] [--port 50051]`` (env OPTSCALE_GENERATOR_*)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from prometheus_client import start_http_server

from optscale.v1 import generator_pb2_grpc
from services.common import tracing
from services.common.config import from_env
from services.common.logging import configure
from services.common.security import Security
from services.common.server import Server, serve_forever
from services.generator.config import GeneratorConfig
from services.generator.server import SERVICE, GeneratorServicer, make_backend


async def amain(cfg: GeneratorConfig) -> None:
    log = configure("generator", cfg.log_level)
    backend = make_backend(cfg)
    server = Server([SERVICE], Security.from_env())
    producer = None
    publish = None
    if cfg.kafka_bootstrap:
        from services.common import kafka

        producer = await kafka.producer(cfg.kafka_bootstrap)

        async def publish(c: Any) -> None:
            await producer.send_and_wait(
                kafka.CANDIDATES,
                c.SerializeToString(),
                key=c.question_id.encode(),
                headers=tracing.kafka_headers(),  # the sample's span (None: tracing off)
            )

    servicer = GeneratorServicer(backend, log, publish, max_inflight=cfg.max_inflight)
    generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, server.server)
    if cfg.metrics_port:
        start_http_server(cfg.metrics_port)
    try:
        await serve_forever(server, cfg.host, cfg.port, cfg.grace_seconds, log)
    finally:
        if producer is not None:
            await producer.stop()
        close_async = getattr(backend, "close_async", None)
        if close_async is not None:
            await close_async()
        close = getattr(backend, "close", None)
        if close is not None:
            close()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m services.generator")
    ap.add_argument("--backend")
    ap.add_argument("--model")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--metrics-port", type=int)
    a = ap.parse_args()
    cfg = from_env(GeneratorConfig, "generator", **vars(a))
    asyncio.run(amain(cfg))


if __name__ == "__main__":
    main()
