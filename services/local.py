"""All pipeline roles in one asyncio process against a real broker and redis-server:
a generator gRPC server (publishing candidates to Kafka), a verifier worker and any number of
controllers. For integration tests and benchmarks; production runs each role as a process."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from optscale.v1 import events_pb2, generator_pb2_grpc
from services.common import kafka, tracing
from services.common.logging import configure
from services.common.security import redis_client
from services.common.server import Server
from services.controller.clients import GrpcGenerator
from services.controller.consumer import Publisher, _Listener, run_controller
from services.controller.state import RedisStateStore
from services.controller.worker import ControllerWorker
from services.generator.server import SERVICE, GeneratorServicer
from services.verifier.worker import run_verifier

FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


@dataclass
class Controller:
    worker: ControllerWorker
    consumer: Any
    task: asyncio.Task[None]
    stop: asyncio.Event


@dataclass
class LocalPipeline:
    bootstrap: str
    redis_url: str
    generator_backend: Any
    verifier_backend: Any
    partitions: int = 4
    worker_options: dict[str, Any] = field(default_factory=dict)  # ControllerWorker keywords
    redis: Any = None
    producer: Any = None
    generator: GeneratorServicer | None = None
    store: RedisStateStore | None = None
    client: GrpcGenerator | None = None
    log: Any = None
    controllers: list[Controller] = field(default_factory=list)
    _server: Server | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _vtask: asyncio.Task[None] | None = None
    _vcons: Any = None

    async def __aenter__(self) -> LocalPipeline:
        await kafka.ensure_topics(self.bootstrap, partitions=self.partitions)
        self.log = configure("local", "warning")
        self.redis = redis_client(self.redis_url)
        await self.redis.flushdb()
        self.producer = await kafka.producer(self.bootstrap)
        producer = self.producer

        async def publish_candidate(c: Any) -> None:
            await producer.send_and_wait(
                kafka.CANDIDATES,
                c.SerializeToString(),
                key=c.question_id.encode(),
                headers=tracing.kafka_headers(),  # the sample's span (None: tracing off)
            )

        self.generator = GeneratorServicer(self.generator_backend, self.log, publish_candidate)
        self._server = Server([SERVICE])
        generator_pb2_grpc.add_GeneratorServicer_to_server(self.generator, self._server.server)
        port = await self._server.start("127.0.0.1", 0)
        self._vcons = await kafka.consumer(
            self.bootstrap, kafka.CANDIDATES, "optscale-verifier", **FAST_GROUP
        )
        self._vtask = asyncio.create_task(
            run_verifier(self.verifier_backend, self._vcons, self.producer, stop=self._stop)
        )
        self.store = RedisStateStore(self.redis)
        self.client = GrpcGenerator(f"127.0.0.1:{port}")
        await self.start_controller(**self.worker_options)
        return self

    async def start_controller(self, **worker_options: Any) -> Controller:
        assert self.store is not None and self.client is not None
        publisher = Publisher(self.producer)
        worker = ControllerWorker(
            self.store,
            self.client,
            publisher,
            results_topic=kafka.RESULTS,
            events_topic=kafka.QUESTION_EVENTS,
            log=self.log,
            **worker_options,
        )
        cons = await kafka.consumer(
            self.bootstrap,
            kafka.QUESTION_EVENTS,
            "optscale-controller",
            listener=_Listener(worker),
            **FAST_GROUP,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_controller(worker, cons, publisher, stop=stop, log=self.log))
        c = Controller(worker, cons, task, stop)
        self.controllers.append(c)
        return c

    async def submit(
        self,
        ids: list[str],
        policy: str,
        n_max: int,
        s_min: float,
        max_tokens: int = 512,
        texts: dict[str, str] | None = None,
    ) -> None:
        for q in ids:
            ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
            ev.submitted.text = (texts or {}).get(q, f"question {q}")
            ev.submitted.reference_answer = "42"
            ev.submitted.policy.policy = policy
            ev.submitted.policy.n_max = n_max
            ev.submitted.policy.s_min = s_min
            ev.submitted.sampling.max_tokens = max_tokens
            await self.producer.send(kafka.QUESTION_EVENTS, ev.SerializeToString(), key=q.encode())
        await self.producer.flush()

    async def results(self, ids: set[str], group: str, wait_s: float = 90) -> list[Any]:
        """Every result message for ``ids`` (duplicates included) once all have arrived."""
        cons = await kafka.consumer(self.bootstrap, kafka.RESULTS, group, **FAST_GROUP)
        out: list[Any] = []
        try:
            async with asyncio.timeout(wait_s):
                while not ids <= {r.question_id for r in out}:
                    for msgs in (await cons.getmany(timeout_ms=200)).values():
                        out += [events_pb2.Result.FromString(m.value) for m in msgs]
            await asyncio.sleep(1.0)  # anything duplicated would arrive now
            for msgs in (await cons.getmany(timeout_ms=500)).values():
                out += [events_pb2.Result.FromString(m.value) for m in msgs]
        finally:
            await cons.stop()
        return [r for r in out if r.question_id in ids]

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        for c in self.controllers:
            c.stop.set()
        tasks = [t for t in [self._vtask, *(c.task for c in self.controllers)] if t is not None]
        for t in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(t, 10)
        await kafka.stop_quietly(
            self._vcons, *(c.consumer for c in self.controllers), self.producer
        )
        if self.client is not None:
            await self.client.close()
        if self._server is not None:
            await self._server.stop(0)
        if self.redis is not None:
            await self.redis.aclose()
