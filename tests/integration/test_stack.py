"""`optscale stack up/down` as processes: a real broker, redis-server and the four services;
questions submitted through the Controller gRPC API; down stops exactly what up started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from optscale.commands.stack import alive
from optscale.v1 import controller_pb2, controller_pb2_grpc
from services.common.infra import free_port_block

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optscale", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=180,
    )


def test_stack_up_solve_down(tmp_path: Path) -> None:
    base = free_port_block(6)  # 4 services, broker, redis
    d = tmp_path / "stack"
    ports = [
        "--dir",
        str(d),
        "--broker-port",
        str(base + 4),
        "--redis-port",
        str(base + 5),
        "--grpc-base",
        str(base),
    ]
    up = _cli("stack", "up", *ports)
    pids: dict[str, int] = {}
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        pids = json.loads((d / "stack.json").read_text())["pids"]
        assert set(pids) == {"broker", "redis", "generator", "verifier", "predictor", "controller"}
        with grpc.insecure_channel(f"127.0.0.1:{base + 3}") as ch:
            stub = controller_pb2_grpc.ControllerStub(ch)
            req = controller_pb2.SubmitRequest(
                questions=[
                    controller_pb2.QuestionSpec(
                        question_id=f"s{i}", text="q?", reference_answer="42"
                    )
                    for i in range(5)
                ]
            )
            req.policy.policy, req.policy.n_max, req.policy.s_min = "optscale0", 8, 0.85
            results = list(stub.Solve(req, timeout=120))
            assert sorted(r.question_id for r in results) == [f"s{i}" for i in range(5)]
            assert all(1 <= r.samples_used <= 8 for r in results)
            got = stub.GetResult(controller_pb2.GetResultRequest(question_id="s0"))
            assert got.done and got.result.question_id == "s0"
            assert not stub.Cancel(controller_pb2.CancelRequest(question_id="s0")).cancelled
            with pytest.raises(grpc.RpcError) as err:
                stub.Submit(
                    controller_pb2.SubmitRequest(
                        questions=[controller_pb2.QuestionSpec(question_id="x", text="")]
                    )
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        down = _cli("stack", "down", "--dir", str(d))
    assert down.returncode == 0 and not (d / "stack.json").exists()
    for name, pid in pids.items():  # exited (a zombie waiting for init to reap it counts)
        assert not alive(name, pid), name


def test_stack_up_fails_clearly_when_a_port_is_taken_and_leaves_nothing(tmp_path: Path) -> None:
    import socket

    base = free_port_block(6)
    d = tmp_path / "stack"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 1))  # the verifier's port
        squatter.listen()
        up = _cli(
            "stack", "up", "--dir", str(d), "--broker-port", str(base + 4),
            "--redis-port", str(base + 5), "--grpc-base", str(base),
        )
    assert up.returncode == 1
    assert "verifier is not healthy" in up.stdout and "bind" in up.stdout, up.stdout
    assert not (d / "stack.json").exists()  # down ran: everything started was stopped
    import re

    stopped = dict(re.findall(r"stopped (\w+) \((\d+)\)", up.stdout))
    assert {"broker", "redis", "generator", "predictor"} <= set(stopped), up.stdout
    for name, pid in stopped.items():
        assert not alive(name, int(pid)), name
