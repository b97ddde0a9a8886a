"""Tracing across the services (issue 19, item 2), on the real broker and redis-server with
the in-process pipeline and the OpenTelemetry SDK's in-memory exporter: one question's spans
form one connected trace — controller lease -> generator sample (context in gRPC metadata) ->
verifier score (Kafka headers on optscale.candidates) -> controller event (Kafka headers on
optscale.question-events) -> the next lease, the stop decision and the cancel — under the
trace id derived from the question id, with no span of another question in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from optscale.engines.generation.sim import Backend as Sim
from services.common import tracing
from services.common.infra import Proc
from services.local import LocalPipeline
from tests.integration.conftest import local_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture
async def traced(broker: Proc, redis_server: Proc) -> AsyncIterator[tuple[LocalPipeline, Any]]:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    try:
        async with local_pipeline(broker, redis_server, Sim(seed=0, token_delay=0.0005)) as p:
            yield p, exporter
    finally:
        tracing.shutdown()


def _trace(exporter: InMemorySpanExporter, q: str) -> list[Any]:
    tid = tracing.trace_ids(q)[0]
    return [s for s in exporter.get_finished_spans() if s.context.trace_id == tid]


def _complete(spans: list[Any]) -> bool:
    """Every parent has ended too, and the stop decision and its cancel are in."""
    ids = {s.context.span_id for s in spans}
    names = {s.name for s in spans}
    parents_in = all(s.parent is None or s.parent.span_id in ids for s in spans)
    return parents_in and {"optscale.question", "controller.stop", "controller.cancel"} <= names


async def test_one_question_is_one_connected_trace_across_the_services(
    traced: tuple[LocalPipeline, Any],
) -> None:
    stack, exporter = traced
    q, other = "trace-0", "trace-1"
    await stack.submit([q, other], "optscale0", 16, 0.9)
    results = {r.question_id: r for r in await stack.results({q, other}, "t-traces")}
    async with asyncio.timeout(30):  # cancelled samples end their spans after the result
        while not _complete(_trace(exporter, q)):  # noqa: ASYNC110 - the exporter has no event
            await asyncio.sleep(0.05)
    spans = _trace(exporter, q)
    by_id = {s.context.span_id: s for s in spans}

    def parent(s: Any) -> Any:
        return by_id[s.parent.span_id]

    # one root: the deterministic one, recorded by the controller that took the question up
    tid, root_id = tracing.trace_ids(q)
    (root,) = [s for s in spans if s.parent is None]
    assert (root.name, root.context.span_id) == ("optscale.question", root_id)
    # every span of the question is in its trace, and only the question's spans are
    mine = [
        s for s in exporter.get_finished_spans() if s.attributes.get("optscale.question_id") == q
    ]
    assert {s.context.span_id for s in mine} <= set(by_id)
    unnamed = {s.name for s in spans if s.attributes.get("optscale.question_id") != q}
    assert unnamed <= {"controller.cancel"}  # the cancel span is the stop's child
    assert {s.instrumentation_scope.name for s in spans} == {
        "optscale.controller",
        "optscale.generator",
        "optscale.verifier",
    }
    named: dict[str, list[Any]] = {}
    for s in spans:
        named.setdefault(s.name, []).append(s)
    # controller -> generator: each sample is a child of the lease that asked for it
    for s in named["generator.sample"]:
        assert parent(s).name == "controller.lease"
        assert s.attributes["optscale.sample_id"].startswith(f"{q}/")
    # generator -> verifier: each score is a child of its sample
    for s in named["verifier.score"]:
        p = parent(s)
        assert p.name == "generator.sample"
        assert p.attributes["optscale.sample_id"] == s.attributes["optscale.sample_id"]
    # verifier -> controller: each applied score event is a child of its score
    assert len(named["controller.scored"]) >= results[q].samples_used > 1
    assert all(parent(s).name == "verifier.score" for s in named["controller.scored"])
    # ... and the controller's next lease continues from the score that led to it
    assert any(parent(s).name == "controller.scored" for s in named["controller.lease"])
    (stop,) = named["controller.stop"]
    assert stop.attributes["optscale.stop_reason"] == results[q].stop_reason
    assert stop.attributes["optscale.scored"] == results[q].samples_used
    (cancel,) = named["controller.cancel"]
    assert parent(cancel) is stop
    # the score batches are traces of their own, linked to the samples they scored
    samples = {s.context.span_id for s in named["generator.sample"]}
    batches = [s for s in exporter.get_finished_spans() if s.name == "verifier.score_batch"]
    assert any(link.context.span_id in samples for b in batches for link in b.links)
    assert all(b.context.trace_id != tid for b in batches)
    # the other question has a trace of its own
    assert _trace(exporter, other) and tracing.trace_ids(other)[0] != tid
