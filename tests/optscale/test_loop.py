"""The one per-question loop: actions from the policy's decisions, ids and seeds that never
repeat, resume from stored counts, cancel, and a stalled policy caught."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from optscale.loop import (
    Cancelled,
    Dispatch,
    QuestionLoop,
    StalledLoopError,
    Stop,
    Wait,
    question_seed,
    sample_seed,
)
from optscale.policies import Decision, Observation, QuestionState, make_policy


def _ob(i: int, score: float, answer: str = "1") -> Observation:
    return Observation(f"q/{i}", answer, score, 10)


def test_dispatches_carry_ids_and_seeds_and_indices_only_grow() -> None:
    loop = QuestionLoop.start("q", make_policy("bon", n_max=4), seed=5)
    a = loop.next_action()
    assert isinstance(a, Dispatch) and (a.first_index, a.k) == (0, 4)
    assert a.sample_ids == ("q/0", "q/1", "q/2", "q/3")
    base = question_seed(5, "q")
    assert a.seeds == (base, base + 1, base + 2, base + 3) and a.first_seed == base
    loop = loop.dispatched(0, 4)
    assert isinstance(loop.next_action(), Wait)
    loop = loop.failed(1)  # one failed: one replacement, with a new index and seed
    b = loop.next_action()
    assert isinstance(b, Dispatch) and (b.first_index, b.k) == (4, 1)
    assert b.seeds == (sample_seed(5, "q", 4),) and b.sample_ids == ("q/4",)


def test_seeds_differ_between_questions_and_none_without_a_seed() -> None:
    assert question_seed(0, "a") != question_seed(0, "b")
    assert sample_seed(None, "a", 3) is None
    a = QuestionLoop.start("a", make_policy("bon", n_max=2)).next_action()
    assert isinstance(a, Dispatch) and a.seeds == (None, None)


def test_optscale0_waits_for_its_initial_batch_then_stops_on_the_bound() -> None:
    loop = QuestionLoop.start("q", make_policy("optscale0", n_max=9, alpha=0.5, s_min=0.6))
    a = loop.next_action()
    assert isinstance(a, Dispatch) and a.k == 3
    loop = loop.dispatched(a.first_index, a.k)
    for i, s in enumerate((0.9, 0.95)):
        loop = loop.scored(_ob(i, s))
        assert isinstance(loop.next_action(), Wait)
    loop = loop.scored(_ob(2, 0.92))
    stop = loop.next_action()
    assert isinstance(stop, Stop) and stop.status == "done" and stop.reason == "bound"
    assert stop.chosen is not None and stop.chosen.sample_id == "q/1"


def test_all_failures_stop_as_failed_and_cancel_stops_as_cancelled() -> None:
    loop = QuestionLoop.start("q", make_policy("bon", n_max=2)).dispatched(0, 2).failed(2)
    stop = loop.next_action()
    assert isinstance(stop, Stop) and stop.status == "failed" and stop.chosen is None
    loop = QuestionLoop.start("q", make_policy("bon", n_max=2)).dispatched(0, 2)
    stop = loop.apply(Cancelled("user")).next_action()
    assert isinstance(stop, Stop) and (stop.status, stop.reason) == ("cancelled", "user")


def test_resume_rebuilds_the_same_state_and_keeps_the_next_index() -> None:
    pol = make_policy("optscale0", n_max=8)
    live = QuestionLoop.start("q", pol, seed=1).dispatched(0, 3).scored(_ob(0, 0.4))
    live = live.failed(1)
    back = QuestionLoop.resume(
        "q", pol, seed=1, observations=[_ob(0, 0.4)], n_dispatched=3, n_failed=1, next_index=3
    )
    assert back.state.n_live == live.state.n_live and back.next_index == 3
    assert back.next_action() == live.next_action()


@dataclass(frozen=True)
class _Stuck:
    name: str = "stuck"
    n_max: int = 4

    def decide(self, state: QuestionState) -> Decision:
        return Decision(False, 0, None, "never")


def test_a_policy_that_neither_stops_nor_samples_is_caught() -> None:
    with pytest.raises(StalledLoopError, match="stuck"):
        QuestionLoop.start("q", _Stuck()).next_action()


def test_bad_events_are_refused() -> None:
    loop = QuestionLoop.start("q", make_policy("bon", n_max=2))
    with pytest.raises(ValueError, match="k"):
        loop.dispatched(0, -1)
    with pytest.raises(ValueError, match="event"):
        loop.apply("scored")  # type: ignore[arg-type]


def test_out_of_budget_stops_at_once_with_the_policys_choice() -> None:
    from optscale.loop import OutOfBudget

    pol = make_policy("sc", n_max=8)
    loop = QuestionLoop.start("q", pol)
    d = loop.next_action()
    assert isinstance(d, Dispatch) and d.k == 8
    loop = loop.dispatched(0, 8)
    spent = loop.apply(OutOfBudget())
    stop = spent.next_action()
    assert isinstance(stop, Stop) and stop.status == "failed" and stop.reason == "budget"
    for i, a in enumerate(["3", "4", "4"]):
        loop = loop.scored(Observation(f"q/{i}", a, 0.9 - 0.1 * i, 10))
    assert isinstance(loop.next_action(), Wait)  # sc waits for all 8
    stop = loop.apply(OutOfBudget()).next_action()
    assert isinstance(stop, Stop) and stop.status == "done" and stop.reason == "budget"
    assert stop.chosen is not None and stop.chosen.answer == "4"  # the majority, not the best
