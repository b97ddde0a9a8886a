"""OpenAI-compatible backend against a real loopback HTTP server speaking the streaming chat
completions protocol (interleaved choices, per-token log-probs); cancel = close the stream,
which the server sees as a disconnect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from optscale.engines.generation.openai import Backend
from optscale.errors import BackendUnavailableError, InvalidArgumentError
from optscale.ports import GenerateRequest
from optscale.types import SamplingParams
from services.common.infra import free_port


@dataclass
class FakeServer:
    """Streams ``scripts[i]`` (list of tokens) for choice i, one chunk per token, round robin."""

    scripts: list[list[str]]
    status: int = 200
    delay: float = 0.0
    truncate_after: int | None = None  # close the stream early after this many chunks
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        hdrs = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        self.headers.append({k.lower(): v for k, v in hdrs.items()})
        body = await reader.readexactly(int(self.headers[-1]["content-length"]))
        self.bodies.append(json.loads(body))
        if self.status != 200:
            msg = b'{"error": {"message": "nope"}}'
            writer.write(
                f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(msg)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + msg
            )
            await writer.drain()
            writer.close()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        sent = 0
        try:
            for chunk in self.chunks():
                if self.truncate_after is not None and sent >= self.truncate_after:
                    break
                writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
                await writer.drain()
                sent += 1
                if reader.at_eof():
                    self.disconnected.set()
                    break
                await asyncio.sleep(self.delay)
            else:
                writer.write(b"data: [DONE]\n\n")
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            self.disconnected.set()
        finally:
            writer.close()

    def chunks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        longest = max(len(s) for s in self.scripts)
        for t in range(longest + 1):
            for i, script in enumerate(self.scripts):
                if t < len(script):
                    lp = {"content": [{"token": script[t], "logprob": -0.1 * (t + 1)}]}
                    ch = {"index": i, "delta": {"content": script[t]}, "logprobs": lp}
                    out.append({"choices": [{**ch, "finish_reason": None}]})
                elif t == len(script):
                    reason = "length" if i == 0 and len(script) > 3 else "stop"
                    out.append({"choices": [{"index": i, "delta": {}, "finish_reason": reason}]})
        out.append({"choices": [], "usage": {"completion_tokens": 0}})
        return out


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer(scripts=[])
    srv = await asyncio.start_server(fake.handle, "127.0.0.1", free_port())
    fake.port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield fake
        srv.close()


def _backend(fake: FakeServer) -> Backend:
    return Backend("served-model", base_url=f"http://127.0.0.1:{fake.port}/v1", api_key="k1")


def _req(k: int, max_tokens: int = 64) -> GenerateRequest:
    return GenerateRequest("q7", "What is 2+2?", k, SamplingParams(max_tokens=max_tokens, seed=3))


async def test_streams_k_choices_with_exact_tokens_and_logprobs(server: FakeServer) -> None:
    server.scripts = [["The", " answer", "\n\n", "is \\boxed{4}"], ["4"], ["so", " \\boxed{5}"]]
    out = [s async for s in _backend(server).generate(_req(3))]
    by_id = {s.sample_id: s for s in out}
    assert [s.sample_id for s in out] == ["q7/1", "q7/2", "q7/0"]  # in finishing order
    assert by_id["q7/0"].text == "The answer\n\nis \\boxed{4}" and by_id["q7/0"].answer == "4"
    assert by_id["q7/0"].completion_tokens == 4 and by_id["q7/0"].finish_reason == "length"
    assert by_id["q7/2"].answer == "5" and by_id["q7/2"].finish_reason == "stop"
    assert by_id["q7/0"].step_logprobs == pytest.approx((-0.2, -0.4))  # the separator closes step 1
    assert by_id["q7/1"].mean_logprob == pytest.approx(-0.1)
    assert by_id["q7/1"].self_certainty is None
    body = server.bodies[0]
    assert body["n"] == 3 and body["stream"] and body["logprobs"] and body["seed"] == 3
    assert body["model"] == "served-model" and body["messages"][0]["content"] == "What is 2+2?"
    assert server.headers[0]["authorization"] == "Bearer k1"


async def test_closing_the_stream_disconnects_from_the_server(server: FakeServer) -> None:
    server.scripts = [["a"], ["b"] * 5000]
    server.delay = 0.002
    backend = _backend(server)
    stream = backend.generate(_req(2, max_tokens=4000))
    first = await anext(stream)
    assert first.sample_id == "q7/0"
    await stream.aclose()
    await asyncio.wait_for(server.disconnected.wait(), 10)
    assert backend.requests_closed_early == 1


async def test_cancelling_the_consumer_task_disconnects(server: FakeServer) -> None:
    server.scripts = [["b"] * 5000]
    server.delay = 0.002

    async def consume() -> None:
        async for _ in _backend(server).generate(_req(1, max_tokens=4000)):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(server.disconnected.wait(), 10)


@pytest.mark.parametrize(
    ("status", "error"), [(400, InvalidArgumentError), (503, BackendUnavailableError)]
)
async def test_http_errors_are_typed(server: FakeServer, status: int, error: type) -> None:
    server.scripts, server.status = [["x"]], status
    with pytest.raises(error, match=str(status)):
        [s async for s in _backend(server).generate(_req(1))]


async def test_a_stream_that_ends_early_is_an_error_not_a_short_answer(
    server: FakeServer,
) -> None:
    server.scripts, server.truncate_after = [["x", "y"], ["z"]], 2
    with pytest.raises(BackendUnavailableError, match="0 of 2"):
        [s async for s in _backend(server).generate(_req(2))]


async def test_unreachable_server_and_bad_config() -> None:
    b = Backend("m", base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(BackendUnavailableError):
        [s async for s in b.generate(_req(1))]
    with pytest.raises(InvalidArgumentError, match="openai_base_url"):
        Backend("m", base_url="", transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    with pytest.raises(InvalidArgumentError, match="model"):
        Backend(None, base_url="http://x/v1")
    with pytest.raises(InvalidArgumentError, match="k"):
        [s async for s in b.generate(_req(65))]


async def test_over_grpc_built_from_config_and_unreachable_is_unavailable(
    server: FakeServer, serve: Any, log: Any
) -> None:
    import grpc

    from optscale.v1 import common_pb2, generator_pb2, generator_pb2_grpc
    from services.generator.config import GeneratorConfig
    from services.generator.server import SERVICE, GeneratorServicer, make_backend

    server.scripts = [["\\boxed{4}"], ["\\boxed{5}"]]
    stubs = []
    for url in (f"http://127.0.0.1:{server.port}/v1", f"http://127.0.0.1:{free_port()}/v1"):
        cfg = GeneratorConfig(backend="openai", model="m", openai_base_url=url)
        servicer = GeneratorServicer(make_backend(cfg), log)
        channel = await serve(
            [SERVICE],
            lambda s, sv=servicer: generator_pb2_grpc.add_GeneratorServicer_to_server(sv, s),
        )
        stubs.append(generator_pb2_grpc.GeneratorStub(channel))
    req = generator_pb2.GenerateRequest(
        question_id="q", prompt="2+2?", k=2, params=common_pb2.SamplingParams(max_tokens=8)
    )
    events = [ev async for ev in stubs[0].Generate(req)]
    assert sorted(e.candidate.answer for e in events) == ["4", "5"]
    assert all(e.candidate.completion_tokens == 1 for e in events)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        [ev async for ev in stubs[1].Generate(req)]
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
