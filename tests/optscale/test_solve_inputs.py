"""Bad command-line input and resume files: clear errors, before a model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optscale.cli import main

# A model that does not exist: an error about it means the model was loaded first.
NO_MODEL = ["--generator", "llamacpp", "--model", "/nonexistent/model.gguf"]


def _questions(path: Path, n: int, answer: str = "42") -> Path:
    path.write_text(
        "".join(json.dumps({"id": f"x{i}", "question": "?", "answer": answer}) + "\n"
                for i in range(n))
    )
    return path


@pytest.mark.parametrize("command", ["solve", "record", "eval"])
@pytest.mark.parametrize("flag", ["--limit", "--offset"])
@pytest.mark.parametrize("source", ["file", "dataset"])
def test_negative_limit_or_offset_names_the_flag(
    command: str, flag: str, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    qfile = _questions(tmp_path / "qs.jsonl", 3)
    src = [str(qfile)] if source == "file" else ["--dataset", "gsm8k"]
    out = ["--out", str(tmp_path / "o.jsonl")] if command != "eval" else []
    assert main([command, *src, *NO_MODEL, *out, flag, "-1"]) == 2
    assert f"optscale: error: invalid {flag}=-1: must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "runs").exists()


def test_resume_with_a_malformed_results_file_is_a_data_error_and_keeps_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qfile = _questions(tmp_path / "qs.jsonl", 3)
    out = tmp_path / "out.jsonl"
    argv = ["solve", str(qfile), "--generator", "sim", "--policy", "bon", "--n-max", "2",
            "--out", str(out), "--limit", "1"]
    assert main(argv) == 0
    good = out.read_text()
    assert [json.loads(x)["id"] for x in good.splitlines()] == ["x0"]
    for bad, why in [
        (good + '{"id": "x1", "answ\n', f"{out}:2: not valid JSON"),
        (good + '\n{"answer": "42"}\n', f"{out}:3: not a result row (no string 'id')"),
        ('[1, 2]\n' + good, f"{out}:1: not a result row (not a JSON object)"),
    ]:
        out.write_text(bad)
        assert main([*argv[:-2], "--resume", *NO_MODEL]) == 2  # before loading a model
        assert f"optscale: error: {why}" in capsys.readouterr().err
        assert out.read_text() == bad  # neither truncated nor appended to
    out.write_text(good)  # fixed: the resume skips x0 and appends the rest
    assert main([*argv[:-2], "--resume"]) == 0
    assert "resume: 1 questions already done" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert lines[0] == good.strip() and [json.loads(x)["id"] for x in lines] == ["x0", "x1", "x2"]


def test_record_into_a_malformed_pool_is_a_data_error_and_keeps_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    qfile = _questions(tmp_path / "qs.jsonl", 2)
    pool = tmp_path / "pool.jsonl"
    bad = '{"question_id": "x0", "sample_id": "x0/0"}\nnot json\n'
    pool.write_text(bad)
    assert main(["record", str(qfile), *NO_MODEL, "--out", str(pool)]) == 2
    assert f"optscale: error: {pool}:1: missing field" in capsys.readouterr().err
    assert pool.read_text() == bad and not (tmp_path / "runs").exists()
