"""Prefix pruning in the generator service: a ``Generate`` request's ``pruning`` (the rule and
the question's finished-score reference, from the controller) becomes the request's step judge
for engines that judge step ends — llama.cpp and sim; vLLM, HF and OpenAI ignore it (their
samples finish whole). A pruned sample's candidate carries its prefix score."""

from __future__ import annotations

import dataclasses
from typing import Any

from optscale.ports import GenerateRequest
from optscale.pruning import LiveStepJudge
from optscale.types import GeneratedSample
from optscale.v1 import common_pb2, generator_pb2
from services.common.prune_convert import prune_spec_from_pb

STEP_JUDGE_BACKENDS = ("llamacpp", "sim")  # backends that call GenerateRequest.step_judge


def with_step_judge(
    backend: Any, request: generator_pb2.GenerateRequest, req: GenerateRequest
) -> GenerateRequest:
    """``req`` with a :class:`~optscale.pruning.LiveStepJudge` when the request asks for
    pruning and the backend judges step ends (a bad ``pruning`` is an error either way)."""
    if not request.HasField("pruning"):
        return req
    spec = prune_spec_from_pb(request.pruning)
    if getattr(backend, "name", None) not in STEP_JUDGE_BACKENDS:
        return req
    return dataclasses.replace(req, step_judge=spec.judge())


def add_prefix_score(c: common_pb2.Candidate, s: GeneratedSample, judge: Any) -> None:
    """A pruned sample's candidate gets the prefix score its judge pruned it with."""
    if s.finish_reason == "pruned" and isinstance(judge, LiveStepJudge):
        c.prefix_score = judge.prefix_score(s.step_logprobs) if s.step_logprobs else 0.0
