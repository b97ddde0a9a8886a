"""Verifier service config: ``OPTSCALE_VERIFIER_<FIELD>`` or flags."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    backend: str = "confidence"
    host: str = "0.0.0.0"
    port: int = 50052
    metrics_port: int = 9092
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_candidates: int = 256  # per Score call
    grace_seconds: float = 10.0
    log_level: str = "info"
    kafka_bootstrap: str = ""  # set: also run the worker on optscale.candidates
    group: str = "optscale-verifier"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
