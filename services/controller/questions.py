"""A question's configuration as the controller stores it: validated from a ``Submitted``
event (or the gRPC ``Submit``) with the service defaults filled in, and the policy built from
it."""

from __future__ import annotations

from typing import Any

from optscale.policies import Policy, make_policy
from optscale.stats import GaussianPrior
from optscale.types import SamplingParams
from optscale.v1 import events_pb2

MAX_TEXT_CHARS = 30_000  # the generator refuses prompts over 32,000 characters


def config_from_submitted(sub: events_pb2.Submitted, defaults: dict[str, Any]) -> dict[str, Any]:
    """Validated, JSON-able question config (raises InvalidArgumentError naming the field)."""
    p = sub.policy
    sp = sub.sampling
    params = SamplingParams(
        temperature=sp.temperature if sp.temperature or sp.top_p else 0.7,
        top_p=sp.top_p or 0.95,
        max_tokens=sp.max_tokens or defaults.get("max_tokens", 512),
        seed=sp.seed if sp.HasField("seed") else None,
    ).validate(max_tokens_limit=defaults.get("max_tokens_limit", 4096))
    cfg = {
        "text": sub.text,
        "reference": sub.reference_answer or None,
        "dataset": sub.dataset or None,
        "policy": p.policy or defaults.get("policy", "optscale0"),
        "n_max": p.n_max or defaults.get("n_max", 16),
        "alpha": p.alpha if p.HasField("alpha") else defaults.get("alpha", 0.9),
        "s_min": p.s_min if p.HasField("s_min") else defaults.get("s_min", 0.95),
        "prior": [p.prior.mu_bar, p.prior.sigma_bar] if p.HasField("prior") else None,
        "sampling": [params.temperature, params.top_p, params.max_tokens, params.seed],
    }
    from optscale.errors import InvalidArgumentError

    if not sub.text.strip():
        raise InvalidArgumentError("text", sub.text, "must not be empty")
    if len(sub.text) > MAX_TEXT_CHARS:
        raise InvalidArgumentError(
            "text", f"<{len(sub.text)} chars>", f"longer than {MAX_TEXT_CHARS} characters"
        )
    limit = defaults.get("max_n_max", 1024)
    if isinstance(cfg["n_max"], int) and cfg["n_max"] > limit:
        raise InvalidArgumentError("n_max", cfg["n_max"], f"at most {limit} here")
    policy_from(cfg)  # validates the policy parameters
    return cfg


def policy_from(cfg: dict[str, Any]) -> Policy:
    prior = GaussianPrior(*cfg["prior"]) if cfg.get("prior") else None
    return make_policy(
        cfg["policy"], n_max=cfg["n_max"], alpha=cfg["alpha"], s_min=cfg["s_min"], prior=prior
    )
