"""OpenTelemetry tracing across the services: one trace per question.

Off by default, and then free: every helper here checks one flag and returns ``None`` or a
shared no-op context manager (OpenTelemetry is not even imported). It turns on, on first use,
when ``OPTSCALE_TRACING`` is ``1``/``true``/``on`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
(``OPTSCALE_TRACING=0`` keeps it off even then); spans go to the OTLP gRPC exporter (its own
``OTEL_EXPORTER_OTLP_*`` settings; default endpoint ``localhost:4317``) through a batch
processor. Tests call :func:`configure` with an exporter of their own.

The trace of a question has a **deterministic id** derived from the question id
(:func:`trace_ids`), and so does its root span: the controller that takes the question up
records the root (:func:`root_span`), and every controller span of that question — on any
controller, also one that resumed the question after a failover — is a child of the current
span when that belongs to the question's trace (a context carried in by the event) and of the
root otherwise. Across processes the context travels as a W3C ``traceparent`` in gRPC
metadata (controller lease -> generator) and in Kafka headers (generator -> verifier on
``optscale.candidates``, verifier -> controller on ``optscale.question-events``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from optscale.errors import InvalidArgumentError

TRUE, FALSE = ("1", "true", "on", "yes"), ("0", "false", "off", "no", "")
HEADER = "traceparent"
_NOOP = contextlib.nullcontext()
_state: dict[str, Any] = {"configured": False, "enabled": False, "provider": None}
_tracers: dict[str, Any] = {}
# ids the next span must take (the root span of a question), read by the id generator
_FORCED: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "optscale_forced_ids", default=None
)


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for tracing (a bad ``OPTSCALE_TRACING`` raises)."""
    env = os.environ if env is None else env
    flag = env.get("OPTSCALE_TRACING", "").strip().lower()
    if flag not in TRUE + FALSE:
        raise InvalidArgumentError("OPTSCALE_TRACING", flag, "one of 1/true/on or 0/false/off")
    if flag in TRUE:
        return True
    return "OPTSCALE_TRACING" not in env and bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure(env: Mapping[str, str] | None = None, *, exporter: Any = None) -> bool:
    """Turn tracing on or off: with ``exporter`` (a span exporter, e.g. the SDK's in-memory
    one) every span is handed to it as it ends; otherwise as :func:`wanted` says, with the
    OTLP exporter. Replaces an earlier configuration (its spans are flushed first)."""
    shutdown()
    _state["configured"] = True
    if exporter is None and not wanted(env):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    env = os.environ if env is None else env
    name = env.get("OTEL_SERVICE_NAME") or "optscale"
    provider = TracerProvider(
        resource=Resource.create({"service.name": name}), id_generator=_id_generator()
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None  # None: the exporter's default
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _state.update(enabled=True, provider=provider)
    return True


def shutdown() -> None:
    """Flush and stop the current configuration (tracing is off afterwards)."""
    provider = _state["provider"]
    _state.update(configured=False, enabled=False, provider=None)
    _tracers.clear()
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    if not _state["configured"]:
        configure()
    return bool(_state["enabled"])


def trace_ids(question_id: str) -> tuple[int, int]:
    """(trace id, root span id) of a question's trace: the same on every controller."""
    h = hashlib.sha256(b"optscale-trace\0" + question_id.encode()).digest()
    return int.from_bytes(h[:16], "big") or 1, int.from_bytes(h[16:24], "big") or 1


def question_context(question_id: str) -> Any:
    """The OpenTelemetry context whose current span is the question's root span."""
    from opentelemetry import trace

    tid, sid = trace_ids(question_id)
    sc = trace.SpanContext(tid, sid, True, trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(sc))


def root_span(service: str, question_id: str, **attrs: Any) -> None:
    """Record the question's root span (its ids from :func:`trace_ids`)."""
    if not enabled():
        return
    from opentelemetry import context

    token = _FORCED.set(trace_ids(question_id))
    try:
        s = _tracer(service).start_span(
            "optscale.question", context=context.Context(), attributes=_attrs(question_id, attrs)
        )
    finally:
        _FORCED.reset(token)
    s.end()


def span(
    service: str,
    name: str,
    *,
    question_id: str | None = None,
    parent: Any = None,
    links: Sequence[Any] = (),
    **attrs: Any,
) -> contextlib.AbstractContextManager[Any]:
    """A span made current for the ``with`` block (yields the span, or ``None`` when off).
    Its parent: ``parent`` (a context), else the current span when it is on the question's
    trace, else the question's root; without a question id, the current span."""
    if not enabled():
        return _NOOP
    return _current(
        _tracer(service).start_as_current_span(
            name,
            context=_parent(question_id, parent),
            links=[_link(c) for c in links if c is not None],
            attributes=_attrs(question_id, attrs),
            record_exception=False,
            set_status_on_exception=False,
        )
    )


def in_trace() -> bool:
    """Whether a span is current (tracing on and inside some span)."""
    if not enabled():
        return False
    from opentelemetry import trace

    return bool(trace.get_current_span().get_span_context().is_valid)


def start(
    service: str,
    name: str,
    *,
    question_id: str | None = None,
    parent: Any = None,
    links: Sequence[Any] = (),
    start_time: int | None = None,
    **attrs: Any,
) -> Any:
    """A span that is not made current (end it with :func:`end`); ``None`` when off."""
    if not enabled():
        return None
    return _tracer(service).start_span(
        name,
        context=_parent(question_id, parent),
        links=[_link(c) for c in links if c is not None],
        attributes=_attrs(question_id, attrs),
        start_time=start_time,
    )


def end(s: Any, **attrs: Any) -> None:
    if s is not None:
        s.set_attributes(_attrs(None, attrs))
        s.end()


def set_attributes(**attrs: Any) -> None:
    """Attributes on the current span (nothing when off)."""
    if enabled():
        from opentelemetry import trace

        trace.get_current_span().set_attributes(_attrs(None, attrs))


def context_of(s: Any) -> Any:
    """The context whose current span is ``s`` (``None`` for ``None``)."""
    if s is None:
        return None
    from opentelemetry import trace

    return trace.set_span_in_context(s)


@contextlib.contextmanager
def attached(ctx: Any) -> Iterator[None]:
    """Make ``ctx`` (from :func:`from_kafka`, :func:`from_grpc`, :func:`context_of`) the
    current context for the block; ``None`` changes nothing. Do not yield across it from an
    async generator."""
    if ctx is None:
        yield
        return
    from opentelemetry import context

    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


def kafka_headers(ctx: Any = None) -> list[tuple[str, bytes]] | None:
    """The current (or ``ctx``'s) span as Kafka headers; ``None`` when off or no span."""
    carrier = _inject(ctx)
    return [(k, v.encode()) for k, v in carrier.items()] or None


def from_kafka(headers: Iterable[tuple[str, bytes]] | None) -> Any:
    """The context carried by a Kafka message's headers, or ``None``."""
    if not headers or not enabled():
        return None
    return _extract({k: bytes(v).decode("latin-1") for k, v in headers if k == HEADER})


def grpc_metadata(ctx: Any = None) -> list[tuple[str, str]] | None:
    """The current (or ``ctx``'s) span as gRPC metadata; ``None`` when off or no span."""
    return list(_inject(ctx).items()) or None


def from_grpc(context: Any) -> Any:
    """The context carried by a gRPC call's metadata (servicer ``context``), or ``None``."""
    if not enabled():
        return None
    get = getattr(context, "invocation_metadata", None)
    metadata = (get() if get is not None else None) or ()
    return _extract({k: v for k, v in metadata if k == HEADER and isinstance(v, str)})


# --------------------------------------------------------------------------- internals


def _tracer(service: str) -> Any:
    t = _tracers.get(service)
    if t is None:
        t = _tracers[service] = _state["provider"].get_tracer(f"optscale.{service}")
    return t


@contextlib.contextmanager
def _current(cm: Any) -> Iterator[Any]:
    """A cancelled span is marked ``optscale.cancelled`` (a lease closed by a stop is not an
    error); an exception is recorded and sets the error status."""
    with cm as s:
        try:
            yield s
        except asyncio.CancelledError:
            s.set_attribute("optscale.cancelled", True)
            raise
        except Exception as exc:
            from opentelemetry.trace import Status, StatusCode

            s.record_exception(exc)
            s.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))
            raise


def _parent(question_id: str | None, parent: Any) -> Any:
    if parent is not None or question_id is None:
        return parent
    from opentelemetry import trace

    current = trace.get_current_span().get_span_context()
    if current.is_valid and current.trace_id == trace_ids(question_id)[0]:
        return None  # the current context
    return question_context(question_id)


def _attrs(question_id: str | None, attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {f"optscale.{k}": v for k, v in attrs.items() if v is not None}
    if question_id is not None:
        out["optscale.question_id"] = question_id
    return out


def _link(ctx: Any) -> Any:
    from opentelemetry import trace

    return trace.Link(trace.get_current_span(ctx).get_span_context())


def _inject(ctx: Any) -> dict[str, str]:
    if not enabled():
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=ctx)
    return carrier


def _extract(carrier: dict[str, str]) -> Any:
    if not carrier:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ctx = TraceContextTextMapPropagator().extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def _id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class QuestionIds(RandomIdGenerator):
        """Random ids, except for a question's root span (:data:`_FORCED`)."""

        def generate_trace_id(self) -> int:
            forced = _FORCED.get()
            return forced[0] if forced is not None else super().generate_trace_id()

        def generate_span_id(self) -> int:
            forced = _FORCED.get()
            return forced[1] if forced is not None else super().generate_span_id()

    return QuestionIds()
