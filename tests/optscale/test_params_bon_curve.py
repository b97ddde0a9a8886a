"""A params file's dev BoN curve (issue 19.1): the equal-accuracy fixed k_eq read off it, carried
as the ``bon_curve_k_eq`` option that no policy reads; old files without the curve still load;
a malformed curve is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from optscale.calibrate import calibrate, write_params
from optscale.config import QuestionConfig
from optscale.errors import DataError, InvalidArgumentError
from optscale.params import BON_CURVE_K_EQ, read_params
from tests.optscale.test_calibrate import GRID, stopping_pays

# BoN(k): 100 tokens a sample; accuracy rises to 0.7 at k=2, falls, recovers to 0.65
CURVE = [(1, 100.0, 0.5), (2, 200.0, 0.7), (3, 300.0, 0.6), (4, 400.0, 0.65)]


def _write(tmp_path: Path, dev: dict[str, Any] | None, n_max: int = 4) -> Path:
    data: dict[str, Any] = {
        "policy": "optscale0",
        "n_max": n_max,
        "alpha": 0.9,
        "s_min": 0.8,
        "policy_params": {"pace": 0.5},
        "tuned_on": {"pool": "p", "pool_sha256": "0", "split": "dev", "question_ids": ["d1"]},
    }
    if dev is not None:
        data["dev"] = dev
    path = tmp_path / "params.json"
    path.write_text(json.dumps(data))
    return path


def _dev(accuracy: float, curve: list[tuple[int, float, float]] = CURVE) -> dict[str, Any]:
    return {
        "accuracy": accuracy,
        "served_tokens_per_question": 150.0,
        "bon_curve": [{"k": k, "tokens_per_question": t, "accuracy": a} for k, t, a in curve],
    }


@pytest.mark.parametrize(
    ("accuracy", "k_eq", "beyond"),
    [
        (0.6, 1.5, False),  # halfway from BoN(1) 0.5 to BoN(2) 0.7
        (0.7, 2.0, False),
        (0.25, 0.5, False),  # below BoN(1): on the line from the origin
        (0.65, 1.75, False),  # the first k that reaches it, not k=4
        (0.8, 2.0, True),  # beyond every k: the smallest k of the best accuracy
    ],
)
def test_k_eq_is_where_the_dev_curve_first_reaches_the_policys_dev_accuracy(
    tmp_path: Path, accuracy: float, k_eq: float, beyond: bool
) -> None:
    p = read_params(_write(tmp_path, _dev(accuracy)))
    assert p.bon_curve_k_eq == pytest.approx(k_eq)
    assert p.bon_curve_beyond is beyond
    assert p.dev_accuracy == accuracy and p.bon_curve == tuple(CURVE)
    assert dict(p.policy_params) == {"pace": 0.5, BON_CURVE_K_EQ: pytest.approx(k_eq)}
    assert BON_CURVE_K_EQ not in p.policy_kwargs()  # no policy reads it


@pytest.mark.parametrize("dev", [None, {"accuracy": 0.7, "served_tokens_per_question": 3.0}])
def test_old_params_without_the_curve_still_load_without_k_eq(
    tmp_path: Path, dev: dict[str, Any] | None
) -> None:
    p = read_params(_write(tmp_path, dev))
    assert p.bon_curve_k_eq is None and p.bon_curve == () and not p.bon_curve_beyond
    assert dict(p.policy_params) == {"pace": 0.5}


def test_a_dev_accuracy_of_zero_gives_no_k_eq(tmp_path: Path) -> None:
    p = read_params(_write(tmp_path, _dev(0.0)))
    assert p.bon_curve_k_eq is None and BON_CURVE_K_EQ not in dict(p.policy_params)


@pytest.mark.parametrize(
    ("dev", "why"),
    [
        ({"accuracy": 0.6, "bon_curve": "k=1..4"}, "must be a list"),
        (_dev(0.6, CURVE[:3]), "3 points for N_max 4"),
        (_dev(0.6, [CURVE[1], CURVE[0], *CURVE[2:]]), "expected k=1"),
        (_dev(0.6, [(1, 100.0, 1.5), *CURVE[1:]]), "accuracy in [0, 1]"),
        (_dev(1.2), "not in [0, 1]"),
        ({"bon_curve": _dev(0.6)["bon_curve"]}, "missing or non-numeric 'accuracy'"),
        ({"accuracy": 0.6, "bon_curve": [{"k": 1, "accuracy": 0.5}]}, "tokens_per_question"),
    ],
)
def test_a_malformed_curve_is_refused_naming_the_file(
    tmp_path: Path, dev: dict[str, Any], why: str
) -> None:
    with pytest.raises(DataError, match=str(tmp_path)) as exc:
        read_params(_write(tmp_path, dev))
    assert why in str(exc.value)


def test_calibrate_params_give_the_k_whose_interpolated_curve_accuracy_is_the_dev_accuracy(
    tmp_path: Path,
) -> None:
    cal = calibrate(stopping_pays(), n_max=8, **GRID)  # type: ignore[arg-type]
    path = tmp_path / "tuned.json"
    write_params(cal, path)
    p = read_params(path)
    assert p.bon_curve_k_eq is not None and 0 < p.bon_curve_k_eq <= 8
    assert len(p.bon_curve) == 8 and p.dev_accuracy == cal.accuracy
    if not p.bon_curve_beyond:  # the curve's running best, read at k_eq, is the dev accuracy
        best = [0.0]
        for _, _, a in p.bon_curve:
            best.append(max(best[-1], a))
        lo = int(p.bon_curve_k_eq)
        hi = min(lo + 1, 8)
        at = best[lo] + (best[hi] - best[lo]) * (p.bon_curve_k_eq - lo)
        assert at == pytest.approx(cal.accuracy)


@pytest.mark.parametrize("policy", ["optscale0", "bayes", "sc"])
def test_a_question_config_carries_k_eq_and_still_builds_its_policy(policy: str) -> None:
    cfg = QuestionConfig(
        "2+2?", policy=policy, n_max=8, options=QuestionConfig.options_from({BON_CURVE_K_EQ: 2.5})
    ).validate()
    assert dict(cfg.options)[BON_CURVE_K_EQ] == 2.5
    assert cfg.build_policy().n_max == 8


@pytest.mark.parametrize("bad", [0, -1.0, "3", True, float("inf")])
def test_a_bad_k_eq_option_is_refused_naming_it(bad: object) -> None:
    cfg = QuestionConfig("2+2?", options=((BON_CURVE_K_EQ, bad),))
    with pytest.raises(InvalidArgumentError, match=BON_CURVE_K_EQ):
        cfg.validate()
