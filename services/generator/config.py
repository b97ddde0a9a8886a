"""Generator service config: ``OPTSCALE_GENERATOR_<FIELD>`` or flags."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    backend: str = "llamacpp"  # llamacpp | hf | vllm | openai | sim
    model: str | None = None  # alias, GGUF path or HF id (backend-specific)
    host: str = "0.0.0.0"
    port: int = 50051
    metrics_port: int = 9091
    max_k: int = 64
    max_inflight: int = 256  # samples in the engine at once; further calls wait their turn
    max_tokens: int = 4096
    n_ctx: int = 4096
    openai_base_url: str = ""  # openai: the server's /v1 URL (key: OPENAI_API_KEY)
    device: str = "cpu"  # hf: torch device (cpu, cuda, cuda:1)
    n_threads: int = 0
    seed: int = 0
    sim_token_delay: float = 0.0  # sim: seconds per decoded token (simulated work in flight)
    sim_steps: int = 1  # sim: steps per sample (> 1: step ends, where prefix pruning judges)
    grace_seconds: float = 10.0
    log_level: str = "info"
    kafka_bootstrap: str = ""  # set: publish finished candidates to optscale.candidates
