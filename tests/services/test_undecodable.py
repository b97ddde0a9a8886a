"""Bytes that are not the method's request message get INVALID_ARGUMENT with a plain message
(not UNKNOWN with the protobuf parser's), on unary and server-streaming methods, and with
token auth switched on an unauthenticated caller still gets UNAUTHENTICATED first."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from optscale.engines.generation.sim import Backend as Sim
from optscale.v1 import generator_pb2, generator_pb2_grpc
from services.common.security import Security
from services.common.server import Server
from services.generator.server import SERVICE, GeneratorServicer

GARBAGE = b"\xff\xff\xff\xff\x0f"  # a truncated varint: no protobuf parser accepts it


async def _raw(channel: grpc.aio.Channel, method: str, streaming: bool) -> grpc.StatusCode:
    ident = lambda b: b  # noqa: E731 - send and receive raw bytes
    with pytest.raises(grpc.aio.AioRpcError) as err:
        if streaming:
            call = channel.unary_stream(method, request_serializer=ident,
                                        response_deserializer=ident)
            [x async for x in call(GARBAGE, timeout=10)]
        else:
            call = channel.unary_unary(method, request_serializer=ident,
                                       response_deserializer=ident)
            await call(GARBAGE, timeout=10)
    assert "valid" in (err.value.details() or "") or err.value.code() != (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    return err.value.code()


@pytest.mark.parametrize(
    ("method", "streaming"),
    [("/grpc.health.v1.Health/Check", False), ("/optscale.v1.Generator/Generate", True)],
)
async def test_undecodable_requests_are_invalid_arguments(
    serve: Any, log: Any, method: str, streaming: bool
) -> None:
    def add(server: Any) -> None:
        generator_pb2_grpc.add_GeneratorServicer_to_server(GeneratorServicer(Sim(), log), server)

    channel = await serve([SERVICE], add)
    assert await _raw(channel, method, streaming) == grpc.StatusCode.INVALID_ARGUMENT
    # and a good request on the same server still works
    stub = generator_pb2_grpc.GeneratorStub(channel)
    req = generator_pb2.GenerateRequest(question_id="q", prompt="p", k=1)
    req.params.max_tokens = 8
    assert len([ev async for ev in stub.Generate(req, timeout=10)]) == 1


async def test_authentication_comes_before_decoding(log: Any) -> None:
    server = Server([SERVICE], Security(auth_token="t0k"))
    generator_pb2_grpc.add_GeneratorServicer_to_server(GeneratorServicer(Sim(), log), server.server)
    port = await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            code = await _raw(ch, "/optscale.v1.Generator/Generate", True)
            assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(0)
