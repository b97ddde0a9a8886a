"""Prefix pruning through the generator service (issue 18.4, services path): a Generate request
with ``pruning`` (the rule and the question's finished-score reference) cuts a scripted bad
sample at its first judged step end and reports it pruned, with its tokens so far and its
prefix score; without ``pruning``, or on an engine that does not judge step ends, nothing is
cut; a bad ``pruning`` is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest

from optscale.engines.generation.sim import Backend as Sim
from optscale.engines.generation.sim import ScriptedSample
from optscale.pruning import PrefixPruning, PruneSpec, reference_stats
from optscale.truncnorm import SuffStats
from optscale.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from services.common.prune_convert import prune_spec_from_pb, prune_spec_to_pb
from services.generator.server import SERVICE, GeneratorServicer

GOOD = ScriptedSample("42", (math.log(0.8),) * 3, (10, 20, 30))
BAD = ScriptedSample("7", (math.log(0.1), math.log(0.9), math.log(0.9)), (12, 24, 36))
SCRIPT = {"q1/0": GOOD, "q1/1": BAD}
# two finished samples scored ~0.8: the bar is 0.8 - 1.5 * max(0.01, 0.02) = 0.77
REFERENCE = SuffStats.of([0.79, 0.81])
RULE = PrefixPruning(z=1.5, min_steps=1)


def _req(pruning: generator_pb2.PrefixPruning | None, **kw: Any) -> generator_pb2.GenerateRequest:
    r = generator_pb2.GenerateRequest(
        question_id="q1",
        prompt="What is 6 * 7?",
        k=2,
        params=common_pb2.SamplingParams(max_tokens=64, seed=1),
        **kw,
    )
    if pruning is not None:
        r.pruning.CopyFrom(pruning)
    return r


async def _run(serve: Any, backend: Any, log: Any, req: Any, publish: Any = None) -> list[Any]:
    servicer = GeneratorServicer(backend, log, publish)
    channel = await serve(
        [SERVICE], lambda s: generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, s)
    )
    stub = generator_pb2_grpc.GeneratorStub(channel)
    return [ev async for ev in stub.Generate(req)]


async def test_a_scripted_bad_sample_is_cut_and_reported_pruned(serve: Any, log: Any) -> None:
    spec = prune_spec_to_pb(PruneSpec(RULE, REFERENCE))
    events = await _run(serve, Sim(script=SCRIPT), log, _req(spec))
    by_id = {e.candidate.sample_id: e.candidate for e in events}
    cut, whole = by_id["q1/1"], by_id["q1/0"]
    assert cut.finish_reason == common_pb2.FINISH_REASON_PRUNED
    assert cut.completion_tokens == 12 and cut.answer == ""  # its first step, no answer
    assert list(cut.step_logprobs) == [pytest.approx(math.log(0.1))]
    assert cut.HasField("prefix_score") and cut.prefix_score == pytest.approx(0.1)
    assert whole.finish_reason == common_pb2.FINISH_REASON_STOP
    assert whole.completion_tokens == 30 and whole.answer == "42"
    assert not whole.HasField("prefix_score")


async def test_published_pruned_candidate_carries_its_prefix_score(serve: Any, log: Any) -> None:
    published: list[common_pb2.Candidate] = []

    async def publish(c: common_pb2.Candidate) -> None:
        published.append(c)

    spec = prune_spec_to_pb(PruneSpec(RULE, REFERENCE))
    events = await _run(serve, Sim(script=SCRIPT), log, _req(spec, publish=True), publish)
    done = {e.done.sample_id: e.done for e in events}
    assert done["q1/1"].finish_reason == common_pb2.FINISH_REASON_PRUNED
    assert done["q1/1"].completion_tokens == 12
    (cut,) = [c for c in published if c.sample_id == "q1/1"]
    assert cut.prefix_score == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("reference", "why"),
    [(None, "no pruning asked"), (SuffStats.of([0.8]), "one finished sample: too few")],
)
async def test_nothing_is_cut_without_pruning_or_a_reference(
    serve: Any, log: Any, reference: SuffStats | None, why: str
) -> None:
    spec = None if reference is None else prune_spec_to_pb(PruneSpec(RULE, reference))
    events = await _run(serve, Sim(script=SCRIPT), log, _req(spec))
    got = {e.candidate.sample_id: e.candidate.finish_reason for e in events}
    assert got == {"q1/0": common_pb2.FINISH_REASON_STOP, "q1/1": common_pb2.FINISH_REASON_STOP}


class _WholeSamples(Sim):
    """An engine that does not judge step ends (as vLLM / HF: samples finish whole)."""

    name = "vllm"


async def test_an_engine_without_step_judging_ignores_pruning(serve: Any, log: Any) -> None:
    spec = prune_spec_to_pb(PruneSpec(RULE, REFERENCE))
    events = await _run(serve, _WholeSamples(script=SCRIPT), log, _req(spec))
    assert {e.candidate.finish_reason for e in events} == {common_pb2.FINISH_REASON_STOP}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"z": -1.0}, "pruning.z"),
        ({"min_steps": 0}, "pruning.min_steps"),
        ({"aggregation": "median"}, "aggregation"),
        ({"reference_mean": 1.5}, "pruning.reference_mean"),
        ({"sd_floor": math.nan}, "pruning.sd_floor"),
    ],
)
async def test_bad_pruning_is_invalid_argument_naming_the_field(
    serve: Any, log: Any, change: dict[str, Any], field: str
) -> None:
    spec = prune_spec_to_pb(PruneSpec(RULE, REFERENCE))
    for k, v in change.items():
        setattr(spec, k, v)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _run(serve, Sim(script=SCRIPT), log, _req(spec))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


def test_the_reference_survives_the_wire() -> None:
    ref = SuffStats.of([0.2, 0.5, 0.9, 0.9])
    back = prune_spec_from_pb(prune_spec_to_pb(PruneSpec(RULE, ref)))
    assert back.rule == RULE
    assert back.finished.n == 4
    assert back.finished.mean == pytest.approx(ref.mean)
    assert back.finished.std == pytest.approx(ref.std)
    assert RULE.threshold(back.finished) == pytest.approx(RULE.threshold(ref))
    assert reference_stats(0, 0.0, 0.0) == SuffStats()


@pytest.mark.model
async def test_llamacpp_behind_the_service_prunes_at_the_first_step_end(
    serve: Any, log: Any
) -> None:
    """The packaged SmolLM2 behind the service: with a reference no prefix can reach (mean 1,
    z 0) a sample stops at its first blank-line step end, reported pruned with that step's
    tokens and its confidence as the prefix score."""
    from optscale.engines.generation.llamacpp import Backend as Llama

    llama = Llama("smollm2", n_ctx=1024, n_threads=2, max_k=4, max_tokens=512)
    try:
        prompt = (
            "Solve step by step, one short paragraph per step: Tom has 3 apples and buys 4 "
            "more. How many apples does he have?"
        )
        params = common_pb2.SamplingParams(max_tokens=48, seed=2)
        plain = generator_pb2.GenerateRequest(question_id="q1", prompt=prompt, k=1, params=params)
        servicer = GeneratorServicer(llama, log)
        channel = await serve(
            [SERVICE], lambda s: generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, s)
        )
        stub = generator_pb2_grpc.GeneratorStub(channel)
        (whole,) = [e.candidate async for e in stub.Generate(plain)]
        assert len(whole.step_logprobs) > 1  # precondition: a step end before the end
        judged = generator_pb2.GenerateRequest()
        judged.CopyFrom(plain)
        unreachable = PruneSpec(PrefixPruning(z=0.0), SuffStats.of([1.0, 1.0]))
        judged.pruning.CopyFrom(prune_spec_to_pb(unreachable))
        (cut,) = [e.candidate async for e in stub.Generate(judged)]
    finally:
        llama.close()
    assert cut.finish_reason == common_pb2.FINISH_REASON_PRUNED and cut.answer == ""
    assert whole.text.startswith(cut.text) and cut.completion_tokens < whole.completion_tokens
    assert list(cut.step_logprobs) == pytest.approx(list(whole.step_logprobs[:1]))
    assert cut.prefix_score == pytest.approx(math.exp(whole.step_logprobs[0]))
