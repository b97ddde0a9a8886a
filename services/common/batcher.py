"""Micro-batching: callers submit items one request at a time; one task runs the backend on
up to ``max_batch`` items, waiting at most ``max_wait`` seconds to fill a batch. A batch that
fails is retried in halves (:func:`run_isolated`), so one bad item fails only its caller."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from optscale.errors import InvalidArgumentError

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


class Failed:
    """An item that failed alone (its exception), in :func:`run_isolated`'s output."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"Failed({self.error!r})"


async def run_isolated(
    run: Callable[[Sequence[I]], Awaitable[Sequence[O]]], items: Sequence[I]
) -> list[O | Failed]:
    """``run(items)`` as one batch; if it raises (any ``Exception``: an invalid item, a CUDA
    out-of-memory, a ``RuntimeError`` in the engine), it is retried split in halves, each half
    likewise, down to single items — only an item that fails alone is reported as
    :class:`Failed` (with its exception). At most ``2n - 1`` calls; cancellation propagates."""
    if not items:
        return []
    try:
        outs = list(await run(items))
        if len(outs) != len(items):
            raise RuntimeError(f"{len(outs)} results for a batch of {len(items)}")
        return list(outs)
    except Exception as exc:
        if len(items) == 1:
            return [Failed(exc)]
    mid = len(items) // 2
    return [*await run_isolated(run, items[:mid]), *await run_isolated(run, items[mid:])]


class MicroBatcher(Generic[I, O]):
    def __init__(
        self,
        run: Callable[[Sequence[I]], Awaitable[Sequence[O]]],
        *,
        max_batch: int = 16,
        max_wait: float = 0.005,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise InvalidArgumentError("max_batch", max_batch, "must be >= 1")
        if max_wait < 0:
            raise InvalidArgumentError("max_wait", max_wait, "must be >= 0")
        self._run = run
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._on_batch = on_batch
        self._queue: asyncio.Queue[tuple[I, asyncio.Future[O]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit_many(self, items: Sequence[I]) -> list[O]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())
        loop = asyncio.get_running_loop()
        futs = []
        for item in items:
            fut: asyncio.Future[O] = loop.create_future()
            await self._queue.put((item, fut))
            futs.append(fut)
        return list(await asyncio.gather(*futs))

    async def _loop(self) -> None:
        # runs while there is work and ends when idle (submit_many starts it again): no task is
        # left pending on an empty queue when the server stops
        while not self._queue.empty():
            batch = [self._queue.get_nowait()]
            deadline = asyncio.get_running_loop().time() + self.max_wait
            while len(batch) < self.max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0 and self._queue.empty():
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(timeout, 0)))
                except TimeoutError:
                    break
            live = [(i, f) for i, f in batch if not f.done()]
            if not live:
                continue
            if self._on_batch is not None:
                self._on_batch(len(live))
            # a failing batch is retried in halves: only an item that fails alone fails its
            # caller (one bad candidate, or an engine error, does not fail the whole batch)
            outs = await run_isolated(self._run, [i for i, _ in live])
            for (_, f), o in zip(live, outs, strict=True):
                if f.done():
                    continue
                if isinstance(o, Failed):
                    f.set_exception(o.error)
                else:
                    f.set_result(o)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
