"""A question's batch id (``Submitted.batch_id``, with or without a budget) travels into its
``Result`` — what ``optscale results --batch`` filters on — and survives the store's JSON
round trip (a new owner rebuilding the question keeps it); a question without a batch has an
empty batch id (on the in-memory and Redis stores)."""

from __future__ import annotations

from typing import Any

import pytest

from optscale.config import QuestionConfig
from optscale.errors import InvalidArgumentError
from services.controller.questions import config_from_submitted
from tests.services.controller import harness
from tests.services.controller.harness import results, scored, settle, submitted


async def test_the_result_carries_the_submitted_batch_id(store: Any) -> None:
    w, _, pub = harness.worker(store)
    await w.assign({0})
    in_a = submitted("qa", n_max=2, policy="bon", seed=1)
    in_a.submitted.batch_id = "A"
    await w.handle(in_a, 0)
    await w.handle(submitted("qx", n_max=2, policy="bon", seed=1), 0)  # no batch
    await settle()
    for q in ("qa", "qx"):
        for i in range(2):
            await w.handle(scored(q, i, 0.5 + i / 10, answer=str(i)), 0)
    by_id = {r.question_id: r for r in results(pub)}
    assert by_id["qa"].batch_id == "A"
    assert by_id["qx"].batch_id == ""
    assert "batchId" not in (await store.get("qx")).result  # stored as before: no field


def test_the_batch_id_without_a_budget_survives_the_stored_json() -> None:
    cfg = QuestionConfig(text="2+2?", batch_id="run-1").validate()
    back = QuestionConfig.from_dict(cfg.to_dict())
    assert (back.batch_id, back.batch_budget) == ("run-1", None)
    assert QuestionConfig.from_dict(QuestionConfig(text="2+2?").to_dict()).batch_id is None


def test_bad_or_contradicting_batch_ids_are_clear_errors() -> None:
    ev = submitted("q")
    ev.submitted.batch_id = "a/b"
    with pytest.raises(InvalidArgumentError, match="batch_id"):
        config_from_submitted(ev.submitted)
    ev.submitted.batch_id = "A"
    ev.submitted.batch.batch_id, ev.submitted.batch.token_budget = "B", 100
    with pytest.raises(InvalidArgumentError, match="differs"):
        config_from_submitted(ev.submitted)
    ev.submitted.batch.batch_id = "A"
    assert config_from_submitted(ev.submitted).batch_id == "A"
