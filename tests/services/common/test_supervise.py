"""Supervised background tasks: a service whose consumer loop (or Kafka worker) ends on its
own turns its gRPC health NOT_SERVING and exits 1 (Kubernetes restarts the pod); a normal
stop exits 0."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.logging import configure
from services.common.server import Server, run_until_stopped

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _dies(gate: asyncio.Event) -> None:
    await gate.wait()
    raise RuntimeError("consumer loop crashed")


async def _forever() -> None:
    await asyncio.Event().wait()


async def _serve_and_watch(worker: Any, stop: asyncio.Event) -> tuple[int, list[int]]:
    """Run a server supervising ``worker``; returns the exit code and the health statuses a
    client watching the server saw."""
    server = Server(["test.Service"])
    port = await server.start("127.0.0.1", 0)
    seen: list[int] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest())
        first = asyncio.Event()

        async def follow() -> None:
            async for r in watch:
                seen.append(r.status)
                first.set()

        follower = asyncio.create_task(follow())
        await first.wait()  # SERVING, before anything happens
        task = asyncio.create_task(worker)
        code = await run_until_stopped(
            server, stop, 0.5, configure("test", "critical"), watch={"worker": task}
        )
        task.cancel()
        follower.cancel()
        await asyncio.gather(task, follower, return_exceptions=True)
    return code, seen


async def test_a_task_that_dies_turns_health_not_serving_and_exits_1() -> None:
    gate = asyncio.Event()
    asyncio.get_running_loop().call_soon(gate.set)
    code, seen = await _serve_and_watch(_dies(gate), asyncio.Event())
    assert code == 1
    assert seen[0] == SERVING and NOT_SERVING in seen


async def test_a_task_that_returns_is_a_death_too() -> None:
    async def returns() -> None:
        return None

    code, _ = await _serve_and_watch(returns(), asyncio.Event())
    assert code == 1


async def test_a_requested_stop_exits_0() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)
    code, seen = await _serve_and_watch(_forever(), stop)
    assert code == 0 and seen[0] == SERVING
