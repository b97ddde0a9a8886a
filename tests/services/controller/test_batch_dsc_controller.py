"""Batch DSC in the controller (``dsc``, optscale.batch_dsc): the questions of a batch share
its easy/hard boundary and pre-allocation on the store's board (memory, Redis, cluster-mode
Redis). One controller with its samples scored in dispatch order (first in, first out across
the batch) gives exactly the episodes of replay's ``dsc_batch`` on the same answers."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from optscale.dsc import dsc_batch
from optscale.pools import PoolQuestion, PoolSample
from tests.services.controller import harness
from tests.services.controller.harness import results, scored, settle, submitted

# ranked easiest first; e*: every window agrees, h0 agrees from sample 4 on, h1 never
ANSWERS = {
    "e0": "11111111",
    "e1": "11111111",
    "e2": "11111111",
    "e3": "11111111",
    "h0": "12311111",
    "h1": "21212121",
    "h2": "12345678",
}
RANKED = list(ANSWERS)


def _tokens(i: int) -> int:
    return 10 * (i + 1)


def _submit(q: str, batch: str = "d1", ranked: list[str] = RANKED) -> Any:
    opts = {"dsc_batch": batch, "rank": ranked.index(q), "batch_size": len(ranked)}
    return submitted(q, n_max=8, policy="dsc", seed=1, options=json.dumps(opts))


async def _run_fifo(store: Any, answers: dict[str, str] = ANSWERS) -> dict[str, Any]:
    """Submit in rank order, then score the oldest unscored sample of a question still running,
    one at a time: the schedule replay's dsc_batch simulates."""
    w, gen, pub = harness.worker(store)
    await w.assign({0})
    ranked = list(answers)
    for q in ranked:
        await w.handle(_submit(q, ranked=ranked), 0)
    await settle()
    fifo: list[tuple[str, int]] = []
    seen = 0
    while True:
        for req, _ in gen.requests[seen:]:
            fifo.extend((req.question_id, req.first_index + i) for i in range(req.k))
        seen = len(gen.requests)
        done = {r.question_id for r in results(pub)}
        fifo = [(q, i) for q, i in fifo if q not in done]
        if not fifo:
            break
        q, i = fifo.pop(0)
        ev = scored(q, i, 0.5, answer=answers[q][i], tokens=_tokens(i))
        await w.handle(ev, 0)
        await settle()
    return {r.question_id: r for r in results(pub)}


def _replayed(answers: dict[str, str] = ANSWERS) -> dict[str, Any]:
    qs = [
        PoolQuestion(
            q,
            "1",
            [PoolSample(f"{q}/{i}", a, a == "1", 0.5, _tokens(i)) for i, a in enumerate(ans)],
        )
        for q, ans in answers.items()
    ]
    ease = {q: -float(r) for r, q in enumerate(answers)}
    return dsc_batch(qs, {q.question_id: q.samples for q in qs}, n_max=8, window=4, difficulty=ease)


async def test_the_controller_and_replay_agree_on_a_fifo_schedule(store: Any) -> None:
    got = await _run_fifo(store)
    want = _replayed()
    assert set(got) == set(want) == set(RANKED)
    for q in RANKED:
        r, ep = got[q], want[q]
        assert (r.stop_reason, r.samples_used, r.chosen_sample_id) == (
            ep.reason,
            ep.samples,
            ep.chosen_sample_id,
        ), q
        assert r.completion_tokens == ep.tokens, q
    # the batch decided: the midpoint e3 probed and agreed, so e0..e2 stopped as easy with
    # fewer samples than a probe; h0 agreed in a later window; h1, h2 ran to N_max
    assert {q: got[q].stop_reason for q in RANKED} == {
        **dict.fromkeys(("e0", "e1", "e2", "e3"), "easy"),
        "h0": "agreed",
        "h1": "n_max",
        "h2": "n_max",
    }
    assert got["e3"].samples_used == 4 and all(got[q].samples_used < 4 for q in RANKED[:3])
    assert got["h0"].samples_used == 8 and got["h0"].answer == "1"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_they_agree_on_random_batches(store: Any, seed: int) -> None:
    """Random answers (two values, agreeing more often for the easier ranks; easy, agreed and
    n_max outcomes in every batch): the controller and replay decide alike."""
    rng = random.Random(seed)
    answers = {
        f"r{seed}q{r}": "".join("1" if rng.random() < 1 - r / 12 else "2" for _ in range(8))
        for r in range(9)
    }
    got, want = await _run_fifo(store, answers), _replayed(answers)
    for q in answers:
        assert (got[q].stop_reason, got[q].samples_used, got[q].chosen_sample_id) == (
            want[q].reason,
            want[q].samples,
            want[q].chosen_sample_id,
        ), (q, answers)


async def test_the_board_is_shared_through_the_store(store: Any) -> None:
    """A second controller on the same store sees the first one's boundary: a question
    ranked below a known easy one answers with a single sample."""
    w1, _, _ = harness.worker(store)
    await w1.assign({0})
    boards = store.dsc
    assert (await boards.step("d2", 3, True, 4)).easy_max == 3  # rank 3's probe agreed
    w2, gen2, pub2 = harness.worker(store)
    await w2.assign({1})
    await w2.handle(_submit("e0", batch="d2"), 1)
    await settle()
    ((req, _),) = gen2.requests
    assert req.k == 1
    await w2.handle(scored("e0", 0, 0.5, answer="7"), 1)
    (r,) = results(pub2)
    assert (r.stop_reason, r.samples_used, r.answer) == ("easy", 1, "7")


async def test_board_transitions_match_on_every_store(store: Any) -> None:
    """The Redis script and the in-memory board: a probe report the boundary has overtaken is
    ignored; a hard rank's pre-allocation is frozen when it is first seen hard."""
    b = store.dsc
    v = await b.step("d3", 2, None, 4)
    assert (v.easy_max, v.hard_min, v.alloc) == (-1, -1, 0)
    assert (await b.step("d3", 5, False, 4)).hard_min == 5  # rank 5 disagreed: hard
    v = await b.step("d3", 6, None, 4)
    assert (v.hard_min, v.alloc) == (5, 4)  # hard, pre-allocated the window
    await b.hard_done("d3", 12)
    assert (await b.step("d3", 6, None, 4)).alloc == 4  # frozen
    assert (await b.step("d3", 7, None, 4)).alloc == 12  # the last hard count
    v = await b.step("d3", 7, True, 4)  # overtaken (7 >= hard_min): ignored
    assert (v.easy_max, v.hard_min) == (-1, 5)
    assert (await b.step("d3", 2, True, 4)).easy_max == 2
    v = await b.step("d3", 1, False, 4)  # overtaken (1 <= easy_max): ignored
    assert (v.easy_max, v.hard_min, v.alloc) == (2, 5, 0)
