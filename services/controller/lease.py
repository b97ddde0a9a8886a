"""The lease on in-flight samples: one task per dispatch holds a ``Generate`` stream open
until its samples are done, and cancelling the task closes the stream (the generator then
aborts the samples in the engine)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from optscale.ports import GenerateRequest
from optscale.v1 import events_pb2
from services.common import tracing
from services.common.metrics import CANCEL_SECONDS

LEASE_RETRIES = 4  # transient Generate failures retried (same sample ids) before failing
Publish = Callable[..., Awaitable[None]]  # (topic, key, value, reason=None, acked=False)


class Leaser:
    """Runs leases for one controller. A failing generator is retried with exponential backoff
    per question (the failed samples are reported after the pause, so re-dispatch waits too);
    the policies stop a question after N_max failures, which ends as FAILED when nothing was
    scored."""

    def __init__(
        self,
        generator: Any,
        publish: Publish,
        events_topic: str,
        *,
        retry_base: float = 0.2,
        retry_cap: float = 10.0,
    ) -> None:
        self.generator = generator
        self.publish = publish
        self.events_topic = events_topic
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.fail_streak: dict[str, int] = {}

    async def run(self, req: GenerateRequest, epoch: int) -> None:
        """:meth:`hold` in a ``controller.lease`` span on the question's trace (its context goes
        to the generator in the gRPC metadata)."""
        span = tracing.span(
            "controller",
            "controller.lease",
            question_id=req.question_id,
            first_index=req.first_index,
            k=req.k,
            epoch=epoch,
        )
        with span:
            await self.hold(req, epoch)

    async def hold(self, req: GenerateRequest, epoch: int) -> None:
        """Hold the Generate stream open. When the call fails (a generator restarting), the
        unfinished samples are asked for again under the same ids after a backoff — an id is
        applied once, so a retry never counts twice — up to LEASE_RETRIES times; what is
        still missing then, or what a stream ended without, becomes SampleFailed events
        (through Kafka, so the partition owner applies them in order)."""
        q = req.question_id
        ids = [f"{q}/{req.first_index + i}" for i in range(req.k)]
        done: set[str] = set()
        why = "generate stream ended without this sample"
        for attempt in range(LEASE_RETRIES + 1):
            missing = [i for i in range(req.k) if ids[i] not in done]
            if not missing:
                return
            try:
                for first, k in _runs(missing):  # contiguous runs of missing indices
                    sub = _part(req, first, k)
                    async for sid in self.generator.generate(sub, epoch=epoch):
                        done.add(sid)
                        self.fail_streak.pop(q, None)
                why = "generate stream ended without this sample"
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                why = f"generate failed: {exc}"
                if _permanent(exc) or attempt == LEASE_RETRIES:
                    break
                streak = self.fail_streak[q] = self.fail_streak.get(q, 0) + 1
                if len(self.fail_streak) > 100_000:
                    del self.fail_streak[next(iter(self.fail_streak))]
                delay = self.retry_base * 2 ** min(streak - 1, 30)
                await asyncio.sleep(min(self.retry_cap, delay))
        for sid in ids:
            if sid not in done:
                ev = events_pb2.QuestionEvent(question_id=q, schema_version=1)
                ev.sample_failed.sample_id = sid
                ev.sample_failed.reason = why[:500]
                ev.sample_failed.epoch = epoch
                await self.publish(self.events_topic, q, ev.SerializeToString())


async def cancel_all(leases: dict[asyncio.Task[None], int]) -> None:
    """Cancel every lease and wait until they are closed (a ``controller.cancel`` span when
    called inside a traced span: the stop decision)."""
    tasks, start = list(leases), time.monotonic()
    traced = tracing.in_trace()
    span = tracing.span("controller", "controller.cancel", leases=len(tasks)) if traced else None
    with span or contextlib.nullcontext():
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    leases.clear()
    if tasks:
        CANCEL_SECONDS.observe(time.monotonic() - start)


def _part(req: GenerateRequest, offset: int, k: int) -> GenerateRequest:
    """Samples ``offset .. offset + k - 1`` of ``req`` as a request of their own: sample ``i``
    of a request is seeded ``seed + i``, so the part starts at ``seed + offset``."""
    seed = req.params.seed
    params = req.params if seed is None else dataclasses.replace(req.params, seed=seed + offset)
    return dataclasses.replace(req, first_index=req.first_index + offset, k=k, params=params)


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """[(first, length)] of the contiguous runs in sorted ``indices``."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


def _permanent(exc: BaseException) -> bool:
    """A gRPC error that retrying cannot fix (the request itself is wrong)."""
    import grpc

    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
    return code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
