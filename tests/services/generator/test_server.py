"""Generator service over real gRPC: streaming, cancellation aborts the engine, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from optscale.engines.generation.llamacpp import Backend as Llama
from optscale.engines.generation.sim import Backend as Sim
from optscale.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from services.generator.server import SERVICE, GeneratorServicer


def _req(k: int = 3, **kw: Any) -> generator_pb2.GenerateRequest:
    params = kw.pop("params", common_pb2.SamplingParams(max_tokens=64, seed=1))
    return generator_pb2.GenerateRequest(
        question_id=kw.pop("question_id", "q1"),
        prompt=kw.pop("prompt", "What is 2 + 3?"),
        k=k,
        params=params,
        **kw,
    )


async def _stub(serve: Any, backend: Any, log: Any) -> generator_pb2_grpc.GeneratorStub:
    servicer = GeneratorServicer(backend, log)
    channel = await serve(
        [SERVICE], lambda s: generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, s)
    )
    return generator_pb2_grpc.GeneratorStub(channel)


async def test_streams_one_event_per_sample_and_reports_health(serve: Any, log: Any) -> None:
    servicer = GeneratorServicer(Sim(seed=0), log)
    channel = await serve(
        [SERVICE], lambda s: generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, s)
    )
    stub = generator_pb2_grpc.GeneratorStub(channel)
    events = [ev async for ev in stub.Generate(_req(k=3, first_index=2, epoch=7))]
    assert [e.candidate.sample_id for e in events] == ["q1/2", "q1/3", "q1/4"]
    for e in events:
        c = e.candidate
        assert c.completion_tokens > 0 and c.finish_reason == common_pb2.FINISH_REASON_STOP
        assert c.HasField("mean_logprob") and c.epoch == 7 and c.prompt == "What is 2 + 3?"
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        r = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert r.status == health_pb2.HealthCheckResponse.SERVING


async def test_with_publish_the_stream_carries_ids_and_counts_only(serve: Any, log: Any) -> None:
    """``publish``: the candidates (text, prompt) go to the publisher, the caller's stream
    gets each sample by reference — what a controller needs, a bounded size."""
    published: list[common_pb2.Candidate] = []

    async def publish(c: common_pb2.Candidate) -> None:
        published.append(c)

    servicer = GeneratorServicer(Sim(seed=0), log, publish)
    channel = await serve(
        [SERVICE], lambda s: generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, s)
    )
    stub = generator_pb2_grpc.GeneratorStub(channel)
    prompt = "What is 2 + 3? " * 20  # 300 characters
    events = [ev async for ev in stub.Generate(_req(k=3, prompt=prompt, epoch=2, publish=True))]
    assert [e.WhichOneof("sample") for e in events] == ["done"] * 3
    by_id = {c.sample_id: c for c in published}
    assert sorted(by_id) == sorted(e.done.sample_id for e in events) == ["q1/0", "q1/1", "q1/2"]
    for e in events:
        c = by_id[e.done.sample_id]
        assert c.text and c.prompt == prompt and c.epoch == 2  # the text went to Kafka
        assert (e.done.completion_tokens, e.done.prompt_tokens, e.done.finish_reason) == (
            c.completion_tokens,
            c.prompt_tokens,
            c.finish_reason,
        )
        assert e.done.completion_tokens > 0 and e.ByteSize() < 40 < len(prompt)


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (_req(prompt=""), "prompt"),
        (_req(prompt="x" * 40_000), "prompt"),
        (_req(k=0), "k"),
        (_req(k=65), "k"),
        (_req(question_id=""), "question_id"),
        (_req(params=common_pb2.SamplingParams(temperature=9, top_p=0.9)), "temperature"),
        (_req(params=common_pb2.SamplingParams(temperature=0.7, top_p=1.5)), "top_p"),
        (_req(params=common_pb2.SamplingParams(max_tokens=100_000)), "max_tokens"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    serve: Any, log: Any, req: generator_pb2.GenerateRequest, field: str
) -> None:
    stub = await _stub(serve, Sim(), log)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        _ = [ev async for ev in stub.Generate(req)]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")
    # the server is still alive
    assert len([ev async for ev in stub.Generate(_req(k=1))]) == 1


@pytest.fixture(scope="module")
def llama() -> Iterator[Llama]:
    b = Llama("smollm2", n_ctx=1024, n_threads=2, max_k=8, max_tokens=512)
    yield b
    b.close()


@pytest.mark.model
async def test_real_model_over_grpc_and_cancel_aborts_within_one_step(
    serve: Any, log: Any, llama: Llama
) -> None:
    stub = await _stub(serve, llama, log)
    events = [
        ev
        async for ev in stub.Generate(
            _req(
                k=2,
                params=common_pb2.SamplingParams(
                    temperature=0.7, top_p=0.95, max_tokens=16, seed=5
                ),
            )
        )
    ]
    assert len(events) == 2 and all(e.candidate.text for e in events)

    call = stub.Generate(
        _req(
            k=4,
            params=common_pb2.SamplingParams(temperature=0.7, top_p=0.95, max_tokens=400, seed=5),
        )
    )
    reader = asyncio.create_task(anext(aiter(call)))
    while llama.tokens_total < events[0].candidate.completion_tokens * 2 + 10:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # polls a counter the engine thread bumps
    at_cancel = llama.tokens_total
    call.cancel()
    reader.cancel()
    # wait until the engine thread is idle: a no-op queued behind the aborted decode ran
    await asyncio.sleep(0.3)
    await asyncio.get_running_loop().run_in_executor(llama._pool, lambda: None)
    after = llama.tokens_total - at_cancel
    assert after <= 3, f"{after} tokens decoded after cancel"  # in-flight step + gRPC latency
    assert llama.tokens_after_abort <= 1


async def test_calls_beyond_max_inflight_wait_their_turn(serve: Any, log: Any) -> None:
    servicer = GeneratorServicer(Sim(seed=0, token_delay=0.0005), log, max_inflight=4)
    ch = await serve(
        [SERVICE], lambda s: generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, s)
    )
    stub = generator_pb2_grpc.GeneratorStub(ch)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, servicer.inflight)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())

    async def run(i: int) -> list[Any]:
        return [ev async for ev in stub.Generate(_req(k=3, question_id=f"q{i}"))]

    outs = await asyncio.gather(*(run(i) for i in range(5)))
    watcher.cancel()
    assert [len(o) for o in outs] == [3] * 5  # everything ran, never more than 4 at once
    assert 3 <= peak <= 4 and servicer.inflight == 0


async def test_samples_waiting_for_room_are_counted_as_queued_demand(serve: Any, log: Any) -> None:
    """The autoscaler's demand metric: samples waiting under max_inflight are exported as
    ``optscale_generator_queued_samples`` (in-flight ones as ..._inflight_samples), so a
    saturated pool reports more demand than its capacity."""
    from prometheus_client import REGISTRY

    from tests.services.kafka_standin import until

    def gauge(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    servicer = GeneratorServicer(Sim(seed=0, token_delay=0.05), log, max_inflight=4)
    ch = await serve(
        [SERVICE], lambda s: generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, s)
    )
    stub = generator_pb2_grpc.GeneratorStub(ch)
    queued0 = gauge("optscale_generator_queued_samples")
    calls = [stub.Generate(_req(k=3, question_id=f"w{i}")) for i in range(3)]
    firsts = [asyncio.create_task(c.read()) for c in calls]  # starts all three calls
    await until(lambda: servicer.queued == 6)  # one call admitted (3 of 4 slots), two waiting
    assert servicer.inflight == 3
    assert gauge("optscale_generator_queued_samples") - queued0 == 6
    for c in calls:
        c.cancel()
    await asyncio.gather(*firsts, return_exceptions=True)
    await until(lambda: not servicer.queued and not servicer.inflight)
    assert gauge("optscale_generator_queued_samples") == queued0
