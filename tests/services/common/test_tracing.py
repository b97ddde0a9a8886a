"""services/common/tracing.py: off by default, the question's deterministic trace, and the
context carried through Kafka headers and gRPC metadata (with the SDK's in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from optscale.errors import InvalidArgumentError
from services.common import tracing


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    yield exporter
    tracing.shutdown()


def test_off_by_default_and_from_env() -> None:
    assert tracing.wanted({}) is False
    assert tracing.wanted({"OPTSCALE_TRACING": "1"}) is True
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}) is True
    off = {"OPTSCALE_TRACING": "0", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert tracing.wanted(off) is False
    with pytest.raises(InvalidArgumentError, match="OPTSCALE_TRACING"):
        tracing.wanted({"OPTSCALE_TRACING": "maybe"})
    try:
        assert tracing.configure({}) is False
        assert tracing.enabled() is False
        # off: nothing is recorded and nothing is propagated
        with tracing.span("controller", "x", question_id="q1") as s:
            assert s is None
            assert tracing.kafka_headers() is None
            assert tracing.grpc_metadata() is None
        assert tracing.start("generator", "y") is None
        parent = b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"
        assert tracing.from_kafka([("traceparent", parent)]) is None
    finally:
        tracing.shutdown()


def test_trace_ids_are_deterministic_per_question() -> None:
    assert tracing.trace_ids("q1") == tracing.trace_ids("q1")
    assert tracing.trace_ids("q1")[0] != tracing.trace_ids("q2")[0]


def test_root_span_and_children_share_the_question_trace(spans: InMemorySpanExporter) -> None:
    tracing.root_span("controller", "q1", n_max=8)
    with tracing.span("controller", "controller.lease", question_id="q1"):
        with tracing.span("controller", "controller.stop", question_id="q1"):
            pass
    with tracing.span("controller", "other", question_id="q2"):  # not on q1's trace
        with tracing.span("controller", "controller.cancel", question_id="q1"):
            pass
    by_name: dict[str, Any] = {s.name: s for s in spans.get_finished_spans()}
    tid, sid = tracing.trace_ids("q1")
    root = by_name["optscale.question"]
    assert (root.context.trace_id, root.context.span_id, root.parent) == (tid, sid, None)
    assert root.attributes["optscale.question_id"] == "q1"
    assert root.attributes["optscale.n_max"] == 8
    lease, stop = by_name["controller.lease"], by_name["controller.stop"]
    assert lease.context.trace_id == tid and lease.parent.span_id == sid
    assert stop.parent.span_id == lease.context.span_id
    # inside another question's span, q1's span goes to q1's root, not to q2's span
    cancel = by_name["controller.cancel"]
    assert (cancel.context.trace_id, cancel.parent.span_id) == (tid, sid)
    assert by_name["other"].context.trace_id == tracing.trace_ids("q2")[0]


@pytest.mark.parametrize("carrier", ["kafka", "grpc"])
def test_context_round_trips(spans: InMemorySpanExporter, carrier: str) -> None:
    class Call:
        def __init__(self, md: Any) -> None:
            self.md = md

        def invocation_metadata(self) -> Any:
            return [("user-agent", "x"), *self.md]

    with tracing.span("generator", "generator.sample", question_id="q1") as sample:
        if carrier == "kafka":
            headers = tracing.kafka_headers()
            assert headers is not None and headers[0][0] == "traceparent"
            ctx = tracing.from_kafka([("reason", b"x"), *headers])
        else:
            ctx = tracing.from_grpc(Call(tracing.grpc_metadata()))
    with tracing.span("verifier", "verifier.score", parent=ctx):
        pass
    s = tracing.start("verifier", "late", links=[ctx])
    tracing.end(s, score=0.5)
    by_name: dict[str, Any] = {x.name: x for x in spans.get_finished_spans()}
    score = by_name["verifier.score"]
    assert score.context.trace_id == sample.get_span_context().trace_id
    assert score.parent.span_id == sample.get_span_context().span_id
    assert by_name["late"].links[0].context.span_id == sample.get_span_context().span_id
    assert by_name["late"].attributes["optscale.score"] == 0.5


def test_missing_or_foreign_context_is_none(spans: InMemorySpanExporter) -> None:
    assert tracing.from_kafka(None) is None
    assert tracing.from_kafka([("reason", b"poison")]) is None
    assert tracing.from_kafka([("traceparent", b"garbage")]) is None
    assert tracing.from_grpc(object()) is None


async def test_cancelled_is_marked_and_an_error_is_recorded(spans: InMemorySpanExporter) -> None:
    import asyncio

    async def lease() -> None:
        with tracing.span("controller", "controller.lease", question_id="q1"):
            await asyncio.Event().wait()

    task = asyncio.create_task(lease())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ValueError):
        with tracing.span("verifier", "verifier.score_batch"):
            raise ValueError("engine down")
    assert tracing.in_trace() is False
    by_name: dict[str, Any] = {s.name: s for s in spans.get_finished_spans()}
    leased = by_name["controller.lease"]
    assert leased.attributes["optscale.cancelled"] is True
    assert leased.status.status_code.name == "UNSET"
    failed = by_name["verifier.score_batch"]
    assert failed.status.status_code.name == "ERROR" and "engine down" in failed.status.description
    assert failed.events[0].name == "exception"


def test_spans_go_to_the_configured_otlp_endpoint() -> None:
    """A real OTLP gRPC receiver on loopback gets the spans (flushed by shutdown)."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as pb_grpc

    received: list[Any] = []

    class Receiver(pb_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.append(request)
            return pb.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_TraceServiceServicer_to_server(Receiver(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
        assert tracing.configure(env) is True
        tracing.root_span("controller", "q-otlp")
        tracing.shutdown()
    finally:
        server.stop(None)
    names = [
        (s.name, s.trace_id)
        for r in received
        for rs in r.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    tid = tracing.trace_ids("q-otlp")[0].to_bytes(16, "big")
    assert names == [("optscale.question", tid)]
