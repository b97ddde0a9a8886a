"""Connection recycling on every gRPC server (``max_connection_age`` with a grace): a client's
long-lived channel is sent GOAWAY after the age, so its next calls open a new connection —
through DNS and round_robin that is how new pods (KEDA scale-up, a rolling update) get work —
while a call in flight on the old connection carries on for the grace period."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from optscale.errors import InvalidArgumentError
from services.common.server import Server, connection_age_options

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_the_settings_come_from_the_environment() -> None:
    assert connection_age_options({}) == [
        ("grpc.max_connection_age_ms", 300_000),
        ("grpc.max_connection_age_grace_ms", 600_000),
    ]
    env = {
        "OPTSCALE_GRPC_MAX_CONNECTION_AGE_SECONDS": "30",
        "OPTSCALE_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS": "0",  # 0: no limit
    }
    assert connection_age_options(env) == [("grpc.max_connection_age_ms", 30_000)]
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(InvalidArgumentError, match="MAX_CONNECTION_AGE"):
            connection_age_options({"OPTSCALE_GRPC_MAX_CONNECTION_AGE_SECONDS": bad})


async def test_an_old_connection_is_recycled_and_its_call_in_flight_finishes() -> None:
    ages = [("grpc.max_connection_age_ms", 200), ("grpc.max_connection_age_grace_ms", 60_000)]
    server = Server(["test.Service"], options=ages)
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            watch = health.Watch(health_pb2.HealthCheckRequest(service="test.Service"))
            assert (await watch.read()).status == SERVING  # a call in flight
            assert ch.get_state() is grpc.ChannelConnectivity.READY
            async with asyncio.timeout(20):  # bounds a broken run only: GOAWAY comes at ~0.2 s
                await ch.wait_for_state_change(grpc.ChannelConnectivity.READY)
            assert ch.get_state() is not grpc.ChannelConnectivity.READY  # the server let go
            await server.health.set("test.Service", NOT_SERVING)
            assert (await watch.read()).status == NOT_SERVING  # the old call still delivers
            watch.cancel()
            r = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert r.status == SERVING  # and new calls go over a new connection
    finally:
        await server.stop(0)
