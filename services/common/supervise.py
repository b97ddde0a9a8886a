"""Supervision of a service's long-running tasks (the controller's consumer loop, the
verifier's Kafka worker): they must run until the process is told to stop. A task that ends
on its own — an exception, or a return — leaves the process half alive (gRPC health SERVING,
its partitions stalled until ``max_poll_interval``), so the service flips health to
NOT_SERVING, shuts down and exits non-zero, and Kubernetes restarts the pod."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any


async def until_stopped_or_dead(
    stop: asyncio.Event, tasks: Mapping[str, asyncio.Task[Any]]
) -> str | None:
    """Wait until ``stop`` is set (``None``) or one of ``tasks`` ends first (its name). A task
    that ends because ``stop`` was set (a graceful shutdown) is not a death."""
    if not stop.is_set() and not any(t.done() for t in tasks.values()):
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([stopper, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
    if stop.is_set():
        return None
    return next((name for name, t in tasks.items() if t.done()), None)


def how_it_ended(task: asyncio.Task[Any]) -> str:
    """``returned``, ``cancelled`` or the exception's repr (for the log line)."""
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return "returned" if exc is None else repr(exc)[:500]
