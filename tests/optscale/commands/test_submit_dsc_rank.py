"""``optscale submit --policy dsc``: the batch is ranked by the priors' mu_bar at submit time
and each question carries its rank, the batch size and the batch id in its options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from optscale.commands import submit
from optscale.commands._dsc_rank import build_dsc_events
from optscale.errors import InvalidArgumentError
from optscale.types import Question
from services.controller.questions import config_from_submitted

QS = [Question("a", "1+1?", "2"), Question("b", "2+2?", "4"), Question("c", "3+3?", "6")]


def _args(*extra: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    submit.add_arguments(ap)
    return ap.parse_args(["q.jsonl", "--policy", "dsc", "--n-max", "8", *extra])


def test_questions_go_out_easiest_first_with_their_rank(tmp_path: Path) -> None:
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({"a": [0.2, 0.1], "b": [0.9, 0.1], "c": [0.5, 0.1]}))
    args = _args("--priors", str(priors), "--batch-id", "B7", "--options", '{"dsc_window": 3}')
    events = build_dsc_events(args, QS, submit.build_events)
    assert [e.question_id for e in events] == ["b", "c", "a"]
    for rank, e in enumerate(events):
        opts = json.loads(e.submitted.policy.options_json)
        assert opts == {"dsc_batch": "B7", "rank": rank, "batch_size": 3, "dsc_window": 3}
        policy = config_from_submitted(e.submitted).build_policy()
        assert (policy.name, getattr(policy, "rank")) == ("dsc", rank)  # noqa: B009


def test_a_missing_prior_or_batch_id_is_a_clear_error(tmp_path: Path) -> None:
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({"a": [0.2, 0.1]}))
    with pytest.raises(InvalidArgumentError) as err:
        build_dsc_events(_args("--priors", str(priors), "--batch-id", "B"), QS, submit.build_events)
    assert err.value.field == "priors" and "'b'" in str(err.value)
    with pytest.raises(InvalidArgumentError) as err:
        build_dsc_events(_args(), QS, submit.build_events, ease=[1.0, 2.0, 3.0])
    assert err.value.field == "batch-id"
