"""MicroBatcher: batches concurrent callers, keeps per-caller order, and leaves no task behind
when idle."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from optscale.errors import InvalidArgumentError
from services.common.batcher import MicroBatcher


async def test_batches_concurrent_callers_and_stops_when_idle() -> None:
    sizes: list[int] = []

    async def double(xs: Sequence[int]) -> list[int]:
        await asyncio.sleep(0.01)
        return [2 * x for x in xs]

    b: MicroBatcher[int, int] = MicroBatcher(
        double, max_batch=4, max_wait=0.02, on_batch=sizes.append
    )
    outs = await asyncio.gather(*(b.submit_many([i, i + 100]) for i in range(5)))
    assert outs == [[2 * i, 2 * i + 200] for i in range(5)]
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) < 10
    await asyncio.sleep(0)
    assert b._task is not None and b._task.done()  # idle: nothing left pending
    assert await b.submit_many([7]) == [14]  # and it starts again on demand
    assert await b.submit_many([]) == []


async def test_a_failing_batch_fails_its_callers_only() -> None:
    async def run(xs: Sequence[int]) -> list[int]:
        if 13 in xs:
            raise ValueError("unlucky")
        return list(xs)

    b: MicroBatcher[int, int] = MicroBatcher(run, max_batch=1, max_wait=0)
    bad, good = await asyncio.gather(
        b.submit_many([13]), b.submit_many([1]), return_exceptions=True
    )
    assert isinstance(bad, ValueError) and good == [1]
    with pytest.raises(InvalidArgumentError):
        MicroBatcher(run, max_batch=0)
