"""Undecodable request bytes get ``INVALID_ARGUMENT`` (grpc itself answers ``UNKNOWN`` with
the protobuf parser's message): a server interceptor takes over the decoding of every
unary-request method and aborts with a plain message naming the method when it fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc


async def _decode(
    raw: bytes, deserialize: Callable[[bytes], Any], context: Any, method: str
) -> Any:
    try:
        return deserialize(raw)
    except Exception:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {method} message"
        )


class DecodeRequests(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps unary-request handlers (unary-unary and unary-stream); request-streaming
    methods keep grpc's own decoding."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        deserialize = handler.request_deserializer
        method = details.method or "?"
        serialize = handler.response_serializer
        if handler.response_streaming:
            stream = handler.unary_stream

            async def unary_stream(raw: bytes, context: Any) -> AsyncIterator[Any]:
                out = stream(await _decode(raw, deserialize, context, method), context)
                if hasattr(out, "__aiter__"):
                    async for item in out:
                        yield item
                else:  # a coroutine writing with context.write
                    await out

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, response_serializer=serialize
            )
        unary = handler.unary_unary

        async def unary_unary(raw: bytes, context: Any) -> Any:
            return await unary(await _decode(raw, deserialize, context, method), context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, response_serializer=serialize)
