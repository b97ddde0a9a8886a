"""Each service as a process: env config, health, JSON logs, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from optscale.errors import InvalidArgumentError
from services.common.config import from_env
from services.generator.config import GeneratorConfig

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        rec = json.loads(line)
        if rec.get("event") == "serving":
            return int(rec["port"])
    raise AssertionError(f"no 'serving' log line (exit {proc.poll()})")


@pytest.mark.parametrize(
    ("service", "env"),
    [
        ("generator", {"OPTSCALE_GENERATOR_BACKEND": "sim"}),
        ("verifier", {}),
        ("predictor", {}),
    ],
)
def test_service_process_serves_and_stops_on_sigterm(service: str, env: dict[str, str]) -> None:
    e = {
        **os.environ,
        **env,
        f"OPTSCALE_{service.upper()}_PORT": "0",
        f"OPTSCALE_{service.upper()}_METRICS_PORT": "0",
        f"OPTSCALE_{service.upper()}_HOST": "127.0.0.1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        cwd=ROOT,
        env=e,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _wait_for_port(proc)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert r.status == health_pb2.HealthCheckResponse.SERVING
        check = [sys.executable, "-m", "services.common.healthcheck"]
        hc_env = {**os.environ, "SERVICE": service, f"OPTSCALE_{service.upper()}_PORT": str(port)}
        assert subprocess.run(check, cwd=ROOT, env=hc_env, timeout=30).returncode == 0
        hc_env[f"OPTSCALE_{service.upper()}_PORT"] = "1"
        assert (
            subprocess.run(check, cwd=ROOT, env=hc_env, timeout=30, capture_output=True).returncode
            == 1
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        assert any(json.loads(x).get("event") == "stopped" for x in proc.stderr if x.strip())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_config_from_env_and_flags() -> None:
    env = {
        "OPTSCALE_GENERATOR_PORT": "6000",
        "OPTSCALE_GENERATOR_BACKEND": "sim",
        "OPTSCALE_LOG_LEVEL": "debug",
    }
    cfg = from_env(GeneratorConfig, "generator", env, port=None, model="m")
    assert (cfg.port, cfg.backend, cfg.model, cfg.log_level) == (6000, "sim", "m", "debug")
    with pytest.raises(InvalidArgumentError, match="OPTSCALE_GENERATOR_PORT"):
        from_env(GeneratorConfig, "generator", {"OPTSCALE_GENERATOR_PORT": "x"})
