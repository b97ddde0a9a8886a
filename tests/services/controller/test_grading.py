"""Grading a finished question runs off the controller's event loop, on the grading threads,
with a timeout (an ungraded result has no ``correct``); long answers are not graded and
references are bounded at submission."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from optscale.errors import InvalidArgumentError
from optscale.memory import InMemoryStateStore
from optscale.v1 import events_pb2
from services.controller import results as results_module
from services.controller.questions import MAX_REFERENCE_CHARS, config_from_submitted
from tests.services.controller import harness
from tests.services.controller.harness import results, scored, submitted


def _with_reference(q: str, reference: str) -> events_pb2.QuestionEvent:
    ev = submitted(q, n_max=2, policy="bon")
    ev.submitted.reference_answer = reference
    return ev


async def _answer(w: Any, q: str, answer: str) -> None:
    await w.handle(scored(q, 0, 0.4, answer="0"), 0)
    await w.handle(scored(q, 1, 0.9, answer=answer), 0)


async def test_results_are_graded() -> None:
    w, _, pub = harness.worker(InMemoryStateStore())
    await w.assign({0})
    await w.handle(_with_reference("right", "8"), 0)
    await _answer(w, "right", "8")
    await w.handle(_with_reference("wrong", "9"), 0)
    await _answer(w, "wrong", "8")
    by_id = {r.question_id: r for r in results(pub)}
    assert by_id["right"].HasField("correct") and by_id["right"].correct
    assert by_id["wrong"].HasField("correct") and not by_id["wrong"].correct


async def test_grading_runs_off_the_loop_and_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    threads: list[str] = []

    def slow_is_correct(answer: str, reference: str) -> bool:  # sympy on a pathological input
        threads.append(threading.current_thread().name)
        entered.set()
        release.wait(10)
        return True

    monkeypatch.setattr(results_module, "is_correct", slow_is_correct)
    monkeypatch.setattr(results_module, "GRADING_TIMEOUT_S", 0.5)
    w, _, pub = harness.worker(InMemoryStateStore())
    await w.assign({0})
    await w.handle(_with_reference("slow", "8"), 0)
    await w.handle(scored("slow", 0, 0.4, answer="0"), 0)
    finishing = asyncio.create_task(w.handle(scored("slow", 1, 0.9, answer="8"), 0))
    try:
        assert await asyncio.to_thread(entered.wait, 5)
        assert not finishing.done()  # the loop runs while the grader works
        assert threads and threads[0].startswith("optscale-grading")
        async with asyncio.timeout(5):
            await finishing  # the timeout ends the wait; the result goes out ungraded
        (r,) = results(pub)
        assert r.answer == "8" and r.status == events_pb2.RESULT_STATUS_DONE
        assert not r.HasField("correct")
    finally:
        release.set()


async def test_an_overlong_answer_is_not_graded(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(answer: str, reference: str) -> bool:
        raise AssertionError("graded an over-long answer")

    monkeypatch.setattr(results_module, "is_correct", never)
    long = "1" * (results_module.MAX_GRADED_ANSWER_CHARS + 1)
    assert await results_module.grade(long, "1") is None
    assert await results_module.grade(None, "1") is False


def test_an_overlong_reference_is_refused_at_submission() -> None:
    ok = _with_reference("r", "7" * MAX_REFERENCE_CHARS).submitted
    assert config_from_submitted(ok).reference == "7" * MAX_REFERENCE_CHARS
    bad = _with_reference("r", "7" * (MAX_REFERENCE_CHARS + 1)).submitted
    with pytest.raises(InvalidArgumentError) as err:
        config_from_submitted(bad)
    assert err.value.field == "reference_answer"
