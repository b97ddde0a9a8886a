"""The controller's give-up rule (optscale.give_up) is the replay allocator's: on the same
scores both give up on the same question after the same number of samples."""

from __future__ import annotations

from optscale.allocation import AllocationConfig, allocate_batch
from optscale.bayes import CorrectnessModel
from optscale.give_up import GaveUp, gives_up
from optscale.pool_model import PoolSample
from optscale.question_state import Observation, QuestionState, choose_majority

G = CorrectnessModel(-8.0, 12.0)


def _order(qid: str, scores: list[float]) -> list[PoolSample]:
    return [PoolSample(f"{qid}/{i}", "1", False, s, 10) for i, s in enumerate(scores)]


def _first_give_up(scores: list[float], level: float) -> int | None:
    st = QuestionState()
    for i, s in enumerate(scores):
        st = st.observe(Observation(f"q/{i}", "1", s, 10))
        if gives_up(st, scores[: i + 1], n_max=len(scores), level=level, g=G):
            return i + 1
    return None


def test_the_controller_rule_gives_up_where_the_allocator_does() -> None:
    orders = {
        "low": _order("low", [0.1] * 8),
        "middling": _order("middling", [0.45, 0.4, 0.35, 0.3, 0.3, 0.3, 0.3, 0.3]),
        "high": _order("high", [0.95] * 8),
    }
    for level in (0.3, 0.6, 0.9):
        got = allocate_batch(orders, AllocationConfig(n_max=8, give_up=level, p_correct=G))
        for qid, order in orders.items():
            n = _first_give_up([s.score for s in order], level)
            assert (got[qid].reason == "give up") == (n is not None), (qid, level)
            if n is not None:
                assert got[qid].samples == n, (qid, level)
    assert _first_give_up([0.1] * 8, 0.5) == 1 and _first_give_up([0.95] * 8, 0.9) is None


def test_a_question_given_up_on_answers_with_its_policy_choice() -> None:
    st = QuestionState().observe(Observation("q/0", "3", 0.2, 10))
    st = st.observe(Observation("q/1", "5", 0.3, 10))
    st = st.observe(Observation("q/2", "3", 0.1, 10))
    d = GaveUp("sc", 8, choose_majority).decide(st)
    assert (d.stop, d.reason, d.chosen and d.chosen.answer) == (True, "give_up", "3")
