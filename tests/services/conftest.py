"""Real grpc.aio servers on loopback for the service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from services.common.logging import configure
from services.common.server import Server


@pytest.fixture
def log() -> Any:
    return configure("test", "warning")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """``await serve(names, add)`` starts a server (``add(server.server)`` registers the
    servicer) and returns an insecure channel to it."""
    started: list[tuple[Server, grpc.aio.Channel]] = []

    async def start(names: list[str], add: Callable[[Any], None]) -> grpc.aio.Channel:
        server = Server(names)
        add(server.server)
        port = await server.start("127.0.0.1", 0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        started.append((server, channel))
        return channel

    yield start
    for server, channel in started:
        await channel.close()
        await server.stop(0)
