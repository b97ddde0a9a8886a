"""Real infrastructure for integration tests: Tansu (Kafka protocol) and redis-server on free
loopback ports, started per test module and stopped after it. Never mocks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common.infra import Proc, start_broker, start_redis


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
