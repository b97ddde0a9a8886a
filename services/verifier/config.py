"""Verifier service config: ``OPTSCALE_VERIFIER_<FIELD>`` or flags."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    backend: str = "confidence"  # confidence | sim | prm | vllm
    model: str = ""  # prm: HF id or directory (default Qwen/Qwen2.5-Math-PRM-7B)
    aggregation: str = "mean"  # step scores -> score (confidence, prm): mean | min | last | product
    max_length: int = 4096  # prm: tokens per model input; longer traces are windowed
    device: str = ""  # prm: torch device (default cuda when available)
    step_tag_id: int | None = None  # vllm: the PRM's step tag token (default: id of <extra_0>)
    vllm_engine_args: str = ""  # vllm: engine flags, CLI style ("--dtype bfloat16 ...")
    seed: int = 0  # sim
    sim_delay: float = 0.0  # sim: seconds per batch
    sim_per_sample: float = 0.0  # sim: seconds per sample
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
