"""``optscale stack up|down|status|restart``: the local stack on loopback — a Kafka-compatible
broker (Tansu), a private redis-server and the four services as processes — in one command.

``up`` on a running stack starts only what is missing (nothing, when all is up: harmless);
``status`` shows each process's liveness and each service's gRPC health; ``restart SERVICE``
stops one service and starts it again. A failed ``up`` stops only what that ``up`` started.
The state file ``<dir>/stack.json`` records pids, ports and the services' environment."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "stack"
HELP = "start/stop the local stack: broker, redis-server and the four services on loopback"

SERVICES = ("generator", "verifier", "predictor", "controller")
INFRA = ("broker", "redis")
STOP_ORDER = ("controller", "generator", "verifier", "predictor", "redis", "broker")
# a pid is one of ours only while its command line still names the program (pids are reused)
MARKERS = {"broker": "tansu", "redis": "redis", **{s: f"services.{s}" for s in SERVICES}}


def ports(args: argparse.Namespace) -> dict[str, int]:
    return {name: args.grpc_base + i for i, name in enumerate(SERVICES)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status", "restart"])
    parser.add_argument("service", nargs="?", choices=SERVICES, help="restart: which service")
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
    parser.add_argument("--metrics-base", type=int, default=0,
                        help="Prometheus metrics ports: generator, verifier, predictor, "
                        "controller from here (e.g. 9091); default 0: not served")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds a started service has to become healthy")


def health(port: int, timeout: float) -> str:
    """The service's gRPC health status name (``SERVING``, ``NOT_SERVING``, ...), or
    ``unreachable``."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.common.security import Security, open_sync_channel

    try:
        with open_sync_channel(f"127.0.0.1:{port}", Security.from_env()) as ch:
            grpc.channel_ready_future(ch).result(timeout=timeout)
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
    except Exception:
        return "unreachable"


def _wait_healthy(port: int, pid: int, timeout: float) -> bool:
    """SERVING within ``timeout`` seconds; False at once if the process exits."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return False
        if health(port, 2) == "SERVING":
            return True
    return False


def _gone(pid: int) -> bool:
    """The process has exited (reaped here when it is our child, so that a zombie child does
    not look alive)."""
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
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"  # a zombie has exited
    except OSError:
        return False


def alive(name: str, pid: int | None) -> bool:
    """``pid`` is running and is still the ``name`` process the stack started."""
    if pid is None or _gone(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return MARKERS[name].encode() in f.read()
    except OSError:
        return True  # no /proc: trust the pid


class StackState:
    """``<dir>/stack.json``: pids of the processes, their ports and the services' env."""

    def __init__(self, path: Path, pids: dict[str, int], ports: dict[str, int],
                 env: dict[str, str]) -> None:
        self.path, self.pids, self.ports, self.env = path, pids, ports, env

    @classmethod
    def load(cls, d: Path) -> StackState | None:
        import json

        from optscale.errors import DataError

        path = d / "stack.json"
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            return cls(path, dict(raw["pids"]), dict(raw["ports"]), dict(raw["env"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(str(path), f"not a stack state file ({exc}); remove it") from exc

    def save(self) -> None:
        import json

        body = {"pids": self.pids, "ports": self.ports, "env": self.env}
        self.path.write_text(json.dumps(body, indent=2, sort_keys=True))


def _new_state(args: argparse.Namespace, d: Path) -> StackState:
    bootstrap = f"127.0.0.1:{args.broker_port}"
    env = {
        "OPTSCALE_KAFKA_BOOTSTRAP": bootstrap,
        "OPTSCALE_REDIS_URL": f"redis://127.0.0.1:{args.redis_port}/0",
        "OPTSCALE_GENERATOR_BACKEND": args.backend,
        "OPTSCALE_GENERATOR_KAFKA_BOOTSTRAP": bootstrap,
        "OPTSCALE_VERIFIER_KAFKA_BOOTSTRAP": bootstrap,
        "OPTSCALE_CONTROLLER_PARTITIONS": str(args.partitions),
        "OPTSCALE_CONTROLLER_GENERATOR": f"127.0.0.1:{ports(args)['generator']}",
        "OPTSCALE_CONTROLLER_PREDICTOR": f"127.0.0.1:{ports(args)['predictor']}",
    }
    if args.model:
        env["OPTSCALE_GENERATOR_MODEL"] = args.model
    for name, port in ports(args).items():
        env[f"OPTSCALE_{name.upper()}_HOST"] = "127.0.0.1"
        env[f"OPTSCALE_{name.upper()}_PORT"] = str(port)
        m = args.metrics_base + SERVICES.index(name) if args.metrics_base else 0
        env[f"OPTSCALE_{name.upper()}_METRICS_PORT"] = str(m)
    all_ports = {"broker": args.broker_port, "redis": args.redis_port, **ports(args)}
    return StackState(d / "stack.json", {}, all_ports, env)


def _start(state: StackState, name: str, d: Path) -> int:
    import os
    import subprocess
    import sys

    from services.common.infra import start_broker, start_redis

    if name == "broker":
        return start_broker(state.ports["broker"], log=d / "broker.log").pid
    if name == "redis":
        return start_redis(state.ports["redis"], log=d / "redis.log").pid
    with (d / f"{name}.log").open("ab") as log:
        p = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env={**os.environ, **state.env},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    return p.pid


def _stop(name: str, pid: int) -> None:
    import os
    import signal
    import time

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while not _gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    print(f"stopped {name} ({pid})")


def _tail(d: Path, name: str) -> str:
    log_file = d / f"{name}.log"
    tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
    return f"see {log_file}:\n  " + "\n  ".join(tail)


def up(args: argparse.Namespace) -> int:
    from optscale.errors import OptScaleError

    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    state = StackState.load(d)
    if state is not None and not any(alive(n, p) for n, p in state.pids.items()):
        print(f"the stack recorded in {state.path} is gone (nothing runs); starting a new one")
        state = None
    fresh = state is None
    if state is None:
        state = _new_state(args, d)
    else:
        lost = [n for n in INFRA if not alive(n, state.pids.get(n))]
        if lost:
            raise OptScaleError(
                f"the stack's {' and '.join(lost)} is not running and its data (in memory) "
                f"is gone: run `optscale stack down --dir {d}`, then `up`"
            )
    started: list[str] = []
    try:
        for name in (*INFRA, *SERVICES):
            if not alive(name, state.pids.get(name)):
                state.pids[name] = _start(state, name, d)
                started.append(name)
                state.save()
        for name in SERVICES:
            if name in started and not _wait_healthy(
                state.ports[name], state.pids[name], args.timeout
            ):
                print(f"{name} is not healthy; {_tail(d, name)}")
                _stop_started(state, started)
                return 1
    except BaseException:
        _stop_started(state, started)  # what this call started, nothing else
        raise
    bootstrap = f"127.0.0.1:{state.ports['broker']}"
    where = ", ".join(f"{n} :{state.ports[n]}" for n in SERVICES)
    if not started:
        print(f"stack already up: broker {bootstrap}, {where} (nothing started)")
        return 0
    if not fresh:
        print("started " + ", ".join(started) + " (the rest was up)")
    print(f"stack up: broker {bootstrap}, redis 127.0.0.1:{state.ports['redis']}, {where}")
    print("submit:  optscale submit questions.jsonl --bootstrap " + bootstrap)
    print("results: optscale results --bootstrap " + bootstrap + " --follow")
    print("stop:    optscale stack down")
    return 0


def _stop_started(state: StackState, started: list[str]) -> None:
    for name in STOP_ORDER:
        if name in started and name in state.pids:
            _stop(name, state.pids.pop(name))
    started.clear()
    if any(alive(n, p) for n, p in state.pids.items()):
        state.save()
    else:
        state.path.unlink(missing_ok=True)


def down(args: argparse.Namespace) -> int:
    state = StackState.load(Path(args.dir))
    if state is None:
        print("no stack is up")
        return 0
    for name in STOP_ORDER:
        pid = state.pids.get(name)
        if pid is not None and alive(name, pid):
            _stop(name, pid)
    state.path.unlink()
    return 0


def restart(args: argparse.Namespace) -> int:
    from optscale.errors import InvalidArgumentError, OptScaleError

    if args.service is None:
        raise InvalidArgumentError("service", None, f"restart needs one of {', '.join(SERVICES)}")
    d = Path(args.dir)
    state = StackState.load(d)
    if state is None:
        raise OptScaleError(f"no stack is up in {d}; run `optscale stack up`")
    name = args.service
    pid = state.pids.get(name)
    if pid is not None and alive(name, pid):
        _stop(name, pid)
    state.pids[name] = _start(state, name, d)
    state.save()
    if not _wait_healthy(state.ports[name], state.pids[name], args.timeout):
        print(f"{name} is not healthy; {_tail(d, name)}")
        return 1
    print(f"restarted {name} ({state.pids[name]}) :{state.ports[name]}")
    return 0


def status(args: argparse.Namespace) -> int:
    """One line per process: pid, running or dead, and a service's health. Exit code 0 when
    everything runs and serves, else 1."""
    state = StackState.load(Path(args.dir))
    if state is None:
        print("no stack is up")
        return 1
    ok = True
    for name in (*INFRA, *SERVICES):
        pid = state.pids.get(name)
        running = alive(name, pid)
        line = f"{name:<10} pid {pid or '-':<8} {'running' if running else 'dead':<8}"
        if name in SERVICES:
            h = health(state.ports[name], 2) if running else "-"
            ok = ok and h == "SERVING"
            line += f" health {h:<12} :{state.ports[name]}"
        else:
            line += f" :{state.ports[name]}"
        ok = ok and running
        print(line.rstrip())
    return 0 if ok else 1


def run(args: argparse.Namespace) -> int:
    actions = {"up": up, "down": down, "status": status, "restart": restart}
    return int(actions[args.action](args))
