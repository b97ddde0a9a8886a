"""The controller worker across a Redis outage, on a real redis-server that is killed and
started again on the same port (AOF on): a reset that fails halfway keeps the partitions it
owns, and the next reset takes every active question up again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from optscale.v1 import events_pb2
from services.common.infra import Proc, start_redis
from services.common.security import redis_client
from services.controller.state import RedisStateStore
from services.controller.worker import ControllerWorker

pytestmark = pytest.mark.integration


class IdleGenerator:
    """A generator whose streams stay open until cancelled (samples in flight)."""

    async def generate(self, req: Any, *, epoch: int) -> AsyncIterator[str]:
        await asyncio.Event().wait()
        yield ""  # pragma: no cover - never reached


async def _noop_publish(*args: Any, **kwargs: Any) -> None:
    return None


def _aof_redis(tmp: Path, port: int | None = None) -> Proc:
    """A redis-server whose data survives SIGKILL (AOF, fsync always), on ``port`` if given."""
    return start_redis(port, data_dir=tmp / "redis", extra=["--appendfsync", "always"])


def _submitted(q: str, text: str, n_max: int) -> events_pb2.QuestionEvent:
    ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
    ev.submitted.text = text
    ev.submitted.policy.n_max = n_max
    return ev


def _worker(r: Any, **kw: Any) -> ControllerWorker:
    return ControllerWorker(
        RedisStateStore(r),
        IdleGenerator(),
        _noop_publish,
        results_topic="results",
        events_topic="events",
        **kw,
    )


async def test_a_failed_reset_keeps_the_partitions_and_the_next_one_resumes(
    tmp_path: Path,
) -> None:
    redis = _aof_redis(tmp_path)
    r = redis_client(f"redis://127.0.0.1:{redis.port}/0")
    worker = _worker(r)
    try:
        await worker.assign({0, 1})
        for i in range(4):
            await worker.handle(_submitted(f"q{i}", f"question {i}", 8), i % 2)
        assert set(worker.owned) == {"q0", "q1", "q2", "q3"} and not worker.stale
        epoch = worker.epoch

        redis.proc.kill()
        redis.proc.wait()
        with pytest.raises(Exception):  # noqa: B017 - whatever redis-py raises when it is gone
            await worker.reset()
        assert worker.stale and worker.partitions == {0, 1} and worker.owned == {}

        redis = _aof_redis(tmp_path, redis.port)
        await worker.reset()
        assert not worker.stale and worker.epoch > epoch
        assert set(worker.owned) == {"q0", "q1", "q2", "q3"}
        assert all(o.leases for o in worker.owned.values())  # re-dispatched
    finally:
        await worker.close()
        await r.aclose()
        redis.stop()


async def test_an_owned_question_with_nothing_in_flight_is_rebuilt_by_the_sweep(
    redis_server: Proc,
) -> None:
    r = redis_client(f"redis://127.0.0.1:{redis_server.port}/2")
    await r.flushdb()
    worker = _worker(r, idle_rebuild_s=0.2)
    try:
        await worker.assign({0})
        await worker.handle(_submitted("lost", "a question whose samples vanish", 8), 0)
        o = worker.owned["lost"]
        live = o.loop.state.n_live
        assert live > 0
        for t in list(o.leases):  # the streams vanish without a word (no SampleFailed)
            t.cancel()
        await asyncio.sleep(0.05)
        assert not o.leases and o.loop.state.n_live == live  # memory still waits for them
        await worker.sweep()  # idle, but not for long: only re-decided
        assert worker.owned["lost"] is o and "rebuilt" not in worker.stats
        await asyncio.sleep(0.25)
        await worker.sweep()
        o = worker.owned["lost"]
        assert o.leases and worker.stats["rebuilt"] == 1
        sq = await worker.store.get("lost")
        # the lost samples no longer count as dispatched; the new ones get fresh ids
        assert sq is not None and (sq.n_dispatched, sq.next_index) == (live, 2 * live)
    finally:
        await worker.close()
        await r.aclose()


async def test_an_assignment_during_a_redis_outage_is_completed_by_the_loop(
    tmp_path: Path,
) -> None:
    from aiokafka import TopicPartition

    from services.controller.consumer import _Listener, _recover

    redis = _aof_redis(tmp_path)
    r = redis_client(f"redis://127.0.0.1:{redis.port}/0")
    worker = _worker(r)
    try:
        await worker.assign({3})
        text = "a question whose partition moves while redis is down"
        await worker.handle(_submitted("moved", text, 4), 3)
        await worker.revoke({3})
        assert worker.owned == {} and worker.partitions == set()

        redis.proc.kill()
        redis.proc.wait()
        # the rebalance hands partition 3 back while Redis is down: no exception escapes
        # into aiokafka, and the worker knows it still has work to take up
        await _Listener(worker).on_partitions_assigned([TopicPartition("t", 3)])
        assert worker.stale and worker.partitions == {3} and worker.owned == {}

        redis = _aof_redis(tmp_path, redis.port)
        await _recover(worker, asyncio.Event(), None, 0.01)
        assert not worker.stale and set(worker.owned) == {"moved"}
    finally:
        await worker.close()
        await r.aclose()
        redis.stop()
