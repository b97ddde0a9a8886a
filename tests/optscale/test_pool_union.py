"""A pool recorded in several files read as one pool (optscale.pools.read_pools,
optscale.pool_union): the union's questions, name, hash and split; the refusals (another
recording setting, another N per question, a question in two files, a prompts file with several
files, a pattern matching nothing); globs; calibrate and replay on the union."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from optscale.cli import main
from optscale.errors import DataError
from optscale.params import pool_sha256, read_params
from optscale.pools import read_pool, read_pools, sample_record, split_pool

SETTINGS = {"dataset": "gsm8k", "model": "m.gguf", "verifier": "confidence"}


def _rows(qids: list[str], n: int = 4, seed: int = 0, **settings: Any) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for qid in qids:
        for i in range(n):
            ok = rng.random() < 0.5
            r = sample_record(
                question_id=qid,
                sample_id=f"{qid}/{i}",
                text="t",
                answer="1" if ok else str(i + 2),
                correct=ok,
                score=round(rng.random(), 6),
                completion_tokens=50 + rng.randint(0, 50),
            )
            r.update({**SETTINGS, **settings})
            rows.append(r)
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _qids(lo: int, hi: int) -> list[str]:
    return [f"gsm8k-test-{i}" for i in range(lo, hi)]


def test_two_files_are_one_pool_with_a_hash_over_both(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", _rows(_qids(0, 10), seed=1))
    b = _write(tmp_path / "b.jsonl", _rows(_qids(10, 16), seed=2))
    union = read_pools([a, b])
    assert union.name == "a.jsonl+b.jsonl"
    assert [q.question_id for q in union.questions] == _qids(0, 16)
    # the hash covers both files: it is the hash of one file holding every record ...
    both = _write(
        tmp_path / "both.jsonl", _rows(_qids(0, 10), seed=1) + _rows(_qids(10, 16), seed=2)
    )
    assert pool_sha256(union) == pool_sha256(read_pool(both))
    assert pool_sha256(union) not in {pool_sha256(read_pool(a)), pool_sha256(read_pool(b))}
    # ... and changes when the second file does
    _write(b, _rows(_qids(10, 16), seed=3))
    assert pool_sha256(read_pools([a, b])) != pool_sha256(union)
    # one file is read as read_pool reads it (same name, same hash)
    assert read_pools([a]).name == "a.jsonl"
    assert pool_sha256(read_pools([a])) == pool_sha256(read_pool(a))


def test_adding_a_file_moves_no_question_between_halves(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", _rows(_qids(0, 20)))
    b = _write(tmp_path / "b.jsonl", _rows(_qids(20, 40)))
    dev_a, test_a = (set(q.question_id for q in h.questions) for h in split_pool(read_pool(a)))
    dev, test = (set(q.question_id for q in h.questions) for h in split_pool(read_pools([a, b])))
    assert dev_a <= dev and test_a <= test and dev.isdisjoint(test)
    assert len(dev | test) == 40


@pytest.mark.parametrize(
    ("field", "other"),
    [("model", "other.gguf"), ("verifier", "prm"), ("dataset", "math"), ("temperature", 0.2)],
)
def test_files_recorded_another_way_are_refused_naming_both(
    tmp_path: Path, field: str, other: object
) -> None:
    a = _write(tmp_path / "a.jsonl", _rows(_qids(0, 4), temperature=0.7))
    settings: dict[str, Any] = {"temperature": 0.7, field: other}
    b = _write(tmp_path / "b.jsonl", _rows(_qids(4, 8), **settings))
    with pytest.raises(DataError, match=f"different {field}") as err:
        read_pools([a, b])
    assert "a.jsonl" in str(err.value) and "b.jsonl" in str(err.value)


def test_a_setting_only_one_file_carries_is_not_compared(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", _rows(_qids(0, 4)))
    b = _write(tmp_path / "b.jsonl", _rows(_qids(4, 8), temperature=0.7))
    assert len(read_pools([a, b]).questions) == 8


def test_another_number_of_samples_per_question_is_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", _rows(_qids(0, 4), n=4))
    b = _write(tmp_path / "b.jsonl", _rows(_qids(4, 8), n=3))
    with pytest.raises(DataError, match=r"samples per question \(4 vs 3\)") as err:
        read_pools([a, b])
    assert "a.jsonl" in str(err.value) and "b.jsonl" in str(err.value)


def test_a_question_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", _rows(_qids(0, 4)))
    b = _write(tmp_path / "b.jsonl", _rows(_qids(3, 8)))
    with pytest.raises(DataError, match="'gsm8k-test-3' is in both files") as err:
        read_pools([a, b])
    assert "a.jsonl" in str(err.value) and "b.jsonl" in str(err.value)


def test_globs_expand_sorted_once_and_must_match(tmp_path: Path) -> None:
    _write(tmp_path / "p2.jsonl", _rows(_qids(4, 8)))
    p1 = _write(tmp_path / "p1.jsonl", _rows(_qids(0, 4)))
    union = read_pools([str(tmp_path / "p*.jsonl"), p1])  # p1 twice: read once
    assert union.name == "p1.jsonl+p2.jsonl" and len(union.questions) == 8
    with pytest.raises(DataError, match="no pool file matches"):
        read_pools([str(tmp_path / "q*.jsonl")])
    with pytest.raises(DataError, match="no pool files given"):
        read_pools([])


def test_a_prompts_file_goes_with_one_pool_file(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", _rows(_qids(0, 4)))
    b = _write(tmp_path / "b.jsonl", _rows(_qids(4, 8)))
    with pytest.raises(DataError, match="one pool file"):
        read_pools([a, b], prompts=tmp_path / "prompts.json")


def _stopping_pays(qids: list[str], seed: int) -> list[dict[str, Any]]:
    """Easy questions (all right, high scores) and hard ones: a stop rule beats the curve."""
    rng = random.Random(seed)
    rows = []
    for q, qid in enumerate(qids):
        easy = q % 2 == 0
        for i in range(8):
            ok = easy or rng.random() < 0.25
            score = rng.gauss(0.97, 0.01) if easy else rng.gauss(0.95, 0.02) if ok else 0.5
            r = sample_record(
                question_id=qid,
                sample_id=f"{qid}/{i}",
                text="t",
                answer="42" if ok else str(i),
                correct=ok,
                score=min(1.0, max(0.0, score)),
                completion_tokens=100 + rng.randint(0, 100),
            )
            rows.append({**r, **SETTINGS})
    return rows


def test_calibrate_on_the_union_and_replay_refuses_its_dev_questions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path / "pool-a.jsonl", _stopping_pays(_qids(0, 20), seed=0))
    b = _write(tmp_path / "pool-b.jsonl", _stopping_pays(_qids(20, 40), seed=1))
    params = tmp_path / "p.json"
    argv = ["calibrate", str(tmp_path / "pool-*.jsonl"), "--out", str(params)]
    assert main([*argv, "--alphas", "0.5,0.9", "--s-mins", "0.8,0.9", "--orders", "3"]) == 0
    p = read_params(params)
    dev, _ = split_pool(read_pools([a, b]))
    assert p.pool == "pool-a.jsonl+pool-b.jsonl[dev]"
    assert p.pool_sha256 == pool_sha256(dev)
    assert p.question_ids == {q.question_id for q in dev.questions}
    assert {int(q.rsplit("-", 1)[1]) >= 20 for q in p.question_ids} == {True, False}
    # the second file alone still holds dev questions: refused; its test half is fine
    replay = ["replay", str(b), "--params", str(params), "--orders", "2"]
    assert main(replay) == 2
    assert "tuned on" in capsys.readouterr().err
    assert main([*replay, "--split", "test"]) == 0
    # --union reads both files as one pool (one table); a question in two files is an error
    assert main(["replay", str(a), str(b), "--union", "--policies", "bon", "--orders", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("pool-a.jsonl+pool-b.jsonl") >= 1
    c = _write(tmp_path / "c.jsonl", _stopping_pays(_qids(19, 21), seed=2))
    assert main(["replay", str(a), str(c), "--union", "--orders", "2"]) == 2
    assert "in both files" in capsys.readouterr().err
