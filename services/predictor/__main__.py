"""``python -m services.predictor [--port 50053]`` (env OPTSCALE_PREDICTOR_*)."""

from __future__ import annotations

import argparse
import asyncio

from prometheus_client import start_http_server

from optscale.v1 import predictor_pb2_grpc
from services.common.config import from_env
from services.common.logging import configure
from services.common.security import Security
from services.common.server import Server, serve_forever
from services.predictor.config import PredictorConfig
from services.predictor.server import SERVICE, PredictorServicer, make_backend


async def amain(cfg: PredictorConfig) -> None:
    log = configure("predictor", cfg.log_level)
    servicer = PredictorServicer(
        make_backend(cfg),
        log,
        max_batch=cfg.max_batch,
        max_wait=cfg.max_wait_ms / 1000,
        max_questions=cfg.max_questions,
        max_chars=cfg.max_chars,
    )
    server = Server([SERVICE], Security.from_env())
    predictor_pb2_grpc.add_PredictorServicer_to_server(servicer, server.server)
    if cfg.metrics_port:
        start_http_server(cfg.metrics_port)
    await serve_forever(server, cfg.host, cfg.port, cfg.grace_seconds, log)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m services.predictor")
    ap.add_argument("--backend")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--metrics-port", type=int)
    cfg = from_env(PredictorConfig, "predictor", **vars(ap.parse_args()))
    asyncio.run(amain(cfg))


if __name__ == "__main__":
    main()
