"""A question's configuration from a ``Submitted`` event (or the gRPC ``Submit``): the
protobuf fields, with the service defaults for what is unset, validated into a
:class:`optscale.config.QuestionConfig`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from optscale.config import QuestionConfig
from optscale.errors import InvalidArgumentError
from optscale.policies import DEFAULT_ALPHA, DEFAULT_N_MAX, DEFAULT_POLICY, DEFAULT_S_MIN
from optscale.types import SamplingParams
from optscale.v1 import events_pb2
from services.common.convert import gaussian_prior_from_pb

_SAMPLING = SamplingParams()  # the defaults
MAX_REFERENCE_CHARS = 1000  # grading cost grows with it (services.controller.results)


@dataclass(frozen=True, slots=True)
class SubmitDefaults:
    """What a submission leaves unset, and the limits it must stay within (the controller's
    ``OPTSCALE_CONTROLLER_*`` settings)."""

    policy: str = DEFAULT_POLICY
    n_max: int = DEFAULT_N_MAX
    alpha: float = DEFAULT_ALPHA
    s_min: float = DEFAULT_S_MIN
    max_tokens: int = _SAMPLING.max_tokens
    max_tokens_limit: int = 4096
    max_n_max: int = 1024


def config_from_submitted(
    sub: events_pb2.Submitted,
    defaults: SubmitDefaults = SubmitDefaults(),
    *,
    prior_optional: bool = False,
) -> QuestionConfig:
    """Validated question config (raises InvalidArgumentError naming the field).
    ``prior_optional``: an ``optscalet`` question may come without a prior (the controller
    asks its predictor)."""
    if len(sub.reference_answer) > MAX_REFERENCE_CHARS:
        raise InvalidArgumentError(
            "reference_answer",
            sub.reference_answer[:40] + "...",
            f"at most {MAX_REFERENCE_CHARS} characters",
        )
    if sub.HasField("batch") and sub.batch_id and sub.batch_id != sub.batch.batch_id:
        raise InvalidArgumentError("batch_id", sub.batch_id, "differs from batch.batch_id")
    p = sub.policy
    sp = sub.sampling
    params = SamplingParams(
        temperature=sp.temperature if sp.temperature or sp.top_p else _SAMPLING.temperature,
        top_p=sp.top_p or _SAMPLING.top_p,
        max_tokens=sp.max_tokens or defaults.max_tokens,
        seed=sp.seed if sp.HasField("seed") else None,
    )
    cfg = QuestionConfig(
        text=sub.text,
        reference=sub.reference_answer or None,
        dataset=sub.dataset or None,
        policy=p.policy or defaults.policy,
        n_max=p.n_max or defaults.n_max,
        alpha=p.alpha if p.HasField("alpha") else defaults.alpha,
        s_min=p.s_min if p.HasField("s_min") else defaults.s_min,
        prior=gaussian_prior_from_pb(p.prior) if p.HasField("prior") else None,
        sampling=params,
        options=QuestionConfig.options_from(p.options_json),
        batch_id=sub.batch.batch_id if sub.HasField("batch") else (sub.batch_id or None),
        batch_budget=sub.batch.token_budget if sub.HasField("batch") else None,
        batch_wave=sub.batch.wave if sub.HasField("batch") else 0,
    )
    return cfg.validate(
        max_tokens_limit=defaults.max_tokens_limit,
        max_n_max=defaults.max_n_max,
        prior_optional=prior_optional,
    )


def differences(stored: QuestionConfig, new: QuestionConfig) -> list[str]:
    """The fields in which a new submission under a used question id differs from the stored
    question (empty: the same question again). A prior the controller predicted for a
    submission without one is not a difference."""
    return [
        f.name
        for f in dataclasses.fields(QuestionConfig)
        if getattr(stored, f.name) != getattr(new, f.name)
        and not (f.name == "prior" and new.prior is None)
    ]
