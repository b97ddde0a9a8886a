"""``python -m services.verifier [--port 50052]`` (env OPTSCALE_VERIFIER_*)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from prometheus_client import start_http_server

from optscale.v1 import verifier_pb2_grpc
from services.common.config import from_env
from services.common.logging import configure
from services.common.security import Security
from services.common.server import Server, serve_forever
from services.verifier.config import VerifierConfig
from services.verifier.server import SERVICE, VerifierServicer, make_backend


async def amain(cfg: VerifierConfig) -> int:
    """Serve until SIGTERM (returns 0) or until the Kafka worker dies (returns 1)."""
    log = configure("verifier", cfg.log_level)
    servicer = VerifierServicer(
        make_backend(cfg),
        log,
        max_batch=cfg.max_batch,
        max_wait=cfg.max_wait_ms / 1000,
        max_candidates=cfg.max_candidates,
    )
    server = Server([SERVICE], Security.from_env())
    verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, server.server)
    if cfg.metrics_port:
        start_http_server(cfg.metrics_port)
    if not cfg.kafka_bootstrap:
        return await serve_forever(server, cfg.host, cfg.port, cfg.grace_seconds, log)
    from services.common import kafka
    from services.verifier.worker import run_verifier

    producer = await kafka.producer(cfg.kafka_bootstrap)
    consumer = await kafka.consumer(
        cfg.kafka_bootstrap,
        kafka.CANDIDATES,
        cfg.group,
        session_timeout_ms=cfg.session_timeout_ms,
        heartbeat_interval_ms=cfg.heartbeat_interval_ms,
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_verifier(
            servicer.backend,
            consumer,
            producer,
            stop=stop,
            max_batch=cfg.max_batch,
            max_wait_ms=int(cfg.max_wait_ms),
            log=log,
        )
    )
    try:
        # a worker that dies (it should never end on its own) turns health NOT_SERVING and
        # the process exits 1, so Kubernetes restarts it instead of leaving it half alive
        watch = {"verifier worker": worker}
        return await serve_forever(server, cfg.host, cfg.port, cfg.grace_seconds, log, watch)
    finally:
        stop.set()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(worker, cfg.grace_seconds)
        await kafka.stop_quietly(consumer, producer)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m services.verifier")
    ap.add_argument("--backend")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--metrics-port", type=int)
    cfg = from_env(VerifierConfig, "verifier", **vars(ap.parse_args()))
    sys.exit(asyncio.run(amain(cfg)))


if __name__ == "__main__":
    main()
