"""Leases notice dead peers (issue 15, item 9): two generator processes (sim backend) behind one
round-robin channel, leases open on both, then one generator is SIGSTOPped — its process
holds its sockets open and the kernel still ACKs, so without keepalive or a deadline its
streams would wait forever. Keepalive PINGs fail them within interval + timeout and the leases
get the same sample ids from the other generator; with keepalive off, the lease deadline cuts
them instead."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from optscale.ports import GenerateRequest
from optscale.types import SamplingParams
from optscale.v1 import events_pb2
from services.common.infra import Proc, free_port_block
from services.common.keepalive import Keepalive
from services.controller.clients import GrpcGenerator
from services.controller.lease import Leaser

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TOKEN_DELAY = 0.04  # 64 tokens per sample (max_tokens): ~2.6 s per sample
LEASES, K = 2, 3


class Recorder:
    """The controller's generator client, watched: which sample ids came back, and every error
    a Generate call ended with (time, status code)."""

    def __init__(self, inner: GrpcGenerator) -> None:
        self.inner = inner
        self.done: set[str] = set()
        self.errors: list[tuple[float, Any]] = []
        self.progress = asyncio.Event()

    async def generate(self, req: GenerateRequest, *, epoch: int) -> AsyncIterator[str]:
        try:
            async for sid in self.inner.generate(req, epoch=epoch):
                self.done.add(sid)
                self.progress.set()
                yield sid
        except grpc.aio.AioRpcError as exc:
            self.errors.append((time.monotonic(), exc.code()))
            raise


@dataclass
class Generators:
    """Generator processes (sim backend, publishing to the test broker) on two fixed ports."""

    env: dict[str, str]
    logs: Path
    ports: tuple[int, int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, port: int) -> subprocess.Popen[bytes]:
        log = (self.logs / f"generator-{port}.log").open("ab")
        cmd = [sys.executable, "-m", "services.generator", "--port", str(port)]
        self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log))
        return self.procs[-1]


@pytest.fixture
def generators(broker: Proc, tmp_path: Path) -> Iterator[Generators]:
    base = free_port_block(2)
    env = {
        **os.environ,
        "OPTSCALE_GENERATOR_BACKEND": "sim",
        "OPTSCALE_GENERATOR_SIM_TOKEN_DELAY": str(TOKEN_DELAY),
        "OPTSCALE_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.port}",
        "OPTSCALE_GENERATOR_HOST": "127.0.0.1",
        "OPTSCALE_GENERATOR_METRICS_PORT": "0",
        "OPTSCALE_GRPC_KEEPALIVE_SECONDS": "1",
        "OPTSCALE_LOG_LEVEL": "warning",
    }
    gens = Generators(env, tmp_path, (base, base + 1))
    try:
        yield gens
    finally:
        for p in gens.procs:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


async def _listening(port: int) -> None:
    async with asyncio.timeout(60):  # process start and imports, on a loaded machine
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            await ch.channel_ready()


async def _run_leases(
    gens: Generators, keepalive: Keepalive, deadline_s: float, *, spare: bool
) -> tuple[Recorder, list[events_pb2.QuestionEvent], float]:
    """Open LEASES leases of K samples on generator A, then (``spare``) start generator B
    behind the same round-robin channel, SIGSTOP A while its samples are being decoded and
    wait for every lease to end. Returns the recorder, the SampleFailed events the leases
    published and the monotonic time of the SIGSTOP."""
    a, b = gens.ports
    target = f"ipv4:127.0.0.1:{a},127.0.0.1:{b}" if spare else f"127.0.0.1:{a}"
    proc_a = gens.spawn(a)
    await _listening(a)
    client = GrpcGenerator(target, deadline_s=deadline_s, keepalive=keepalive)
    failed: list[events_pb2.QuestionEvent] = []

    async def publish(topic: str, key: str, value: bytes, **_: Any) -> None:
        failed.append(events_pb2.QuestionEvent.FromString(value))

    try:
        rec = Recorder(client)
        # retries spread over ~11 s: room for B's subchannel to reconnect (backoff <= 5 s)
        leaser = Leaser(rec, publish, "events", retry_base=1.0, retry_cap=4.0)
        params = SamplingParams(max_tokens=64, seed=7)
        reqs = [GenerateRequest(f"lease-{i}", "prompt", K, params) for i in range(LEASES)]
        tasks = [asyncio.create_task(leaser.run(r, epoch=1)) for r in reqs]
        async with asyncio.timeout(30):
            await rec.progress.wait()
        if spare:
            gens.spawn(b)
            await _listening(b)
        proc_a.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        # without keepalive and deadline the leases on the stopped generator never end
        async with asyncio.timeout(90):
            await asyncio.gather(*tasks)
        return rec, failed, stopped_at
    finally:
        await client.close()


def test_keepalive_notices_a_stopped_generator(generators: Generators) -> None:
    ka = Keepalive(interval_s=1.0, timeout_s=1.0)
    rec, failed, stopped_at = asyncio.run(_run_leases(generators, ka, 0, spare=True))
    cut = [(t - stopped_at, code) for t, code in rec.errors if t >= stopped_at]
    print(f"\nkeepalive 1 s + 1 s: streams cut {[(round(s, 2), c.name) for s, c in cut]}")
    # each lease's stream is cut once, by the keepalive (the lease deadline is off), within
    # the configured interval + timeout (plus slack for a loaded machine); with gRPC's own
    # 60 s PING timeout left in place it would take a minute
    assert cut and cut[0][1] == grpc.StatusCode.UNAVAILABLE
    assert cut[0][0] < ka.interval_s + ka.timeout_s + 8.0
    # every sample of every lease came back (the cut ones from the other generator)
    want = {f"lease-{i}/{j}" for i in range(LEASES) for j in range(K)}
    assert rec.done == want and not failed


def test_lease_deadline_cuts_a_stopped_generator_without_keepalive(
    generators: Generators,
) -> None:
    """Alone, a stopped generator is cut at every attempt's deadline; after the lease's retries
    the samples it did not deliver are reported failed, so the controller re-dispatches them."""
    no_keepalive = Keepalive(interval_s=0)
    rec, failed, stopped_at = asyncio.run(_run_leases(generators, no_keepalive, 4.0, spare=False))
    cut = [(t - stopped_at, code) for t, code in rec.errors if t >= stopped_at]
    print(f"\nlease deadline 4 s: streams cut {[(round(s, 2), c.name) for s, c in cut]}")
    assert cut and {code for _, code in cut} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    reported = [ev.sample_failed.sample_id for ev in failed]
    want = {f"lease-{i}/{j}" for i in range(LEASES) for j in range(K)}
    assert rec.done | set(reported) == want and not rec.done & set(reported)
    assert len(reported) == len(set(reported)) and reported
