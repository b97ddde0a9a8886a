"""The state store's contract, on the in-memory store and on the Redis/Lua store (real
redis-server): idempotent by sample id, fenced by epoch, stale samples of an old owner
ignored, capped at N_max, a score and its dispatch as one transition, finalized once."""

from __future__ import annotations

from typing import Any

from optscale.config import QuestionConfig
from optscale.policies import Observation
from optscale.ports import Applied, Outcome, ScoreWrite


def _cfg(n_max: int) -> QuestionConfig:
    return QuestionConfig(text="1 + 1?", n_max=n_max)


def _ob(q: str, i: int, score: float = 0.5, tokens: int = 10) -> Observation:
    return Observation(f"{q}/{i}", "2", score, tokens)


async def test_scores_apply_once_and_never_beyond_n_max(store: Any) -> None:
    assert await store.create("q", 1, _cfg(3), 0)
    assert not await store.create("q", 1, _cfg(3), 0)  # second create: no-op
    assert await store.dispatch("q", 1, 3, 3) == Applied(Outcome.APPLIED, 0)
    assert await store.dispatch("q", 1, 1, 3) == Applied(Outcome.OVER_N_MAX)
    for i, s in enumerate((0.5, 0.9, 0.7)):
        assert (
            await store.apply_score("q", 1, ScoreWrite(_ob("q", i, s)))
        ).outcome is Outcome.APPLIED
    assert (
        await store.apply_score("q", 1, ScoreWrite(_ob("q", 1, 0.9)))
    ).outcome is Outcome.DUPLICATE
    # a straggler from before a failover, next to its replacement: recorded, not counted
    assert (await store.apply_score("q", 1, ScoreWrite(_ob("q", 7, 0.99)))).outcome is Outcome.LATE
    sq = await store.get("q")
    assert sq is not None
    assert (sq.n_scored, sq.tokens, sq.n_dispatched, sq.next_index) == (3, 30, 3, 3)
    assert [o.sample_id for o in sq.observations] == ["q/0", "q/1", "q/2"]
    assert [o.score for o in sq.observations] == [0.5, 0.9, 0.7]
    assert sq.config == _cfg(3)


async def test_an_older_epoch_is_fenced_and_finalize_happens_once(store: Any) -> None:
    await store.create("f", 1, _cfg(8), 2)
    assert await store.dispatch("f", 1, 4, 8) == Applied(Outcome.APPLIED, 0)
    assert await store.claim("f", 5) is Outcome.APPLIED  # in-flight samples of epoch 1: gone
    sq = await store.get("f")
    assert sq is not None and sq.n_dispatched == 0 and sq.epoch == 5
    assert (await store.apply_score("f", 1, ScoreWrite(_ob("f", 0)))).outcome is Outcome.FENCED
    assert (await store.dispatch("f", 1, 1, 8)).outcome is Outcome.FENCED
    assert await store.claim("f", 3) is Outcome.FENCED
    assert await store.dispatch("f", 5, 2, 8) == Applied(Outcome.APPLIED, 4)  # no id reused
    assert (await store.apply_score("f", 5, ScoreWrite(_ob("f", 4)))).outcome is Outcome.APPLIED
    assert await store.active(2) == ["f"]
    assert await store.finalize("f", 5, "done", {"answer": "1"}, 2) is Outcome.APPLIED
    assert await store.finalize("f", 5, "done", {"answer": "2"}, 2) is Outcome.DUPLICATE
    sq = await store.get("f")
    assert sq is not None and sq.status == "done" and sq.result == {"answer": "1"}
    assert await store.active(2) == []
    assert (await store.apply_score("f", 5, ScoreWrite(_ob("f", 5)))).outcome is Outcome.LATE
    assert await store.claim("missing", 9) is Outcome.MISSING


async def test_samples_of_an_older_owner_epoch_are_stale(store: Any) -> None:
    await store.create("s", 1, _cfg(8), 0)
    assert await store.dispatch("s", 1, 3, 8) == Applied(Outcome.APPLIED, 0)
    assert await store.claim("s", 4) is Outcome.APPLIED  # a new owner forgot s/0..s/2
    failed = await store.apply_failure("s", 4, "s/0", sample_epoch=1)
    scored = await store.apply_score("s", 4, ScoreWrite(_ob("s", 1), sample_epoch=1))
    assert (failed, scored.outcome) == (Outcome.STALE, Outcome.STALE)
    # the new owner's own samples (and those whose epoch is unknown, 0) count
    assert await store.dispatch("s", 4, 2, 8) == Applied(Outcome.APPLIED, 3)
    assert await store.apply_failure("s", 4, "s/3", sample_epoch=4) is Outcome.APPLIED
    assert (await store.apply_score("s", 4, ScoreWrite(_ob("s", 4), sample_epoch=0))).outcome is (
        Outcome.APPLIED
    )
    assert await store.apply_failure("s", 4, "s/0", sample_epoch=1) is Outcome.DUPLICATE
    sq = await store.get("s")
    assert sq is not None and (sq.n_scored, sq.n_failed, sq.n_dispatched) == (1, 1, 2)


async def test_a_score_and_the_dispatch_it_leads_to_are_one_write(store: Any) -> None:
    await store.create("d", 1, _cfg(4), 0)
    assert await store.dispatch("d", 1, 2, 4) == Applied(Outcome.APPLIED, 0)
    # applied, and two more reserved (live: 2 dispatched; after: 4)
    got = await store.apply_score("d", 1, ScoreWrite(_ob("d", 0), dispatch_k=2, n_max=4))
    assert got == Applied(Outcome.APPLIED, 2)
    sq = await store.get("d")
    assert sq is not None and (sq.n_scored, sq.n_dispatched, sq.next_index) == (1, 4, 4)
    # a duplicate reserves nothing
    got = await store.apply_score("d", 1, ScoreWrite(_ob("d", 0), dispatch_k=1, n_max=4))
    assert got == Applied(Outcome.DUPLICATE)
    # applied, but one more would exceed N_max: nothing reserved
    got = await store.apply_score("d", 1, ScoreWrite(_ob("d", 1), dispatch_k=1, n_max=4))
    assert got == Applied(Outcome.APPLIED, None)
    # an older owner changes nothing
    got = await store.apply_score("d", 0, ScoreWrite(_ob("d", 2), dispatch_k=1, n_max=4))
    assert got == Applied(Outcome.FENCED)
    sq = await store.get("d")
    assert sq is not None and (sq.n_scored, sq.n_dispatched, sq.next_index) == (2, 4, 4)


async def test_a_config_round_trips_through_the_store(store: Any) -> None:
    from optscale.stats import GaussianPrior
    from optscale.types import SamplingParams

    cfg = QuestionConfig(
        text="x?",
        policy="optscalet",
        n_max=5,
        alpha=0.8,
        s_min=0.7,
        prior=GaussianPrior(0.6, 0.2, tau_mu=0.3, tau_sigma=0.07),
        sampling=SamplingParams(0.5, 0.9, 100, 7),
        reference="3",
        dataset="gsm8k",
    )
    await store.create("c", 1, cfg, 3)
    sq = await store.get("c")
    assert sq is not None and sq.config == cfg and sq.partition == 3
