"""Multi-round Thinking in the controller: one round at a time, each round's prompt shows the
previous round's answer, the last round answers; with stop_when_unchanged it stops when a
round repeats the previous answer."""

from __future__ import annotations

from optscale.memory import InMemoryStateStore
from optscale.mr_thinking import ROUND_TEMPLATE
from tests.services.controller import harness
from tests.services.controller.harness import results, scored, settle, submitted


async def test_rounds_see_the_previous_answer_and_the_last_round_answers() -> None:
    w, gen, pub = harness.worker(InMemoryStateStore())
    await w.assign({0})
    await w.handle(submitted("m", n_max=4, policy="mr_thinking", seed=2), 0)
    await settle()
    base = gen.requests[0][0].prompt
    assert "previous answer" not in base and gen.requests[0][0].k == 1
    for i, (answer, score) in enumerate([("5", 0.9), ("6", 0.2), ("6", 0.3)]):
        await w.handle(scored("m", i, score, answer=answer), 0)
        await settle()
        req = gen.requests[-1][0]
        assert (req.first_index, req.k) == (i + 1, 1)
        assert req.prompt == ROUND_TEMPLATE.format(question_prompt=base, previous=answer)
    await w.handle(scored("m", 3, 0.1, answer="7"), 0)
    (r,) = results(pub)
    # the last round's answer, not the best-scored one ("5" at 0.9)
    assert (r.answer, r.chosen_sample_id, r.stop_reason, r.samples_used) == ("7", "m/3", "n_max", 4)


async def test_stop_when_unchanged() -> None:
    w, _, pub = harness.worker(InMemoryStateStore())
    await w.assign({0})
    ev = submitted("u", n_max=8, policy="mr_thinking", options='{"stop_when_unchanged": true}')
    await w.handle(ev, 0)
    await settle()
    await w.handle(scored("u", 0, 0.5, answer="3"), 0)
    await w.handle(scored("u", 1, 0.5, answer="4"), 0)
    assert results(pub) == []
    await w.handle(scored("u", 2, 0.5, answer="4"), 0)
    (r,) = results(pub)
    assert (r.answer, r.stop_reason, r.samples_used) == ("4", "unchanged", 3)
