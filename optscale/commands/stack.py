"""``optscale stack up|down|status``: the local stack on loopback — a Kafka-compatible broker
(Tansu), a private redis-server and the four services as processes — in one command."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "stack"
HELP = "start/stop the local stack: broker, redis-server and the four services on loopback"

SERVICES = ("generator", "verifier", "predictor", "controller")


def ports(args: argparse.Namespace) -> dict[str, int]:
    return {name: args.grpc_base + i for i, name in enumerate(SERVICES)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument(
        "--backend",
        default="sim",
        choices=["sim", "llamacpp", "hf"],
        help="generator backend (default sim)",
    )
    parser.add_argument(
        "--model",
        help="generator model (llamacpp, hf): alias (qwen, smollm2), path or HF id; default qwen",
    )
    parser.add_argument("--dir", default="runs/stack", help="state, logs and pids")
    parser.add_argument("--broker-port", type=int, default=19092)
    parser.add_argument("--redis-port", type=int, default=16379)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--grpc-base", type=int, default=50051,
                        help="gRPC ports: generator, verifier, predictor, controller from here")


def _health(port: int, timeout: float) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.common.security import Security, open_sync_channel

    try:
        with open_sync_channel(f"127.0.0.1:{port}", Security.from_env()) as ch:
            grpc.channel_ready_future(ch).result(timeout=timeout)
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return bool(r.status == health_pb2.HealthCheckResponse.SERVING)
    except Exception:
        return False


def _wait_healthy(port: int, proc: Any, timeout: float) -> bool:
    """SERVING within ``timeout`` seconds; False at once if the process exits."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _health(port, 2):
            return True
    return False


def up(args: argparse.Namespace) -> int:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from optscale.errors import OptScaleError
    from services.common.infra import start_broker, start_redis

    d = Path(args.dir)
    state_file = d / "stack.json"
    if state_file.exists():
        raise OptScaleError(f"a stack is already up ({state_file}); run `optscale stack down`")
    d.mkdir(parents=True, exist_ok=True)
    procs: dict[str, Any] = {}
    children: dict[str, Any] = {}
    broker = start_broker(args.broker_port, log=d / "broker.log")
    procs["broker"] = broker.pid
    state_file.write_text(json.dumps(procs))
    redis = start_redis(args.redis_port, log=d / "redis.log")
    procs["redis"] = redis.pid
    bootstrap = f"127.0.0.1:{broker.port}"
    env = {
        **os.environ,
        "OPTSCALE_KAFKA_BOOTSTRAP": bootstrap,
        "OPTSCALE_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "OPTSCALE_GENERATOR_BACKEND": args.backend,
        "OPTSCALE_GENERATOR_KAFKA_BOOTSTRAP": bootstrap,
        "OPTSCALE_VERIFIER_KAFKA_BOOTSTRAP": bootstrap,
        "OPTSCALE_CONTROLLER_PARTITIONS": str(args.partitions),
    }
    if args.model:
        env["OPTSCALE_GENERATOR_MODEL"] = args.model
    env["OPTSCALE_CONTROLLER_GENERATOR"] = f"127.0.0.1:{ports(args)['generator']}"
    env["OPTSCALE_CONTROLLER_PREDICTOR"] = f"127.0.0.1:{ports(args)['predictor']}"
    for name, port in ports(args).items():
        env[f"OPTSCALE_{name.upper()}_HOST"] = "127.0.0.1"
        env[f"OPTSCALE_{name.upper()}_PORT"] = str(port)
        env[f"OPTSCALE_{name.upper()}_METRICS_PORT"] = "0"
    state_file.write_text(json.dumps(procs))
    for name in ("generator", "verifier", "predictor", "controller"):
        with (d / f"{name}.log").open("ab") as log:
            p = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        procs[name] = p.pid
        children[name] = p
        state_file.write_text(json.dumps(procs))
    for name, port in ports(args).items():
        if not _wait_healthy(port, children[name], 120):
            log_file = d / f"{name}.log"
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            print(f"{name} is not healthy; see {log_file}:\n  " + "\n  ".join(tail))
            down(args)
            return 1
    print(
        f"stack up: broker {bootstrap}, redis 127.0.0.1:{redis.port}, "
        + ", ".join(f"{n} :{p}" for n, p in ports(args).items())
    )
    print("submit:  optscale submit questions.jsonl --bootstrap " + bootstrap)
    print("results: optscale results --bootstrap " + bootstrap + " --follow")
    print("stop:    optscale stack down")
    return 0


def _gone(pid: int) -> bool:
    """The process has exited (reaped here when it is our child: `up` failing calls `down`,
    and a zombie child would otherwise look alive until its 20 s deadline)."""
    import os

    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child: whoever started it reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def down(args: argparse.Namespace) -> int:
    import json
    import os
    import signal
    import time
    from pathlib import Path

    state_file = Path(args.dir) / "stack.json"
    if not state_file.exists():
        print("no stack is up")
        return 0
    procs = json.loads(state_file.read_text())
    order = ["controller", "generator", "verifier", "predictor", "redis", "broker"]
    for name in order:
        pid = procs.get(name)
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _gone(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        print(f"stopped {name} ({pid})")
    state_file.unlink()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "up":
        try:
            return up(args)
        except BaseException:
            down(args)  # stop whatever was started before the failure
            raise
    if args.action == "down":
        return down(args)
    import json
    from pathlib import Path

    f = Path(args.dir) / "stack.json"
    print(json.dumps(json.loads(f.read_text()), indent=2) if f.exists() else "no stack is up")
    return 0
