"""optscale.batch_progress: answered / submitted, tokens used against the BoN@N_max
estimate, accuracy over graded results, and the summary table."""

from __future__ import annotations

import pytest

from optscale.batch_progress import (
    AnsweredQuestion,
    BatchProgress,
    BatchRecord,
    bar,
    new_batch_id,
)
from optscale.errors import DataError, InvalidArgumentError


def result(tokens: int, used: int, n_max: int = 8, correct: bool | None = None,
           status: str = "done", reason: str = "bound") -> AnsweredQuestion:
    return AnsweredQuestion(status, reason, tokens, used, n_max, correct)


def test_progress_line_counts_submitted_answered_tokens_saving_and_accuracy() -> None:
    p = BatchProgress()
    for q in ("a", "b", "c", "d"):
        p.submit(q)
    p.submit("a")  # a duplicate submission is one question
    assert p.line() == "answered 0/4 (0%) [....................] | tokens 0"
    assert p.answer("a", result(300, 3, correct=True))  # BoN@8: 800
    assert p.answer("b", result(200, 1, correct=False))  # BoN@8: 1600
    assert not p.answer("a", result(999, 8))  # a republished result is not counted twice
    assert p.answer("c", result(100, 2))  # not graded; BoN@8: 400
    # used 600 of an estimated 2800: 78.6% saved; 1 of 2 graded right
    assert p.line() == (
        "answered 3/4 (75%) [###############.....] | tokens 600 | saved vs BoN@N_max 78.6% (est.)"
        " | accuracy 50.0% (1/2 graded)"
    )
    assert not p.done
    p.answer("d", result(0, 0, status="failed", reason="failed"))  # nothing to estimate from
    assert p.done and p.tokens() == (600, 2800.0)


def test_a_result_whose_submission_was_not_seen_still_counts_in_the_total() -> None:
    p = BatchProgress()
    p.submit("a")
    p.answer("z", result(10, 1))
    assert p.total == 2 and not p.done
    assert p.line().startswith("answered 1/2 (50%) [##########..........] |")


def test_summary_table_has_totals_and_results_by_status_and_reason() -> None:
    p = BatchProgress()
    for q in "abc":
        p.submit(q)
    p.answer("a", result(400, 4, n_max=16, correct=True))  # BoN@16: 1600
    p.answer("b", result(400, 16, n_max=16, correct=True, reason="n_max"))  # BoN@16: 400
    rows = dict(
        (line[:27].strip(), line[27:].strip()) for line in p.summary().splitlines()
    )
    assert rows["questions submitted"] == "3"
    assert rows["answered"] == "2" and rows["not answered yet"] == "1"
    assert rows["tokens used"] == "800"
    assert rows["BoN@N_max tokens (est.)"] == "2,000"
    assert rows["saved vs BoN@N_max (est.)"] == "60.0%"
    assert rows["mean samples per answer"] == "10.00"
    assert rows["accuracy (graded)"] == "100.0% (2/2)"
    assert rows["done / bound"] == "1" and rows["done / n_max"] == "1"


def test_empty_batch_prints_dashes_not_division_errors() -> None:
    p = BatchProgress()
    assert p.line() == "answered 0/0 | tokens 0"
    assert "saved vs BoN@N_max (est.)" in p.summary() and not p.done


def test_bad_counts_are_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="completion_tokens"):
        result(-1, 1)
    with pytest.raises(InvalidArgumentError, match="samples_used"):
        AnsweredQuestion("done", "bound", 1, True, 8, None)  # a bool is not a count


def in_batch(batch: str, tokens: int = 100, used: int = 1) -> AnsweredQuestion:
    return AnsweredQuestion("done", "bound", tokens, used, 8, True, batch)


def test_one_batch_counts_only_its_results_against_its_recorded_total() -> None:
    p = BatchProgress(batch_id="A", expected=2)
    p.submit("x")  # submissions seen on the topic do not change a recorded total
    assert p.line() == "batch A | answered 0/2 (0%) [....................] | tokens 0"
    assert not p.answer("b1", in_batch("B"))  # another batch's result
    assert not p.answer("n1", in_batch(""))  # a result without a batch
    assert p.answer("a1", in_batch("A", tokens=200, used=2))
    assert p.line().startswith("batch A | answered 1/2 (50%) [##########..........] | tokens 200 |")
    assert not p.done
    assert p.answer("a2", in_batch("A"))
    assert p.done and p.tokens() == (300, 1600.0)
    rows = [line.split() for line in p.summary().splitlines()]
    assert rows[0] == ["batch", "A"] and rows[1] == ["questions", "submitted", "2"]


def test_a_batch_never_shows_fewer_questions_than_it_has_answers() -> None:
    p = BatchProgress(batch_id="A", expected=1)
    p.answer("a1", in_batch("A"))
    p.answer("a2", in_batch("A"))  # the record undercounts (a lost submission, say)
    assert p.total == 2 and p.done


def test_batch_progress_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="expected"):
        BatchProgress(batch_id="A")
    with pytest.raises(InvalidArgumentError, match="expected"):
        BatchProgress(batch_id="A", expected=-1)
    with pytest.raises(InvalidArgumentError, match="batch"):
        BatchProgress(batch_id="a/b", expected=1)


def test_the_batch_record_reads_its_hash_and_rejects_a_malformed_one() -> None:
    raw = {"total": "12", "submitted_at": "1764446462.5", "updated_at": "1764446470.0"}
    rec = BatchRecord.from_hash("A", raw)
    assert rec == BatchRecord("A", 12, 1764446462.5, 1764446470.0)
    assert rec.progress().total == 12 and rec.progress().batch_id == "A"
    assert BatchRecord.from_hash("A", {}) is None  # no such batch
    with pytest.raises(DataError, match="batch A"):
        BatchRecord.from_hash("A", {"total": "x", "submitted_at": "1", "updated_at": "1"})
    with pytest.raises(DataError, match="batch A"):
        BatchRecord.from_hash("A", {"total": "3"})


def test_new_batch_ids_carry_the_utc_time_and_pass_the_id_check() -> None:
    assert new_batch_id(1764446462.9, "3f9a1c") == "b20251129-200102-3f9a1c"
    with pytest.raises(InvalidArgumentError, match="batch-id"):
        new_batch_id(0.0, "a/b")


def test_the_bar_fills_in_proportion_and_is_full_only_when_all_are_done() -> None:
    assert bar(0, 8) == "[" + "." * 20 + "]"
    assert bar(3, 8) == "[" + "#" * 7 + "." * 13 + "]"
    assert bar(39, 40) == "[" + "#" * 19 + "." + "]"
    assert bar(40, 40) == "[" + "#" * 20 + "]"
    assert bar(0, 0) == "[" + "." * 20 + "]"
