"""``python -m services.controller`` (env OPTSCALE_CONTROLLER_*, OPTSCALE_KAFKA_BOOTSTRAP,
OPTSCALE_REDIS_URL): the Kafka consumer loop plus the gRPC client API in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from prometheus_client import start_http_server

from optscale.v1 import controller_pb2_grpc
from services.common import kafka
from services.common.config import from_env
from services.common.logging import configure
from services.common.metrics import init_controller_series
from services.common.security import Security, redis_client
from services.common.server import Server, run_until_stopped, stop_on_signals
from services.controller.clients import GrpcGenerator, GrpcPredictor
from services.controller.config import ControllerConfig
from services.controller.consumer import Publisher, _Listener, run_controller
from services.controller.questions import SubmitDefaults
from services.controller.server import SERVICE, ControllerServicer
from services.controller.state import RedisStateStore
from services.controller.worker import ControllerWorker


async def amain(cfg: ControllerConfig) -> int:
    """Run until SIGTERM (returns 0) or until the consumer loop dies (returns 1)."""
    log = configure("controller", cfg.log_level)
    defaults = SubmitDefaults(
        policy=cfg.policy,
        n_max=cfg.n_max,
        alpha=cfg.alpha,
        s_min=cfg.s_min,
        max_tokens=cfg.max_tokens,
        max_tokens_limit=cfg.max_tokens_limit,
        max_n_max=cfg.max_n_max,
    )
    await kafka.ensure_topics(cfg.kafka_bootstrap, cfg.partitions)
    r = redis_client(cfg.redis_url)
    store = RedisStateStore(r, result_ttl_seconds=cfg.result_ttl_seconds)
    producer = await kafka.producer(cfg.kafka_bootstrap)
    security = Security.from_env()
    generator = GrpcGenerator(cfg.generator, security, deadline_s=cfg.lease_deadline_seconds)
    predictor = GrpcPredictor(cfg.predictor, security) if cfg.predictor else None
    publisher = Publisher(producer)
    worker = ControllerWorker(
        store,
        generator,
        publisher,
        results_topic=kafka.RESULTS,
        events_topic=kafka.QUESTION_EVENTS,
        defaults=defaults,
        predictor=predictor,
        log=log,
        max_active=cfg.max_active,
        idle_rebuild_s=cfg.idle_rebuild_seconds,
        max_k=cfg.generator_max_k,
    )
    consumer = await kafka.consumer(
        cfg.kafka_bootstrap,
        kafka.QUESTION_EVENTS,
        cfg.group,
        listener=_Listener(worker),
        session_timeout_ms=cfg.session_timeout_ms,
        heartbeat_interval_ms=cfg.heartbeat_interval_ms,
    )
    server = Server([SERVICE], security)
    servicer = ControllerServicer(
        store,
        producer,
        log,
        defaults=defaults,
        max_questions=cfg.max_questions,
        prior_optional=predictor is not None,
    )
    controller_pb2_grpc.add_ControllerServicer_to_server(servicer, server.server)
    if cfg.metrics_port:
        init_controller_series()
        start_http_server(cfg.metrics_port)
    port = await server.start(cfg.host, cfg.port)
    log.info("serving", host=cfg.host, port=port, services=server.names, **security.describe())
    stop = stop_on_signals()
    loop_task = asyncio.create_task(run_controller(worker, consumer, publisher, stop=stop, log=log))
    # the consumer loop runs until stop: if it ends on its own, health goes NOT_SERVING
    # and the process exits 1 (Kubernetes restarts it; its partitions move meanwhile)
    code = await run_until_stopped(
        server, stop, cfg.grace_seconds, log, watch={"consumer loop": loop_task}
    )
    stop.set()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(loop_task, cfg.grace_seconds)
    await kafka.stop_quietly(consumer, producer)
    await generator.close()
    if predictor is not None:
        await predictor.close()
    await r.aclose()
    return code


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m services.controller")
    ap.add_argument("--kafka-bootstrap")
    ap.add_argument("--redis-url")
    ap.add_argument("--generator")
    ap.add_argument("--predictor")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--metrics-port", type=int)
    cfg = from_env(ControllerConfig, "controller", **vars(ap.parse_args()))
    sys.exit(asyncio.run(amain(cfg)))


if __name__ == "__main__":
    main()
