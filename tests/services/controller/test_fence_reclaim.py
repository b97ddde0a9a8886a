"""A member whose assignment was already out of date can take a newer epoch than the
partition's real owner and claim its questions, then receive no events (Kafka gave the
partition to the real owner). The real owner's sweep notices questions of its own partitions
held by a newer epoch and, after ``fence_grace_s``, takes its partitions again under a fresh
epoch, so the questions do not wait for the next rebalance."""

from __future__ import annotations

from typing import Any

from tests.services.controller import harness
from tests.services.controller.harness import results, scored, settle, submitted


async def test_the_owner_reclaims_questions_a_stale_member_fenced(store: Any) -> None:
    owner, gen, pub = harness.worker(store)
    await owner.assign({0})
    await owner.handle(submitted("a", n_max=4, policy="bon", seed=1), 0)
    await settle()
    stale, _, _ = harness.worker(store)
    await stale.assign({0})  # a late callback: newer epoch, claims "a", then hears nothing more
    await settle()
    assert "a" in stale.owned and stale.epoch > owner.epoch
    await owner.handle(scored("a", 0, 0.5, epoch=owner.epoch), 0)  # fenced: dropped here
    assert "a" not in owner.owned
    owner.fence_grace_s = 3600.0
    await owner.sweep()
    assert "a" not in owner.owned and "a" in owner.fenced_at  # within the grace: waits
    owner.fence_grace_s = 0.0
    await owner.sweep()
    await settle()
    assert "a" in owner.owned and owner.epoch > stale.epoch and owner.stats["reclaimed"] == 1
    # the question goes on under the owner: its samples are re-dispatched and answered
    first = gen.requests[-1][0].first_index
    for i in range(first, first + 4):
        await owner.handle(scored("a", i, 0.6, epoch=owner.epoch), 0)
    (r,) = results(pub)
    assert r.question_id == "a" and r.samples_used == 4
    await stale.close()
