"""Micro-batching: callers submit items one request at a time; one task runs the backend on
up to ``max_batch`` items, waiting at most ``max_wait`` seconds to fill a batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from optscale.errors import InvalidArgumentError

I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741


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
            try:
                outs = await self._run([i for i, _ in live])
                for (_, f), o in zip(live, outs, strict=True):
                    if not f.done():
                        f.set_result(o)
            except Exception as exc:  # one bad batch fails its callers, not the batcher
                for _, f in live:
                    if not f.done():
                        f.set_exception(exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
