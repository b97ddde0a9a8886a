"""Redis AUTH and token auth on a controller process with a real broker and a password-
protected redis-server (requirepass and an ACL user); its logs never contain a secret."""

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

from optscale.v1 import controller_pb2, controller_pb2_grpc
from services.common.infra import Proc, start_redis

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "redis": "redis-PW-7f3a9",
    "acl": "acl-PW-51c2e",
    "token": "tok-SECRET-88d1",
    "kafka": "kafka-PW-0b6e",
}


def _serving_port(proc: subprocess.Popen[str], lines: list[str]) -> int:
    assert proc.stderr is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        rec = json.loads(line)
        if rec.get("event") == "serving":
            assert rec["token_auth"] is True and rec["tls"] is False
            return int(rec["port"])
    raise AssertionError(f"controller never served (exit {proc.poll()}): {''.join(lines)}")


@pytest.mark.parametrize("creds_in", ["url", "env"])
def test_redis_auth_token_auth_and_no_secret_in_logs(broker: Proc, creds_in: str) -> None:
    redis = start_redis(
        extra=[
            "--requirepass",
            SECRETS["redis"],
            "--user",
            "optscale",
            "on",
            f">{SECRETS['acl']}",
            "~*",
            "&*",
            "+@all",
        ]
    )
    lines: list[str] = []
    try:
        env = {
            **os.environ,
            "OPTSCALE_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.port}",
            # the ACL user, not the default one: in the URL, or URL + env (ConfigMap + Secret)
            "OPTSCALE_REDIS_URL": f"redis://optscale:{SECRETS['acl']}@127.0.0.1:{redis.port}/0"
            if creds_in == "url"
            else f"redis://127.0.0.1:{redis.port}/0",
            "OPTSCALE_AUTH_TOKEN": SECRETS["token"],
            "OPTSCALE_KAFKA_SASL_PASSWORD": SECRETS["kafka"],  # configured, unused: PLAINTEXT
            "OPTSCALE_CONTROLLER_PORT": "0",
            "OPTSCALE_CONTROLLER_HOST": "127.0.0.1",
            "OPTSCALE_CONTROLLER_METRICS_PORT": "0",
            "OPTSCALE_CONTROLLER_GENERATOR": "127.0.0.1:1",
            "OPTSCALE_LOG_LEVEL": "debug",
        }
        if creds_in == "env":
            env["OPTSCALE_REDIS_USERNAME"] = "optscale"
            env["OPTSCALE_REDIS_PASSWORD"] = SECRETS["acl"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.controller"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            port = _serving_port(proc, lines)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = controller_pb2_grpc.ControllerStub(ch)
                req = controller_pb2.GetResultRequest(question_id="nope")
                with pytest.raises(grpc.RpcError) as err:
                    stub.GetResult(req, timeout=10)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                md = [("authorization", f"Bearer {SECRETS['token']}")]
                # authenticated: reaches Redis through the ACL user and finds nothing
                got = stub.GetResult(req, metadata=md, timeout=10)
                assert not got.done
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
            lines.append(out or "")
        assert proc.returncode == 0
    finally:
        redis.stop()
    logs = "".join(lines)
    assert "serving" in logs
    for name, secret in SECRETS.items():
        assert secret not in logs, f"{name} secret leaked into the logs"


def test_a_wrong_redis_password_is_refused_by_the_real_server() -> None:
    import redis as sync_redis

    server = start_redis(extra=["--requirepass", SECRETS["redis"]])
    try:
        bad = sync_redis.Redis.from_url(f"redis://:wrong@127.0.0.1:{server.port}/0")
        with pytest.raises(sync_redis.AuthenticationError):
            bad.ping()
        good = sync_redis.Redis.from_url(f"redis://:{SECRETS['redis']}@127.0.0.1:{server.port}/0")
        assert good.ping()
    finally:
        server.stop()
