"""Dataset loading by name and from files; missing folder and bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optscale.datasets import DATASETS, datasets_dir, load_dataset, load_questions_jsonl
from optscale.errors import DataError, InvalidArgumentError

ROWS = {"math500": 500, "gsm8k": 1319, "aime24": 30, "aime25": 30, "amc23": 40, "math_train": 7500}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_benchmark_loads_by_name(name: str) -> None:
    qs = load_dataset(name)
    assert len(qs) == ROWS[name]
    assert all(q.text and q.answer is not None and q.dataset == name for q in qs)
    assert len({q.id for q in qs}) == len(qs)


def test_limit_and_offset() -> None:
    all_ = load_dataset("gsm8k")
    assert load_dataset("gsm8k", limit=3, offset=2) == all_[2:5]
    assert load_dataset("gsm8k")[0].answer == "18"
    with pytest.raises(InvalidArgumentError):
        load_dataset("gsm8k", limit=-1)


def test_missing_folder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPTSCALE_DATASETS", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="OPTSCALE_DATASETS"):
        datasets_dir()
    with pytest.raises(DataError, match="not found"):
        load_dataset("math500")


def test_unknown_name() -> None:
    with pytest.raises(InvalidArgumentError, match="math500"):
        load_dataset("mathh500")


def test_questions_file_and_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "qs.jsonl"
    f.write_text('{"id": "a", "question": "1+1?", "answer": "2"}\n\n{"problem": "2+2?"}\n')
    qs = load_questions_jsonl(f)
    assert [(q.id, q.answer) for q in qs] == [("a", "2"), ("qs-3", None)]
    assert load_dataset(str(f))[0].text == "1+1?"
    for body, why in [
        ('{"id": "a", "question": "x"}\nnot json\n', "qs.jsonl:2: not JSON"),
        ("[1, 2]\n", "JSON object"),
        ('{"id": "a"}\n', "missing 'question'"),
        ('{"id": "a", "question": "x"}\n{"id": "a", "question": "y"}\n', "duplicate id"),
    ]:
        f.write_text(body)
        with pytest.raises(DataError, match=why):
            load_questions_jsonl(f)
    with pytest.raises(DataError, match="cannot open"):
        load_questions_jsonl(tmp_path / "missing.jsonl")


def test_gsm8k_style_answers_are_detected_per_question(tmp_path: Path) -> None:
    f = tmp_path / "mine.jsonl"
    gsm = "1,000 + 234 = <<1000+234=1234>>1,234\n#### 1,234"
    f.write_text(
        json.dumps({"id": "g", "question": "x", "answer": gsm}) + "\n"
        + json.dumps({"id": "m", "question": "y", "answer": "(1,234)"}) + "\n"
    )
    g, m = load_questions_jsonl(f)
    assert (g.answer, g.dataset) == ("1234", "gsm8k")
    assert (m.answer, m.dataset) == ("(1,234)", "mine")
    assert load_questions_jsonl(f, dataset="other")[0].dataset == "other"
    f.write_text('{"id": "g", "question": "x", "answer": "no answer ####  "}\n')
    with pytest.raises(DataError, match=r"mine\.jsonl:1: GSM8K-style"):
        load_questions_jsonl(f)
