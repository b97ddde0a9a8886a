"""Dispatches larger than the generators' ``max_k`` (64 samples per ``Generate`` call): the
controller splits them into several leases of at most ``max_k`` samples, with the sample ids
and seeds the one big call would have had — so OptScale^0 at N_max 200 (first wave 67) and
BoN at N_max 100 run instead of turning every sample into a failure. A lease retried after a
partial stream asks for the rest with the seeds those samples had."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from optscale.loop import sample_seed
from optscale.memory import RecordingPublisher
from optscale.ports import GenerateRequest
from optscale.types import SamplingParams
from optscale.v1 import events_pb2
from services.controller.lease import Leaser
from tests.services.controller import harness
from tests.services.controller.harness import EVENTS, MAX_K, results, scored, settle, submitted


def _calls(gen: harness.HeldGenerator) -> list[tuple[int, int]]:
    return sorted((r.first_index, r.k) for r, _ in gen.requests)


@pytest.mark.parametrize(
    ("policy", "n_max", "calls"),
    [
        ("bon", 100, [(0, 64), (64, 36)]),
        ("optscale0", 200, [(0, 64), (64, 3)]),  # the first wave: ceil(200 / 3) = 67
        ("bon", 256, [(0, 64), (64, 64), (128, 64), (192, 64)]),
    ],
)
async def test_a_dispatch_over_max_k_is_split_into_leases_of_at_most_max_k(
    store: Any, policy: str, n_max: int, calls: list[tuple[int, int]]
) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("big", n_max=n_max, policy=policy, seed=11), 0)
    await settle()
    assert _calls(gen) == calls and gen.refused == 0
    assert all(r.k <= MAX_K for r, _ in gen.requests)
    for r, epoch in gen.requests:  # the seeds one call would have given these samples
        assert r.params.seed == sample_seed(11, "big", r.first_index) and epoch == w.epoch
    o = w.owned["big"]
    assert len(o.leases) == len(calls) and o.loop.state.n_inflight == sum(k for _, k in calls)
    assert not pub.on(EVENTS)  # nothing refused, so no SampleFailed


async def test_bon_at_n_max_100_is_answered_from_all_its_samples(store: Any) -> None:
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    await w.handle(submitted("b100", n_max=100, policy="bon"), 0)
    await settle()
    for i in range(100):
        await w.handle(scored("b100", i, 0.3 + i / 1000, answer=str(i)), 0)
    (r,) = results(pub)
    assert (r.status, r.samples_used, r.samples_failed) == (events_pb2.RESULT_STATUS_DONE, 100, 0)
    assert r.chosen_sample_id == "b100/99"
    await settle()
    assert gen.open == 0 and gen.refused == 0  # every lease closed, none refused


class _BreaksAfterTwo:
    """A generator whose first stream finishes two samples and then breaks (a generator pod
    going away); the retry is recorded."""

    def __init__(self) -> None:
        self.requests: list[GenerateRequest] = []

    async def generate(self, req: GenerateRequest, *, epoch: int) -> AsyncIterator[str]:
        self.requests.append(req)
        for i in range(req.k):
            if len(self.requests) == 1 and i == 2:
                raise ConnectionError("generator went away")
            yield f"{req.question_id}/{req.first_index + i}"


async def test_a_retried_lease_asks_for_the_rest_with_their_own_seeds() -> None:
    gen, pub = _BreaksAfterTwo(), RecordingPublisher()
    leaser = Leaser(gen, pub, EVENTS, retry_base=0.0)
    req = GenerateRequest("q", "p", 5, SamplingParams(seed=100), first_index=10)
    await asyncio.wait_for(leaser.run(req, epoch=1), 10)
    _, retry = gen.requests
    assert (retry.first_index, retry.k) == (12, 3)
    assert retry.params.seed == 102  # sample 12 is seed 100 + 2, as in the first call
    assert not pub.messages  # every sample finished: nothing failed
