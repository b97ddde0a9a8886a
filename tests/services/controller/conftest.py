"""The controller's state store for its behavioural tests: the in-memory store (milliseconds)
and the Redis/Lua store on a real redis-server (marked ``integration``), one test run per
store, so the two implementations cannot drift. The Redis store also runs on a cluster-mode
redis-server (one node owning every slot), which refuses a script whose keys are in
different hash slots (CROSSSLOT)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from optscale.memory import InMemoryStateStore
from services.common.infra import Proc, start_redis, start_redis_cluster


@pytest.fixture(scope="module")
def redis_proc() -> Iterator[Proc]:
    p = start_redis()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def redis_cluster_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A one-node Redis Cluster: cluster mode on, all 16384 slots on this node."""
    p = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield p
    p.stop()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.integration),
        pytest.param("redis-cluster", marks=pytest.mark.integration),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield InMemoryStateStore()
        return
    from services.common.security import redis_client
    from services.controller.state import RedisStateStore

    proc: Proc = request.getfixturevalue(
        "redis_proc" if request.param == "redis" else "redis_cluster_proc"
    )
    r = redis_client(f"redis://127.0.0.1:{proc.port}/0")
    await r.flushdb()
    yield RedisStateStore(r)
    await r.aclose()
