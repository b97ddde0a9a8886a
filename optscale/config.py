"""A question's configuration: what to ask, how to sample, when to stop.

One frozen :class:`QuestionConfig` travels from submission (CLI, gRPC, Kafka ``Submitted``)
to the controller's store and back, with a JSON round trip (:meth:`QuestionConfig.to_dict` /
:meth:`QuestionConfig.from_dict`). The stopping defaults live in :mod:`optscale.policies`
(``DEFAULT_*``), the sampling defaults in :class:`optscale.types.SamplingParams`.

``optscalet`` needs a prior (``mu_bar``, ``sigma_bar`` and its widths ``tau_mu``,
``tau_sigma``, the predictor's measured error): a config may leave it out when the caller will
ask a predictor for one before building the policy (``prior_optional``). Configs stored before
the widths were (``prior: {mu_bar, sigma_bar}``) read back with the default widths.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from optscale.errors import InvalidArgumentError
from optscale.params import make_policy_options
from optscale.policies import (
    DEFAULT_ALPHA,
    DEFAULT_N_MAX,
    DEFAULT_POLICY,
    DEFAULT_S_MIN,
    OPTION_NAMES,
    PRIOR_POLICIES,
    Policy,
    make_policy,
)
from optscale.stats import DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA, GaussianPrior
from optscale.types import SamplingParams

__all__ = ["MAX_TEXT_CHARS", "QuestionConfig"]

MAX_TEXT_CHARS = 30_000  # the generator refuses prompts over 32,000 characters
_PLACEHOLDER_PRIOR = GaussianPrior(0.5, 0.1)
_SAMPLING = SamplingParams()  # the defaults


@dataclass(frozen=True, slots=True)
class QuestionConfig:
    text: str
    policy: str = DEFAULT_POLICY
    n_max: int = DEFAULT_N_MAX
    alpha: float = DEFAULT_ALPHA
    s_min: float = DEFAULT_S_MIN
    prior: GaussianPrior | None = None
    sampling: SamplingParams = SamplingParams()  # noqa: RUF009 (immutable)
    reference: str | None = None
    dataset: str | None = None
    # further policy options in JSON form (names in optscale.policies.OPTION_NAMES), sorted
    options: tuple[tuple[str, Any], ...] = ()
    # the batch this question belongs to (None: none) and the batch's token budget (completion
    # tokens of every sample scored for any of its questions); None: no budget
    batch_id: str | None = None
    batch_budget: int | None = None
    batch_wave: int = 0  # > 0: the batch's samples in flight per controller (see BatchBudget)

    @classmethod
    def options_from(cls, raw: Any) -> tuple[tuple[str, Any], ...]:
        """Options from a JSON object (``None`` / empty: none); unknown names are an error."""
        if raw is None or raw == "":
            return ()
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise InvalidArgumentError("options", raw, f"not JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise InvalidArgumentError("options", raw, "must be a JSON object")
        unknown = sorted(k for k in raw if k not in OPTION_NAMES)
        if unknown:
            raise InvalidArgumentError(
                "options", unknown, f"unknown option; known: {', '.join(OPTION_NAMES)}"
            )
        return tuple(sorted(raw.items()))

    @property
    def needs_prior(self) -> bool:
        """An ``optscalet`` / ``dsc_prior`` question without its prior yet (ask the
        predictor)."""
        return self.policy in PRIOR_POLICIES and self.prior is None

    def with_prior(
        self,
        mu_bar: float,
        sigma_bar: float,
        tau_mu: float = DEFAULT_TAU_MU,
        tau_sigma: float = DEFAULT_TAU_SIGMA,
    ) -> QuestionConfig:
        prior = GaussianPrior(float(mu_bar), float(sigma_bar), float(tau_mu), float(tau_sigma))
        return replace(self, prior=prior)

    def validate(
        self,
        *,
        max_tokens_limit: int = 32768,
        max_n_max: int = 1024,
        prior_optional: bool = False,
    ) -> QuestionConfig:
        """Raise :class:`InvalidArgumentError` naming the first bad field; return ``self``."""
        self.sampling.validate(max_tokens_limit=max_tokens_limit)
        if not isinstance(self.text, str) or not self.text.strip():
            raise InvalidArgumentError("text", self.text, "must not be empty")
        if len(self.text) > MAX_TEXT_CHARS:
            raise InvalidArgumentError(
                "text", f"<{len(self.text)} chars>", f"longer than {MAX_TEXT_CHARS} characters"
            )
        if isinstance(self.n_max, int) and self.n_max > max_n_max:
            raise InvalidArgumentError("n_max", self.n_max, f"at most {max_n_max} here")
        if self.batch_id is not None or self.batch_budget is not None:
            from optscale.ids import check_question_id

            check_question_id(self.batch_id, "batch_id")
        if self.batch_budget is not None:
            if isinstance(self.batch_budget, bool) or not isinstance(self.batch_budget, int):
                raise InvalidArgumentError("batch_budget", self.batch_budget, "must be an integer")
            if self.batch_budget < 1:
                raise InvalidArgumentError("batch_budget", self.batch_budget, "must be >= 1")
        if isinstance(self.batch_wave, bool) or not isinstance(self.batch_wave, int):
            raise InvalidArgumentError("batch_wave", self.batch_wave, "must be an integer")
        if self.batch_wave < 0 or (self.batch_wave and self.batch_budget is None):
            raise InvalidArgumentError("batch_wave", self.batch_wave, ">= 0, with a budget")
        if self.sampling.seed is not None and not 0 <= self.sampling.seed < 2**63:
            raise InvalidArgumentError("seed", self.sampling.seed, "must be in [0, 2^63)")
        prior = self.prior
        if prior is None and prior_optional and self.policy in PRIOR_POLICIES:
            prior = _PLACEHOLDER_PRIOR  # validate the rest; the real prior comes later
        self._policy(prior)
        return self

    def build_policy(self) -> Policy:
        return self._policy(self.prior)

    def _policy(self, prior: GaussianPrior | None) -> Policy:
        try:
            kw = make_policy_options(self.alpha, self.s_min, self.options)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError("options", dict(self.options), repr(exc)) from exc
        return make_policy(self.policy, n_max=self.n_max, prior=prior, **kw)

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        sp = self.sampling
        return {
            "text": self.text,
            "reference": self.reference,
            "dataset": self.dataset,
            "policy": self.policy,
            "n_max": self.n_max,
            "alpha": self.alpha,
            "s_min": self.s_min,
            "prior": None
            if self.prior is None
            else {
                "mu_bar": self.prior.mu_bar,
                "sigma_bar": self.prior.sigma_bar,
                "tau_mu": self.prior.tau_mu,
                "tau_sigma": self.prior.tau_sigma,
            },
            "sampling": {
                "temperature": sp.temperature,
                "top_p": sp.top_p,
                "max_tokens": sp.max_tokens,
                "seed": sp.seed,
            },
            "options": dict(self.options),
            "batch": None
            if self.batch_budget is None and self.batch_id is None
            else {"id": self.batch_id, "budget": self.batch_budget, "wave": self.batch_wave},
        }

    @classmethod
    def from_dict(cls, d: Any) -> QuestionConfig:
        """The inverse of :meth:`to_dict`. Also reads the positional layout stored by earlier
        controllers (``sampling: [t, top_p, max_tokens, seed]``, ``prior: [mu, sigma]``), so a
        rolling upgrade resumes their questions."""
        if not isinstance(d, dict):
            raise InvalidArgumentError("config", d, "must be a JSON object")
        try:
            sp = d.get("sampling") or {}
            if isinstance(sp, list | tuple):
                sp = dict(zip(("temperature", "top_p", "max_tokens", "seed"), sp, strict=True))
            pr = d.get("prior")
            if isinstance(pr, list | tuple):
                pr = {"mu_bar": pr[0], "sigma_bar": pr[1]}
            seed = sp.get("seed")
            return cls(
                text=str(d["text"]),
                policy=str(d.get("policy") or DEFAULT_POLICY),
                n_max=int(d.get("n_max") or DEFAULT_N_MAX),
                alpha=_float(d.get("alpha"), DEFAULT_ALPHA),
                s_min=_float(d.get("s_min"), DEFAULT_S_MIN),
                prior=None
                if not pr
                else GaussianPrior(
                    float(pr["mu_bar"]),
                    float(pr["sigma_bar"]),
                    _float(pr.get("tau_mu"), DEFAULT_TAU_MU),
                    _float(pr.get("tau_sigma"), DEFAULT_TAU_SIGMA),
                ),
                sampling=SamplingParams(
                    temperature=_float(sp.get("temperature"), _SAMPLING.temperature),
                    top_p=_float(sp.get("top_p"), _SAMPLING.top_p),
                    max_tokens=int(sp.get("max_tokens") or _SAMPLING.max_tokens),
                    seed=None if seed is None else int(seed),
                ),
                reference=d.get("reference"),
                dataset=d.get("dataset"),
                options=cls.options_from(d.get("options")),
                batch_id=(d.get("batch") or {}).get("id"),
                batch_budget=(d.get("batch") or {}).get("budget"),
                batch_wave=int((d.get("batch") or {}).get("wave") or 0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidArgumentError):
                raise
            raise InvalidArgumentError("config", d, f"malformed ({exc!r})") from exc


def _float(v: Any, default: float) -> float:
    if v is None:
        return default
    f = float(v)
    if not math.isfinite(f):
        raise InvalidArgumentError("config", v, "must be a finite number")
    return f
