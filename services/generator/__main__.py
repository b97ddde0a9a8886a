"""``python -m services.generator [--backend sim] [--port 50051]`` (env OPTSCALE_GENERATOR_*)."""

from __future__ import annotations

import argparse
import asyncio

from prometheus_client import start_http_server

from optscale.v1 import generator_pb2_grpc
from services.common.config import from_env
from services.common.logging import configure
from services.common.server import Server, serve_forever
from services.generator.config import GeneratorConfig
from services.generator.server import SERVICE, GeneratorServicer, make_backend


async def amain(cfg: GeneratorConfig) -> None:
    log = configure("generator", cfg.log_level)
    backend = make_backend(cfg)
    server = Server([SERVICE])
    servicer = GeneratorServicer(backend, log)
    generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, server.server)
    if cfg.metrics_port:
        start_http_server(cfg.metrics_port)
    try:
        await serve_forever(server, cfg.host, cfg.port, cfg.grace_seconds, log)
    finally:
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
