"""Run a grpc.aio server the same way for every service: health checking, reflection,
Prometheus metrics, structured logs, and a graceful SIGTERM (health NOT_SERVING, stop taking
calls, give in-flight calls ``grace`` seconds, then cancel them — which aborts their work)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from optscale.errors import BackendUnavailableError, InvalidArgumentError, OptScaleError
from services.common.metrics import LATENCY, REQUESTS
from services.common.security import Security
from services.common.taskdump import install_task_dump

T = TypeVar("T")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # request size limit; larger requests: RESOURCE_EXHAUSTED


class Server:
    """A started grpc.aio server on ``port`` (0 = pick one) with health + reflection."""

    def __init__(self, service_names: Iterable[str], security: Security | None = None) -> None:
        self.security = security or Security()
        self.server = grpc.aio.server(
            interceptors=self.security.server_interceptors(),
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES),
            ],
        )
        self.health = HealthServicer()
        self.names = [*service_names]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection(
            [*self.names, reflection.SERVICE_NAME, health_name], self.server
        )
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        creds = self.security.server_credentials()
        if creds is not None:
            self.port = self.server.add_secure_port(f"{host}:{port}", creds)
        else:
            self.port = self.server.add_insecure_port(f"{host}:{port}")
        await self.server.start()
        for name in ["", *self.names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        for name in ["", *self.names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)


async def serve_forever(server: Server, host: str, port: int, grace: float, log: Any) -> None:
    """Start, log, and wait for SIGTERM/SIGINT; then shut down gracefully."""
    bound = await server.start(host, port)
    log.info("serving", host=host, port=bound, services=server.names, **server.security.describe())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    install_task_dump(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", grace_seconds=grace)
    await server.stop(grace)
    log.info("stopped")


def _code_of(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, BackendUnavailableError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, OptScaleError):
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


async def unary(
    service: str, method: str, context: Any, log: Any, call: Callable[[], Awaitable[T]]
) -> T:
    """Run a unary handler: metrics, and errors mapped to status codes (never a dead server)."""
    t0 = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        return await call()
    except (OptScaleError, Exception) as exc:
        if isinstance(exc, asyncio.CancelledError):
            raise
        code = _code_of(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("handler failed", method=method)
        await context.abort(code, str(exc))
        raise  # unreachable: abort raises
    finally:
        REQUESTS.labels(service, method, code.name).inc()
        LATENCY.labels(service, method).observe(time.perf_counter() - t0)


async def streaming(
    service: str, method: str, context: Any, log: Any, stream: AsyncIterator[T]
) -> AsyncIterator[T]:
    """Like :func:`unary` for a server stream; closing it (cancel) closes ``stream``."""
    t0 = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        async for item in stream:
            yield item
    except asyncio.CancelledError:
        code = grpc.StatusCode.CANCELLED
        raise
    except Exception as exc:
        code = _code_of(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("stream failed", method=method)
        await context.abort(code, str(exc))
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        REQUESTS.labels(service, method, code.name).inc()
        LATENCY.labels(service, method).observe(time.perf_counter() - t0)
