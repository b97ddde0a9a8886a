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


async def test_a_bad_item_fails_only_its_caller_in_a_shared_batch() -> None:
    calls: list[list[int]] = []

    async def run(xs: Sequence[int]) -> list[int]:
        calls.append(list(xs))
        if 13 in xs:
            raise RuntimeError("CUDA out of memory")
        return [x + 1 for x in xs]

    b: MicroBatcher[int, int] = MicroBatcher(run, max_batch=8, max_wait=0.05)
    outs = await asyncio.gather(
        *(b.submit_many([x]) for x in (1, 2, 13, 4, 5, 6, 7, 8)), return_exceptions=True
    )
    assert isinstance(outs[2], RuntimeError)
    assert [o for i, o in enumerate(outs) if i != 2] == [[2], [3], [5], [6], [7], [8], [9]]
    assert len(calls[0]) == 8  # one shared batch first, then halves: at most 2n - 1 calls
    assert len(calls) <= 2 * 8 - 1 and [13] in calls


async def test_run_isolated_splits_down_to_the_failing_items() -> None:
    from services.common.batcher import Failed, run_isolated

    async def run(xs: Sequence[int]) -> list[int]:
        if any(x < 0 for x in xs):
            raise ValueError("negative")
        return list(xs)

    outs = await run_isolated(run, [1, -2, 3, 4, -5])
    assert [o if not isinstance(o, Failed) else "F" for o in outs] == [1, "F", 3, 4, "F"]
    assert await run_isolated(run, []) == []
