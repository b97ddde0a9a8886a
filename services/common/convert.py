"""Conversions between the core's plain types and the optscale.v1 protobuf messages."""

from __future__ import annotations

import math
from collections.abc import Sequence

from optscale.errors import InvalidArgumentError
from optscale.ids import check_question_id
from optscale.ports import GenerateRequest, Prior
from optscale.stats import DEFAULT_TAU_MU, DEFAULT_TAU_SIGMA, GaussianPrior
from optscale.types import GeneratedSample, SamplingParams, ScoredSample
from optscale.v1 import common_pb2, events_pb2, generator_pb2

FINISH = {
    "stop": common_pb2.FINISH_REASON_STOP,
    "length": common_pb2.FINISH_REASON_LENGTH,
    "aborted": common_pb2.FINISH_REASON_ABORTED,
    "error": common_pb2.FINISH_REASON_ERROR,
    "pruned": common_pb2.FINISH_REASON_PRUNED,
}
FINISH_NAME = {v: k for k, v in FINISH.items()}


def params_from_pb(p: common_pb2.SamplingParams) -> SamplingParams:
    d = SamplingParams()
    return SamplingParams(
        temperature=p.temperature if p.temperature or p.top_p else d.temperature,
        top_p=p.top_p if p.top_p else d.top_p,
        max_tokens=p.max_tokens or d.max_tokens,
        seed=p.seed if p.HasField("seed") else None,
    )


def prior_from_pb(p: common_pb2.Prior) -> Prior:
    """A predicted prior; a message without widths (an older predictor) gets the defaults."""
    return Prior(
        p.mu_bar,
        p.sigma_bar,
        p.model_version,
        p.tau_mu if p.HasField("tau_mu") else DEFAULT_TAU_MU,
        p.tau_sigma if p.HasField("tau_sigma") else DEFAULT_TAU_SIGMA,
    )


def gaussian_prior_from_pb(p: common_pb2.Prior) -> GaussianPrior:
    """A submitted prior as OptScale^t's :class:`GaussianPrior` (raises
    :class:`InvalidArgumentError` naming the bad field)."""
    q = prior_from_pb(p)
    return GaussianPrior(q.mu_bar, q.sigma_bar, q.tau_mu, q.tau_sigma)


def params_to_pb(p: SamplingParams) -> common_pb2.SamplingParams:
    out = common_pb2.SamplingParams(
        temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_tokens
    )
    if p.seed is not None:
        out.seed = p.seed
    return out


def generate_request_from_pb(r: generator_pb2.GenerateRequest) -> GenerateRequest:
    """Raises InvalidArgumentError for an unsafe question id (the sample ids are built on it)."""
    return GenerateRequest(
        question_id=check_question_id(r.question_id),
        prompt=r.prompt,
        k=r.k,
        params=params_from_pb(r.params),
        first_index=r.first_index,
    )


def candidate_to_pb(
    s: GeneratedSample, *, model_version: str = "", prompt: str = "", epoch: int = 0
) -> common_pb2.Candidate:
    c = common_pb2.Candidate(
        question_id=s.question_id,
        sample_id=s.sample_id,
        text=s.text,
        answer=s.answer or "",
        completion_tokens=s.completion_tokens,
        prompt_tokens=s.prompt_tokens,
        finish_reason=FINISH.get(s.finish_reason, common_pb2.FINISH_REASON_UNSPECIFIED),
        step_logprobs=list(s.step_logprobs),
        gen_seconds=s.gen_seconds,
        model_version=model_version,
        prompt=prompt,
        epoch=epoch,
    )
    if s.mean_logprob is not None:
        c.mean_logprob = s.mean_logprob
    if s.self_certainty is not None:
        c.self_certainty = s.self_certainty
    return c


def candidate_from_pb(c: common_pb2.Candidate) -> GeneratedSample:
    """Validates what a verifier needs: ids, finite log-probs."""
    if not c.sample_id:
        raise InvalidArgumentError("candidate.sample_id", c.sample_id, "must not be empty")
    for name in ("mean_logprob", "self_certainty"):
        if c.HasField(name) and not math.isfinite(getattr(c, name)):
            raise InvalidArgumentError(f"candidate.{name}", getattr(c, name), "must be finite")
    for x in c.step_logprobs:
        if not math.isfinite(x):
            raise InvalidArgumentError("candidate.step_logprobs", x, "must be finite")
    return GeneratedSample(
        question_id=c.question_id,
        sample_id=c.sample_id,
        text=c.text,
        answer=c.answer or None,
        completion_tokens=c.completion_tokens,
        finish_reason=FINISH_NAME.get(c.finish_reason, "stop"),
        mean_logprob=c.mean_logprob if c.HasField("mean_logprob") else None,
        self_certainty=c.self_certainty if c.HasField("self_certainty") else None,
        step_logprobs=tuple(c.step_logprobs),
        gen_seconds=c.gen_seconds,
        prompt_tokens=c.prompt_tokens,
    )


def scored_to_pb(
    s: ScoredSample, candidate: common_pb2.Candidate, version: str
) -> common_pb2.ScoredCandidate:
    return common_pb2.ScoredCandidate(
        candidate=candidate,
        score=s.score,
        step_scores=list(s.step_scores),
        verifier_version=version,
    )


def scored_event(
    s: ScoredSample, candidate: common_pb2.Candidate, version: str
) -> events_pb2.Scored:
    """The ``Scored`` question event of a scored candidate, by reference: ids, epoch, score(s),
    answer and token counts; the text and prompt stay on ``optscale.candidates``."""
    return _by_reference(candidate, s.score, s.step_scores, version)


def _by_reference(
    c: common_pb2.Candidate, score: float, step_scores: Sequence[float], version: str
) -> events_pb2.Scored:
    return events_pb2.Scored(
        sample_id=c.sample_id,
        epoch=c.epoch,
        score=score,
        step_scores=list(step_scores),
        answer=c.answer,
        completion_tokens=c.completion_tokens,
        prompt_tokens=c.prompt_tokens,
        finish_reason=c.finish_reason,
        verifier_version=version,
    )


def scored_by_reference(ev: events_pb2.Scored) -> events_pb2.Scored:
    """``ev`` itself, or — for an event of a verifier from before payloads by reference, which
    carried the whole scored candidate in ``scored`` — the same facts in the by-reference
    fields (the text is dropped)."""
    if not ev.HasField("scored"):
        return ev
    sc = ev.scored
    return _by_reference(sc.candidate, sc.score, sc.step_scores, sc.verifier_version)


def sample_done(c: common_pb2.Candidate) -> generator_pb2.SampleDone:
    """A finished, published sample as the ``Generate`` stream reports it: ids and counts."""
    return generator_pb2.SampleDone(
        sample_id=c.sample_id,
        completion_tokens=c.completion_tokens,
        prompt_tokens=c.prompt_tokens,
        finish_reason=c.finish_reason,
    )
