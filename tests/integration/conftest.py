"""Real infrastructure for integration tests: Tansu (Kafka protocol) and redis-server on free
loopback ports, started per test module and stopped after it. Never mocks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common.infra import Proc, start_broker, start_redis
from services.local import LocalPipeline


@pytest.fixture(scope="module")
def broker() -> Iterator[Proc]:
    p = start_broker()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[Proc]:
    p = start_redis()
    yield p
    p.stop()


def local_pipeline(broker: Proc, redis_server: Proc, generator: object) -> LocalPipeline:
    """The in-process pipeline on the module's broker and redis-server, with the confidence
    verifier and the given generator backend (enter it with ``async with``)."""
    from optscale.engines.scoring.confidence import Backend as Confidence

    url = f"redis://127.0.0.1:{redis_server.port}/0"
    return LocalPipeline(f"127.0.0.1:{broker.port}", url, generator, Confidence())
