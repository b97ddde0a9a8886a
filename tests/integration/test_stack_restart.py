"""The local stack as a user runs it: a second `stack up` on a running stack changes nothing,
`stack status` tells a dead service from a live one, and after the controller is SIGKILLed
mid-batch `stack up` starts it again and every submitted question is answered once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from optscale.commands.stack import alive
from optscale.v1 import controller_pb2, controller_pb2_grpc, events_pb2
from services.common import kafka
from services.common.infra import free_port_block

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
N = 30


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optscale", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def _wait_for(what: str, cond: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _results(bootstrap: str, ids: set[str], timeout: float = 180) -> list[bytes]:
    """Every message on optscale.results for ``ids``, read until each id has one."""

    async def read() -> list[bytes]:
        cons = await kafka.consumer(bootstrap, kafka.RESULTS, f"restart-test-{os.getpid()}")
        out: list[bytes] = []
        seen: set[str] = set()
        try:
            async with asyncio.timeout(timeout):
                while not ids <= seen:
                    for msgs in (await cons.getmany(timeout_ms=200)).values():
                        for m in msgs:
                            r = events_pb2.Result.FromString(m.value)
                            if r.question_id in ids:
                                out.append(m.value)
                                seen.add(r.question_id)
        finally:
            await cons.stop()
        return out

    return asyncio.run(read())


def test_killed_controller_is_restarted_and_every_question_answered_once(tmp_path: Path) -> None:
    base = free_port_block(6)
    d = tmp_path / "stack"
    opts = ["--dir", str(d), "--broker-port", str(base + 4), "--redis-port", str(base + 5),
            "--grpc-base", str(base)]
    # slow sim decoding (about 1.5 s a sample) so that the batch is still running at the kill;
    # a short session so that the dead controller's partitions move on quickly
    env = {"OPTSCALE_GENERATOR_SIM_TOKEN_DELAY": "0.01",
           "OPTSCALE_CONTROLLER_SESSION_TIMEOUT_MS": "3000",
           "OPTSCALE_CONTROLLER_HEARTBEAT_INTERVAL_MS": "500"}
    up = _cli("stack", "up", *opts, env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        pids = json.loads((d / "stack.json").read_text())["pids"]

        again = _cli("stack", "up", *opts, env=env)  # harmless on a running stack
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already up" in again.stdout
        assert json.loads((d / "stack.json").read_text())["pids"] == pids
        assert all(os.path.exists(f"/proc/{p}") for p in pids.values())
        status = _cli("stack", "status", "--dir", str(d))
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("SERVING") == 4, status.stdout

        ids = {f"r{i}" for i in range(N)}
        with grpc.insecure_channel(f"127.0.0.1:{base + 3}") as ch:
            stub = controller_pb2_grpc.ControllerStub(ch)
            req = controller_pb2.SubmitRequest(
                questions=[controller_pb2.QuestionSpec(question_id=q, text=f"{q}?",
                                                       reference_answer="42") for q in ids]
            )
            req.policy.policy, req.policy.n_max, req.policy.s_min = "optscale0", 8, 0.85
            stub.Submit(req, timeout=30)

            def n_done() -> int:
                return sum(
                    stub.GetResult(controller_pb2.GetResultRequest(question_id=q)).done
                    for q in ids
                )

            _wait_for("a first result", lambda: n_done() >= 1)
            done_before_kill = n_done()
        os.kill(pids["controller"], signal.SIGKILL)
        assert done_before_kill < N, "the batch finished before the kill: slow the sim down"
        _wait_for("the controller to be gone", lambda: not alive("controller", pids["controller"]))

        status = _cli("stack", "status", "--dir", str(d))
        assert status.returncode == 1, status.stdout
        line = next(x for x in status.stdout.splitlines() if x.startswith("controller"))
        assert "dead" in line and "running" not in line, status.stdout
        assert "generator" in status.stdout and status.stdout.count("running") == 5

        restarted = _cli("stack", "up", *opts, env=env)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert "started controller" in restarted.stdout, restarted.stdout
        new = json.loads((d / "stack.json").read_text())["pids"]
        assert new["controller"] != pids["controller"]
        assert {k: v for k, v in new.items() if k != "controller"} == {
            k: v for k, v in pids.items() if k != "controller"
        }
        assert _cli("stack", "status", "--dir", str(d)).returncode == 0

        payloads = _results(f"127.0.0.1:{base + 4}", ids)
        by_id: dict[str, set[bytes]] = defaultdict(set)
        for raw in payloads:
            by_id[events_pb2.Result.FromString(raw).question_id].add(raw)
        assert set(by_id) == ids
        distinct = {q: len(v) for q, v in by_id.items() if len(v) != 1}
        assert not distinct, f"questions with more than one distinct result: {distinct}"
        results = [events_pb2.Result.FromString(next(iter(v))) for v in by_id.values()]
        assert all(r.status == events_pb2.RESULT_STATUS_DONE for r in results)
        assert all(1 <= r.samples_used <= 8 for r in results)
    finally:
        down = _cli("stack", "down", "--dir", str(d))
    assert down.returncode == 0 and not (d / "stack.json").exists()


def test_restart_one_service_keeps_the_others(tmp_path: Path) -> None:
    base = free_port_block(6)
    d = tmp_path / "stack"
    opts = ["--dir", str(d), "--broker-port", str(base + 4), "--redis-port", str(base + 5),
            "--grpc-base", str(base)]
    up = _cli("stack", "up", *opts)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        pids = json.loads((d / "stack.json").read_text())["pids"]
        r = _cli("stack", "restart", "verifier", "--dir", str(d))
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"stopped verifier ({pids['verifier']})" in r.stdout
        new = json.loads((d / "stack.json").read_text())["pids"]
        assert new["verifier"] != pids["verifier"] and not alive("verifier", pids["verifier"])
        assert {k: v for k, v in new.items() if k != "verifier"} == {
            k: v for k, v in pids.items() if k != "verifier"
        }
        status = _cli("stack", "status", "--dir", str(d))
        assert status.returncode == 0 and status.stdout.count("SERVING") == 4, status.stdout
        bad = _cli("stack", "restart", "--dir", str(d))
        assert bad.returncode != 0 and "restart needs one of" in bad.stderr + bad.stdout
    finally:
        down = _cli("stack", "down", "--dir", str(d))
    assert down.returncode == 0
