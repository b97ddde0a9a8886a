"""The ``dsc`` policy (optscale.batch_dsc): decisions from the board's view, what a driver
reports, and clear errors for bad options."""

from __future__ import annotations

from typing import Any

import pytest

from optscale.batch_dsc import BatchDSC, DscBoard, DscView, hard_count, probe_report
from optscale.config import QuestionConfig
from optscale.errors import InvalidArgumentError
from optscale.policies import Observation, QuestionState, make_policy


def _policy(rank: int = 0, size: int = 8, n_max: int = 8, **kw: object) -> BatchDSC:
    opts: dict[str, Any] = {"dsc_batch": "b", "rank": rank, "batch_size": size, **kw}
    p = make_policy("dsc", n_max=n_max, **opts)
    assert isinstance(p, BatchDSC)
    return p


def _state(answers: str) -> QuestionState:
    st = QuestionState()
    for i, a in enumerate(answers):
        st = st.observe(Observation(f"q/{i}", a, 0.5, 10))
    return st


def test_open_questions_trickle_and_the_midpoint_probes() -> None:
    view = DscView()
    assert _policy(rank=4).seeing(view).decide(_state("")).target == 4  # (0 + 8) // 2
    d = _policy(rank=1).seeing(view).decide(_state("12"))
    assert (d.stop, d.target, d.reason) == (False, 3, "probe")  # one more at a time
    # after rank 4 agreed: the midpoint of (5, 8) is 6
    assert _policy(rank=6).seeing(DscView(easy_max=4)).decide(_state("1")).target == 4


def test_easy_hard_and_the_adaptive_stop() -> None:
    easy = _policy(rank=1).seeing(DscView(easy_max=3))
    assert easy.decide(_state("")).target == 1
    d = easy.decide(_state("2"))
    assert (d.stop, d.reason, d.chosen and d.chosen.answer) == (True, "easy", "2")
    hard = _policy(rank=6).seeing(DscView(easy_max=3, hard_min=5, alloc=6))
    assert hard.decide(_state("1")).target == 6  # pre-allocated
    assert hard.decide(_state("123111")).target == 8  # last window 3111 disagrees: grow
    d = hard.decide(_state("121111"))
    assert (d.stop, d.reason) == (True, "agreed")
    d = hard.decide(_state("12121212"))
    assert (d.stop, d.reason) == (True, "n_max")
    assert hard_count(hard, d, _state("12121212")) == 8
    assert hard_count(easy, easy.decide(_state("2")), _state("2")) is None


def test_an_open_question_with_a_window_reports_its_probe() -> None:
    p = _policy(rank=2, dsc_window=3)
    assert probe_report(p.seeing(DscView()), _state("11")) is None  # not a window yet
    assert probe_report(p.seeing(DscView()), _state("111")) is True
    assert probe_report(p.seeing(DscView()), _state("112")) is False
    assert probe_report(p.seeing(DscView(easy_max=2)), _state("112")) is None  # decided
    # without a report (no driver), its own probe decides
    assert p.decide(_state("111")).reason == "easy"
    assert p.decide(_state("112")).target == 6  # hard: window 3, then a second window


def test_the_board_keeps_easy_below_hard() -> None:
    b = DscBoard()
    assert b.step(4, True, 4) == DscView(4, -1, 0)
    assert b.step(6, False, 4) == DscView(4, 6, 4)
    assert b.step(5, True, 4) == DscView(5, 6, 0)
    assert b.step(3, False, 4) == DscView(5, 6, 0)  # overtaken: ignored
    b.hard_done(7)
    assert b.step(6, None, 4).alloc == 4 and b.step(7, None, 4).alloc == 7


@pytest.mark.parametrize(
    ("opts", "field"),
    [
        ({"rank": 0, "batch_size": 2}, "dsc_batch"),
        ({"dsc_batch": "a/b", "rank": 0, "batch_size": 2}, "dsc_batch"),
        ({"dsc_batch": "b", "batch_size": 2}, "rank"),
        ({"dsc_batch": "b", "rank": 2, "batch_size": 2}, "rank"),
        ({"dsc_batch": "b", "rank": 0, "batch_size": 0}, "batch_size"),
        ({"dsc_batch": "b", "rank": 0, "batch_size": 2, "dsc_window": 0}, "dsc_window"),
    ],
)
def test_bad_options_are_clear_errors(opts: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        make_policy("dsc", n_max=4, **opts)
    assert err.value.field == field


def test_a_question_config_carries_the_dsc_options() -> None:
    opts = QuestionConfig.options_from('{"dsc_batch": "b", "rank": 1, "batch_size": 3}')
    cfg = QuestionConfig("q?", policy="dsc", n_max=4, options=opts).validate()
    p = cfg.build_policy()
    assert isinstance(p, BatchDSC) and (p.batch, p.rank, p.batch_size, p.window) == ("b", 1, 3, 4)
