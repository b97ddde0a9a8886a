"""Prometheus metrics shared by the services (names fixed in docs/conventions.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
