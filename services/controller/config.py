"""Controller config: ``OPTSCALE_CONTROLLER_<FIELD>``, shared ``OPTSCALE_KAFKA_BOOTSTRAP`` and
``OPTSCALE_REDIS_URL``, or flags."""

from __future__ import annotations

from dataclasses import dataclass

from optscale.policies import DEFAULT_ALPHA, DEFAULT_N_MAX, DEFAULT_POLICY, DEFAULT_S_MIN


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    generator: str = "127.0.0.1:50051"
    # the predictor serving priors for optscalet questions submitted without one ("": none,
    # such questions are rejected)
    predictor: str = ""
    # the most samples one Generate call may ask for: the generators' OPTSCALE_GENERATOR_MAX_K
    # (keep them equal); a larger dispatch is split into several calls
    generator_max_k: int = 64
    # a Generate call (a lease) that has not finished in this long is cut and its unfinished
    # samples asked for again (0 = no deadline); a silent generator is noticed sooner by the
    # keepalive PINGs (OPTSCALE_GRPC_KEEPALIVE_SECONDS, services/common/keepalive.py)
    lease_deadline_seconds: float = 3600.0
    group: str = "optscale-controller"
    partitions: int = 8  # used when the controller creates missing topics
    host: str = "0.0.0.0"
    port: int = 50054
    metrics_port: int = 9094
    policy: str = DEFAULT_POLICY
    n_max: int = DEFAULT_N_MAX
    alpha: float = DEFAULT_ALPHA
    s_min: float = DEFAULT_S_MIN
    max_tokens: int = 512
    max_tokens_limit: int = 4096  # refuse more at Submit (match the generators' limit)
    max_n_max: int = 1024  # refuse larger N_max at Submit
    max_questions: int = 1000  # per Submit call
    max_active: int = 512  # questions sampling at once; more wait their turn (backpressure)
    # an owned question with nothing in flight and no event for this long is rebuilt from Redis
    # and re-dispatched (a safety net; keep it well above the verifiers' scoring backlog)
    idle_rebuild_seconds: float = 120.0
    # a finalized question's Redis keys expire this long after finalize (0: keep forever);
    # GetResult answers until then, and the id may be submitted again afterwards
    result_ttl_seconds: float = 7 * 24 * 3600.0
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    grace_seconds: float = 10.0
    log_level: str = "info"
