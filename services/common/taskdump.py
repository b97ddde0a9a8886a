"""``kill -USR1 <pid>`` makes a service print the stack of every asyncio task to stderr: what
an operator needs to see where a process that looks alive is waiting."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import TextIO


def dump_tasks(out: TextIO | None = None) -> None:
    out = sys.stderr if out is None else out
    tasks = asyncio.all_tasks()
    lines = [f"--- {len(tasks)} asyncio tasks ---"]
    for t in tasks:
        lines.append(f"task {t.get_name()} {t.get_coro()!r}")
        # Task.print_stack trips over frames without a line number (cython coroutines)
        for f in t.get_stack(limit=20):
            lines.append(f"    {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}")
    lines.append("--- end of tasks ---")
    print("\n".join(lines), file=out, flush=True)


def install_task_dump(loop: asyncio.AbstractEventLoop) -> None:
    with contextlib.suppress(NotImplementedError, AttributeError):
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
