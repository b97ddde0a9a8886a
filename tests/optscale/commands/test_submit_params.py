"""``optscale submit --params``: the tuned policy (options included) reaches the controller's
config; params tuned on a submitted question or at another N_max are refused."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from optscale.calibrate import calibrate, write_params
from optscale.commands import submit
from optscale.errors import InvalidArgumentError
from optscale.pool_model import Pool, PoolQuestion, PoolSample
from optscale.types import Question
from services.controller.questions import config_from_submitted


def _params(tmp_path: Path) -> str:
    qs = [
        PoolQuestion(
            f"dev{j}",
            "x",
            [
                PoolSample(f"dev{j}/{i}", "x", i % 3 == 0, 0.5 + 0.03 * ((i + j) % 15), 50)
                for i in range(8)
            ],
        )
        for j in range(4)
    ]
    cal = calibrate(
        Pool("dev", qs), n_max=8, alphas=(0.9,), s_mins=(0.9,), orders=2, options={"pace": 0.5}
    )
    path = tmp_path / "params.json"
    write_params(dataclasses.replace(cal, useful=True), path)  # the wiring, not the verdict
    return str(path)


def _args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    submit.add_arguments(ap)
    return ap.parse_args(["q.jsonl", *argv])


def test_params_fill_the_policy_and_its_options(tmp_path: Path) -> None:
    args = _args("--params", _params(tmp_path), "--options", '{"initial": 2}')
    submit.apply_params(args, ["t1"])
    (ev,) = submit.build_events(args, [Question("t1", "2+2?", "4")])
    assert json.loads(ev.submitted.policy.options_json) == {"pace": 0.5, "initial": 2}
    cfg = config_from_submitted(ev.submitted)
    assert (cfg.policy, cfg.n_max, cfg.alpha, cfg.s_min) == ("optscale0", 8, 0.9, 0.9)
    pol = cfg.build_policy()
    assert (pol.pace, pol.initial) == (0.5, 2)  # type: ignore[attr-defined]


def test_params_tuned_on_a_submitted_question_or_another_n_max_are_refused(
    tmp_path: Path,
) -> None:
    path = _params(tmp_path)
    with pytest.raises(InvalidArgumentError):
        submit.apply_params(_args("--params", path), ["t1", "dev2"])
    submit.apply_params(_args("--params", path, "--allow-overlap"), ["dev2"])  # printed
    with pytest.raises(InvalidArgumentError) as err:
        submit.apply_params(_args("--params", path, "--n-max", "4"), ["t1"])
    assert err.value.field == "n_max"
    with pytest.raises(InvalidArgumentError) as err:
        submit.apply_params(_args("--options", '{"bogus": 1}'), ["t1"])
    assert err.value.field == "options"


def test_math_dataset_ids_travel_with_colons() -> None:
    from optscale.datasets import load_dataset
    from optscale.ids import pipeline_id

    (q,) = load_dataset("math500", limit=1)
    assert "/" in q.id
    pid = pipeline_id(q.id)
    assert "/" not in pid and pid.replace(":", "/") == q.id
    (ev,) = submit.build_events(_args(), [Question(pid, q.text, q.answer)])
    assert ev.question_id == pid
    with pytest.raises(InvalidArgumentError):
        pipeline_id("a{b}")
