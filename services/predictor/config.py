"""Predictor service config: ``OPTSCALE_PREDICTOR_<FIELD>`` or flags."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PredictorConfig:
    # trained: MiniLM + MLP heads from model_dir (a default checkpoint is committed; retrain with
    # `optscale predictor train --model-dir services/predictor/default`); constant: one prior.
    backend: str = "trained"
    model_dir: str = ""  # empty: services/predictor/default
    mu_bar: float = 0.93  # mean of the training labels' mu (optscale_prior_targets.jsonl)
    sigma_bar: float = 0.05
    host: str = "0.0.0.0"
    port: int = 50053
    metrics_port: int = 9093
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_questions: int = 256
    max_chars: int = 32_000
    grace_seconds: float = 10.0
    log_level: str = "info"
