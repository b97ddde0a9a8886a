"""Run a grpc.aio server the same way for every service: health checking, reflection,
Prometheus metrics, structured logs, and a graceful SIGTERM (health NOT_SERVING, stop taking
calls, give in-flight calls ``grace`` seconds, then cancel them — which aborts their work),
connection recycling (``max_connection_age``), keepalive PINGs (``services/common/keepalive.py``:
a silent client is dropped, clients' PINGs are accepted), and supervision of the service's
background tasks (one that dies turns health NOT_SERVING and the process exits 1)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from optscale.errors import (
    AlreadyExistsError,
    BackendUnavailableError,
    InvalidArgumentError,
    OptScaleError,
)
from services.common.decoding import DecodeRequests
from services.common.keepalive import Keepalive
from services.common.metrics import LATENCY, REQUESTS
from services.common.security import Security
from services.common.supervise import how_it_ended, until_stopped_or_dead
from services.common.taskdump import install_task_dump

T = TypeVar("T")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # request size limit; larger requests: RESOURCE_EXHAUSTED


# Connections are recycled so that long-lived client channels reach pods that joined later
# (KEDA scale-up, rolling updates): after MAX_CONNECTION_AGE the server sends GOAWAY, clients
# open a new connection (re-resolving DNS, round_robin picks up the new pods) for new calls;
# calls in flight keep the old connection for up to MAX_CONNECTION_AGE_GRACE (a Generate
# lease longer than that is cut and retried under the same sample ids by the controller).
MAX_CONNECTION_AGE_S = 300.0
MAX_CONNECTION_AGE_GRACE_S = 600.0


def connection_age_options(env: Mapping[str, str] | None = None) -> list[tuple[str, int]]:
    """gRPC server options from ``OPTSCALE_GRPC_MAX_CONNECTION_AGE_SECONDS`` and
    ``OPTSCALE_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS`` (defaults 300 and 600; 0 = never)."""
    env = os.environ if env is None else env
    out = []
    for key, name, default in (
        ("MAX_CONNECTION_AGE_SECONDS", "grpc.max_connection_age_ms", MAX_CONNECTION_AGE_S),
        (
            "MAX_CONNECTION_AGE_GRACE_SECONDS",
            "grpc.max_connection_age_grace_ms",
            MAX_CONNECTION_AGE_GRACE_S,
        ),
    ):
        raw = env.get(f"OPTSCALE_GRPC_{key}", "")
        try:
            seconds = float(raw) if raw else default
        except ValueError:
            raise InvalidArgumentError(f"OPTSCALE_GRPC_{key}", raw, "must be a number") from None
        if not seconds >= 0:
            raise InvalidArgumentError(f"OPTSCALE_GRPC_{key}", raw, "must be >= 0")
        if seconds > 0:
            out.append((name, max(1, round(seconds * 1000))))
    return out


class Server:
    """A started grpc.aio server on ``port`` (0 = pick one) with health + reflection."""

    def __init__(
        self,
        service_names: Iterable[str],
        security: Security | None = None,
        *,
        options: Sequence[tuple[str, int]] | None = None,
    ) -> None:
        """``options``: extra gRPC server options (default: the connection-age settings of
        :func:`connection_age_options` and the keepalive of ``OPTSCALE_GRPC_KEEPALIVE_*``)."""
        self.security = security or Security()
        if options is None:
            extra = [*connection_age_options(), *Keepalive.from_env().server_options()]
        else:
            extra = list(options)
        self.server = grpc.aio.server(
            interceptors=[*self.security.server_interceptors(), DecodeRequests()],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES),
                *extra,
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

    async def not_serving(self) -> None:
        for name in ["", *self.names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def stop(self, grace: float = 5.0) -> None:
        await self.not_serving()
        await self.server.stop(grace)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM/SIGINT (and ``kill -USR1`` dumps the asyncio tasks)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    install_task_dump(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def run_until_stopped(
    server: Server,
    stop: asyncio.Event,
    grace: float,
    log: Any,
    watch: Mapping[str, asyncio.Task[Any]] | None = None,
) -> int:
    """Serve until ``stop`` is set (exit code 0) or a ``watch``ed task ends on its own (1:
    health goes NOT_SERVING at once, then the server shuts down as on SIGTERM)."""
    dead = await until_stopped_or_dead(stop, watch or {})
    if dead is not None:
        assert watch is not None
        log.error("task died; exiting", task=dead, how=how_it_ended(watch[dead]))
        await server.not_serving()
    log.info("shutting down", grace_seconds=grace)
    await server.stop(grace)
    log.info("stopped")
    return 0 if dead is None else 1


async def serve_forever(
    server: Server,
    host: str,
    port: int,
    grace: float,
    log: Any,
    watch: Mapping[str, asyncio.Task[Any]] | None = None,
) -> int:
    """Start, log, and serve until SIGTERM/SIGINT or until a ``watch``ed task dies; shut down
    gracefully. Returns the process exit code (0, or 1 when a task died)."""
    bound = await server.start(host, port)
    log.info("serving", host=host, port=bound, services=server.names, **server.security.describe())
    return await run_until_stopped(server, stop_on_signals(), grace, log, watch)


def _code_of(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, InvalidArgumentError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, AlreadyExistsError):
        return grpc.StatusCode.ALREADY_EXISTS
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
