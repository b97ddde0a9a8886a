"""`optscale stack` decisions without starting processes: a state file whose processes are all
gone is replaced by a new stack; a running stack whose broker died is refused clearly."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from optscale.commands import stack
from optscale.errors import OptScaleError


def _args(d: Path, **kw: Any) -> argparse.Namespace:
    base = dict(action="up", service=None, backend="sim", model=None, dir=str(d),
                broker_port=1, redis_port=2, partitions=1, grpc_base=3, timeout=1.0, metrics_base=0)
    return argparse.Namespace(**{**base, **kw})


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_stack_whose_processes_are_all_gone_is_started_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = _dead_pid()
    names = (*stack.INFRA, *stack.SERVICES)
    (tmp_path / "stack.json").write_text(json.dumps(
        {"pids": dict.fromkeys(names, dead), "ports": {n: 9 for n in names}, "env": {}}
    ))
    started: list[str] = []

    def fake_start(state: Any, name: str, d: Path) -> int:  # records, starts nothing
        started.append(name)
        return dead

    monkeypatch.setattr(stack, "_start", fake_start)
    monkeypatch.setattr(stack, "_wait_healthy", lambda port, pid, timeout: True)
    assert stack.up(_args(tmp_path)) == 0
    assert started == list(names)
    ports = json.loads((tmp_path / "stack.json").read_text())["ports"]
    assert ports["broker"] == 1 and ports["controller"] == 6  # the new stack's, not the old


def test_up_on_a_stack_whose_broker_died_says_what_to_do(tmp_path: Path) -> None:
    import os

    names = (*stack.INFRA, *stack.SERVICES)
    pids = dict.fromkeys(names, _dead_pid())
    pids["controller"] = os.getpid()  # something still runs...
    (tmp_path / "stack.json").write_text(json.dumps(
        {"pids": pids, "ports": {n: 9 for n in names}, "env": {}}
    ))
    stack.MARKERS["controller"] = "python"  # ...and is taken for the controller
    try:
        with pytest.raises(OptScaleError, match="broker and redis is not running"):
            stack.up(_args(tmp_path))
    finally:
        stack.MARKERS["controller"] = "services.controller"
