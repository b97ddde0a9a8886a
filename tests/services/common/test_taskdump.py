"""SIGUSR1 task dump: every task is listed with the line it waits on."""

from __future__ import annotations

import asyncio
import io

from services.common.taskdump import dump_tasks


async def _parked(ev: asyncio.Event) -> None:
    await ev.wait()


async def test_dump_names_each_task_and_where_it_waits() -> None:
    ev = asyncio.Event()
    t = asyncio.create_task(_parked(ev), name="parked-one")
    await asyncio.sleep(0)
    out = io.StringIO()
    dump_tasks(out)
    ev.set()
    await t
    text = out.getvalue()
    assert "asyncio tasks ---" in text and "task parked-one" in text
    assert "test_taskdump.py" in text and "in _parked" in text
