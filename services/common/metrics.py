"""Prometheus metrics shared by the services (names fixed in docs/conventions.md)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

T = TypeVar("T")

REQUESTS = Counter("optscale_requests_total", "gRPC requests", ["service", "method", "code"])
LATENCY = Histogram("optscale_request_seconds", "gRPC request latency", ["service", "method"])
GEN_INFLIGHT = Gauge(
    "optscale_generator_inflight_samples", "samples requested and not yet finished"
)
GEN_QUEUED = Gauge(
    "optscale_generator_queued_samples",
    "samples of Generate calls waiting for room under max_inflight (not yet admitted)",
)
GEN_TOKENS = Counter("optscale_generator_tokens_total", "completion tokens generated")
_SIZES = (1, 2, 4, 8, 16, 32, 64)
VERIFIER_BATCH = Histogram(
    "optscale_verifier_batch_size", "candidates per scoring batch", buckets=_SIZES
)
PREDICTOR_BATCH = Histogram(
    "optscale_predictor_batch_size", "questions per predictor batch", buckets=_SIZES
)
CONTROLLER_ACTIVE = Gauge(
    "optscale_controller_active_questions", "questions this controller is sampling for"
)
CONTROLLER_WAITING = Gauge(
    "optscale_controller_waiting_questions", "questions admitted later (backpressure)"
)
CONTROLLER_EVENTS = Counter(
    "optscale_controller_events_total", "question events handled", ["type", "outcome"]
)
CONTROLLER_DECISION = Histogram(
    "optscale_controller_decision_seconds",
    "from handling a score/failure event to the policy's stop/dispatch decision",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
COMMITS_FAILED = Counter(
    "optscale_kafka_commits_failed_total",
    "offset commits refused (rebalance); the batch is redelivered and re-applied idempotently",
)

# --- what an operator of a batch watches (issue 19; infra/grafana, infra/prometheus) ---------
GEN_SLOTS = Gauge(
    "optscale_generator_slots",
    "samples this generator admits at once (max_inflight); utilisation = in flight / slots",
)
VERIFIER_BUSY = Counter(
    "optscale_verifier_busy_seconds_total",
    "seconds spent scoring Kafka micro-batches; its rate is the worker's utilisation",
)
RESULTS_PUBLISHED = Counter(
    "optscale_controller_results_total",
    "results published to optscale.results (a republish after a crash counts again)",
    ["status", "stop_reason"],
)
TOKENS_USED = Counter(
    "optscale_controller_tokens_used_total",
    "completion tokens of the scored samples behind published results",
)
TOKENS_BON_NMAX = Counter(
    "optscale_controller_tokens_bon_nmax_total",
    "estimated tokens best-of-N at N_max would have used on the same questions "
    "(each question's tokens per scored sample x N_max)",
)
# against the BoN curve: only questions submitted with params recording a dev BoN curve
TOKENS_BON_CURVE = Counter(
    "optscale_controller_tokens_bon_curve_total",
    "estimated tokens the fixed best-of-k of equal accuracy would have used: each counted "
    "question's tokens per scored sample x k_eq, k_eq read off the dev BoN curve recorded in "
    "the params it was submitted with (optscale calibrate); questions without such params "
    "are not counted (see optscale_controller_bon_curve_results_total)",
)
TOKENS_USED_BON_CURVE = Counter(
    "optscale_controller_tokens_used_bon_curve_total",
    "completion tokens of the scored samples of the results counted into "
    "optscale_controller_tokens_bon_curve_total",
)
BON_CURVE_RESULTS = Counter(
    "optscale_controller_bon_curve_results_total",
    "results counted into optscale_controller_tokens_bon_curve_total (questions submitted "
    "with params recording a dev BoN curve, with at least one scored sample)",
)
_COUNTS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
N_STAR = Histogram(
    "optscale_controller_n_star",
    "N* of a published result (when the policy computes one)",
    buckets=_COUNTS,
)
SAMPLES_USED = Histogram(
    "optscale_controller_samples_used", "scored samples of a published result", buckets=_COUNTS
)
CANCEL_SECONDS = Histogram(
    "optscale_controller_cancel_seconds",
    "from cancelling a question's in-flight Generate streams to all of them closed",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
DLQ_MESSAGES = Counter("optscale_dlq_messages_total", "messages sent to optscale.dlq", ["service"])
CONSUMER_LAG = Gauge(
    "optscale_kafka_consumer_lag",
    "messages behind the partition end, summed over this consumer's assigned partitions",
    ["topic", "group"],
)


def observe_published(topic: str, value: bytes, service: str = "controller") -> None:
    """Count a message the controller publishes: results (status, stop reason, tokens used,
    the BoN@N_max estimate, N*, samples used) and DLQ messages. ``value`` is the serialized
    message; a result that does not parse is not counted."""
    if topic == "optscale.dlq":
        DLQ_MESSAGES.labels(service).inc()
        return
    if topic != "optscale.results":
        return
    from google.protobuf.message import DecodeError

    from optscale.v1 import events_pb2

    try:
        r = events_pb2.Result.FromString(value)
    except DecodeError:
        return
    status = events_pb2.ResultStatus.Name(r.status).removeprefix("RESULT_STATUS_").lower()
    RESULTS_PUBLISHED.labels(status, r.stop_reason or "none").inc()
    TOKENS_USED.inc(r.completion_tokens)
    if r.samples_used and r.n_max:  # the scored samples' mean length, N_max times
        TOKENS_BON_NMAX.inc(r.completion_tokens / r.samples_used * max(r.n_max, r.samples_used))
    if r.HasField("n_star"):
        N_STAR.observe(r.n_star)
    SAMPLES_USED.observe(r.samples_used)


# Labelled series exist only from their first increment, and Prometheus' increase() cannot
# count that first value: a fresh controller's first batch read "answered / submitted" far off.
# The controller creates its usual label sets at 0 when it starts (init_controller_series).
RESULT_STATUSES = ("done", "cancelled", "failed")
STOP_REASONS = (
    "bound",
    "n_max",
    "budget",
    "failures",
    "bayes",
    "agreement",
    "agreed",
    "unchanged",
    "easy",
    "give_up",
    "cancelled",
    "none",
)  # the policies' usual stop reasons (optscale/policies.py and the batch policies)
EVENT_OUTCOMES = ("applied", "duplicate", "late", "stale", "fenced", "rejected", "conflict")


def init_controller_series() -> None:
    """Create the controller's labelled counter series at 0 (see above)."""
    from optscale.v1 import events_pb2

    kinds = [f.name for f in events_pb2.QuestionEvent.DESCRIPTOR.oneofs_by_name["event"].fields]
    for kind in kinds:
        for outcome in EVENT_OUTCOMES:
            CONTROLLER_EVENTS.labels(kind, outcome)
    for status in RESULT_STATUSES:
        for reason in STOP_REASONS:
            RESULTS_PUBLISHED.labels(status, reason)


def observe_bon_curve(options: Iterable[tuple[str, Any]], result: Mapping[str, Any]) -> None:
    """Count a result the controller finalized and published against the BoN curve of its
    question's params: ``options`` is the question config's options (``bon_curve_k_eq`` set
    by ``submit --params``), ``result`` the ``Result`` in its stored (``MessageToDict``) form.
    A question without ``bon_curve_k_eq`` or without a scored sample is not counted."""
    from google.protobuf.json_format import ParseDict

    from optscale.params import BON_CURVE_K_EQ
    from optscale.v1 import events_pb2

    k_eq = dict(options).get(BON_CURVE_K_EQ)
    if k_eq is None:
        return
    r = ParseDict(dict(result), events_pb2.Result(), ignore_unknown_fields=True)
    if not r.samples_used:
        return
    BON_CURVE_RESULTS.inc()
    TOKENS_USED_BON_CURVE.inc(r.completion_tokens)
    TOKENS_BON_CURVE.inc(r.completion_tokens / r.samples_used * float(k_eq))


async def busy(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``, adding its wall time to the verifier's busy seconds."""
    start = time.monotonic()
    try:
        return await awaitable
    finally:
        VERIFIER_BUSY.inc(time.monotonic() - start)


def observe_lag(consumer: Any) -> None:
    """Set the consumer-lag gauge of every topic ``consumer`` (an aiokafka consumer) is
    subscribed to: high watermark (as of its last fetch) minus its position, per assigned
    partition, summed per topic. Reads the consumer's own bookkeeping (aiokafka's
    ``position()`` may wait for a reset): no network call, never raises, never waits."""
    try:
        lag: dict[str, int] = {t: 0 for t in consumer.subscription()}
        assignment = consumer._subscription.subscription.assignment
        for tp in assignment.tps:
            st = assignment.state_value(tp)
            if st.highwater is None or not st.has_valid_position:
                continue  # not fetched yet: unknown, counts 0
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, st.highwater - st.position)
        group = str(consumer._group_id or "")
    except Exception:  # no assignment (mid-rebalance, closing), a stand-in: the next call sets it
        return
    for topic, n in lag.items():
        CONSUMER_LAG.labels(topic, group).set(n)
