"""Pool readers: our format, the reference format, the shared sample file; bad files."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from optscale.datasets import datasets_dir
from optscale.errors import DataError
from optscale.pools import (
    PoolWriter,
    detect_format,
    estimate_tokens,
    read_pool,
    sample_record,
    sigmoid,
    split_pool,
)

SAMPLES = datasets_dir() / "samples" / "qwen25math_rm8_math100.jsonl"


def _rec(qid: str, i: int, score: float = 0.5, correct: bool = True, **kw: object) -> dict:
    r = sample_record(
        question_id=qid,
        sample_id=f"{qid}/{i}",
        text="t",
        answer="1",
        correct=correct,
        score=score,
        completion_tokens=10 + i,
    )
    r.update(kw)
    return r


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ours_roundtrip_and_resume(tmp_path: Path) -> None:
    w = PoolWriter(tmp_path / "p.jsonl.gz")
    assert w.recorded_ids() == set()
    w.write_question([_rec("a", 0, 0.9), _rec("a", 1, 0.2, correct=False)])
    w.write_question([_rec("b", 0, 0.4)])
    assert w.recorded_ids() == {"a", "b"}
    pool = read_pool(tmp_path / "p.jsonl.gz")
    assert [q.question_id for q in pool.questions] == ["a", "b"]
    a = pool.questions[0]
    assert [(s.sample_id, s.score, s.correct, s.tokens) for s in a.samples] == [
        ("a/0", 0.9, True, 10),
        ("a/1", 0.2, False, 11),
    ]
    assert pool.min_samples == 1 and pool.max_samples == 2


def test_step_token_ends_are_read_with_the_step_scores(tmp_path: Path) -> None:
    rows = [_rec("q", 0, step_scores=[0.9, 0.4], step_token_ends=[4, 10]), _rec("q", 1)]
    pool = read_pool(_write(tmp_path / "p.jsonl", rows))
    a, b = pool.questions[0].samples
    assert (a.step_scores, a.step_token_ends) == ((0.9, 0.4), (4, 10))
    assert b.step_token_ends == ()


def test_ours_grades_from_reference_when_correct_missing(tmp_path: Path) -> None:
    r = _rec("q", 0, answer="\\frac{1}{2}", reference="0.5")
    del r["correct"]
    pool = read_pool(_write(tmp_path / "p.jsonl", [r]))
    assert pool.questions[0].samples[0].correct is True


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("score"), "missing field 'score'"),
        (lambda r: r.update(score=float("nan")), "nan"),
        (lambda r: r.update(score=1.5), "outside [0, 1]"),
        (lambda r: r.update(score="0.5"), "must be a number"),
        (lambda r: r.pop("completion_tokens"), "missing field 'completion_tokens'"),
        (lambda r: r.update(completion_tokens=-3), ">= 0"),
        (lambda r: r.update(correct="yes"), "true/false"),
        (lambda r: (r.pop("correct"), r.pop("reference")), "missing field 'correct'"),
        (lambda r: r.update(step_scores=[0.5], step_token_ends=["3"]), "list of integers"),
        (lambda r: r.update(step_scores=[0.5], step_token_ends=[3, 5]), "2 entries for 1"),
        (lambda r: r.update(step_scores=[0.5, 0.6], step_token_ends=[5, 5]), "must increase"),
        (lambda r: r.update(step_scores=[0.5], step_token_ends=[99]), "<= 11"),
    ],
)
def test_ours_bad_line_names_path_and_line(tmp_path: Path, mutate, message: str) -> None:
    bad = _rec("q", 1)
    mutate(bad)
    path = _write(tmp_path / "bad.jsonl", [_rec("q", 0), bad])
    with pytest.raises(DataError) as exc:
        read_pool(path, "ours")
    assert exc.value.where == f"{path}:2"
    assert message in str(exc.value)


def test_nan_literal_in_file(tmp_path: Path) -> None:
    path = tmp_path / "nan.jsonl"
    path.write_text(
        json.dumps(_rec("q", 0))
        + "\n"
        + json.dumps(_rec("q", 1)).replace('"score": 0.5', '"score": NaN')
        + "\n"
    )
    with pytest.raises(DataError, match=r"nan.jsonl:2: .*nan"):
        read_pool(path)


def test_invalid_json_and_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps(_rec("q", 0)) + "\n{not json\n")
    with pytest.raises(DataError, match=r"x.jsonl:2: not valid JSON"):
        read_pool(p, "ours")
    p2 = _write(tmp_path / "d.jsonl", [_rec("q", 0), _rec("q", 0)])
    with pytest.raises(DataError, match="duplicate sample_id"):
        read_pool(p2, "ours")
    with pytest.raises(DataError, match="cannot open"):
        read_pool(tmp_path / "missing.jsonl", "ours")


def _reference_record(qid: int, scores: list, correct_key: bool = False) -> dict:
    comps = [f"so \\boxed{{{i}}}" for i in range(len(scores))]
    body = {
        "problem": ["what?"],
        "completions": [comps],
        "scores": [scores],
        "last_scores": [[min(1.0, s + 0.01) for s in scores]],
        "pred": [comps[0]],
        "completion_tokens": [[100 + i for i in range(len(scores))]],
    }
    return {"id": qid, "output": comps[0], "n": len(scores), "score": body}


def test_reference_format_with_prompts(tmp_path: Path) -> None:
    comp = tmp_path / "GSM8K_completions.json"
    comp.write_text(
        json.dumps([_reference_record(1, [0.9, 0.2, 0.5]), _reference_record(2, [0.1, 0.8, 0.3])])
    )
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps([{"question": "a", "answer": "2"}, {"question": "b", "answer": "#### 1"}])
    )
    assert detect_format(comp) == "reference"
    pool = read_pool(comp, prompts=prompts)
    q1, q2 = pool.questions
    assert q1.reference == "2" and q2.reference == "1"
    assert [s.correct for s in q1.samples] == [False, False, True]
    assert [s.correct for s in q2.samples] == [False, True, False]
    assert [s.tokens for s in q1.samples] == [100, 101, 102]
    assert [s.answer for s in q1.samples] == ["0", "1", "2"]
    last = read_pool(comp, prompts=prompts, score_field="last_scores")
    assert last.questions[0].samples[0].score == pytest.approx(0.91)


def test_reference_format_errors(tmp_path: Path) -> None:
    rec = _reference_record(1, [0.9, float("nan")])
    comp = tmp_path / "c.json"
    comp.write_text(json.dumps([rec]))
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps([{"problem": "a", "answer": "1"}]))
    with pytest.raises(DataError, match=r"c.json:item 1 sample 1: .*nan"):
        read_pool(comp, prompts=prompts)
    with pytest.raises(DataError, match="no correctness"):
        comp.write_text(json.dumps([_reference_record(1, [0.9])]))
        read_pool(comp)
    rec = _reference_record(1, [0.9])
    del rec["score"]["completion_tokens"]
    comp.write_text(json.dumps([rec]))
    with pytest.raises(DataError, match="missing field 'completion_tokens'"):
        read_pool(comp, prompts=prompts)


def test_reference_correct_field_used(tmp_path: Path) -> None:
    rec = _reference_record(1, [0.9, 0.3])
    rec["score"]["correct"] = [[False, True]]
    comp = tmp_path / "c.jsonl"
    comp.write_text(json.dumps(rec) + "\n")
    pool = read_pool(comp, "reference")
    assert [s.correct for s in pool.questions[0].samples] == [False, True]


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared sample file not present")
def test_shared_sample_file() -> None:
    pool = read_pool(SAMPLES)
    assert len(pool.questions) == 100 and pool.min_samples == pool.max_samples == 8
    q0 = pool.questions[0]
    raw = json.loads(SAMPLES.open().readline())
    s0 = raw["samples"][0]
    assert q0.samples[0].score == pytest.approx(1 / (1 + math.exp(-s0["rm_score"])))
    assert q0.samples[0].tokens == math.ceil(s0["n_chars"] / 4)
    assert q0.samples[0].correct is s0["correct"]
    assert all(0 <= s.score <= 1 for q in pool.questions for s in q.samples)


def test_samples_file_bad_rm_score(tmp_path: Path) -> None:
    row = {
        "id": "q",
        "answer": "1",
        "samples": [
            {"pred": "1", "correct": True, "rm_score": 1.0, "n_chars": 10},
            {"pred": "1", "correct": True, "rm_score": None, "n_chars": 10},
        ],
    }
    p = _write(tmp_path / "s.jsonl", [row])
    with pytest.raises(DataError, match=r"s.jsonl:1 sample 1: field 'rm_score'"):
        read_pool(p, "samples")


def test_helpers_and_split() -> None:
    assert sigmoid(0) == 0.5 and sigmoid(-800) == 0.0 and sigmoid(800) == 1.0
    assert estimate_tokens(0) == 1 and estimate_tokens(9) == 3
    from optscale.pools import Pool, PoolQuestion

    pool = Pool("p", [PoolQuestion(str(i), "1", []) for i in range(200)])
    dev, test = split_pool(pool, seed=0)
    ids_dev = {q.question_id for q in dev.questions}
    assert ids_dev.isdisjoint(q.question_id for q in test.questions)
    assert len(dev.questions) + len(test.questions) == 200
    assert 60 < len(dev.questions) < 140
    # stable: the same seed gives the same split; another seed a different one
    assert {q.question_id for q in split_pool(pool, seed=0)[0].questions} == ids_dev
    assert {q.question_id for q in split_pool(pool, seed=1)[0].questions} != ids_dev


def test_gzip_corrupt(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(b"")
    with pytest.raises(DataError, match="no samples"):
        read_pool(p, "ours")
