"""``optscale solve --prune-z``: prefix pruning wired from the command line to the generator;
pruned samples and their tokens in the summary and the --out rows; off by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optscale.cli import main


def _questions(tmp_path: Path, n: int = 4) -> Path:
    qfile = tmp_path / "qs.jsonl"
    rows = [json.dumps({"id": f"x{i}", "question": "?", "answer": "42"}) for i in range(n)]
    qfile.write_text("\n".join(rows) + "\n")
    return qfile


def _solve(tmp_path: Path, *extra: str) -> tuple[int, list[dict[str, object]]]:
    out = tmp_path / "out.jsonl"
    argv = ["solve", str(_questions(tmp_path)), "--generator", "sim", "--sim-steps", "4",
            "--policy", "bon", "--n-max", "8", "--out", str(out), *extra]  # fmt: skip
    code = main(argv)
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return code, rows


def test_prune_z_prunes_in_the_generator_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows = _solve(tmp_path, "--prune-z", "0.5")
    assert code == 0
    pruned = sum(int(r["samples_pruned"]) for r in rows)  # type: ignore[call-overload]
    spent = sum(int(r["pruned_tokens"]) for r in rows)  # type: ignore[call-overload]
    assert pruned > 0 and 0 < spent < sum(int(r["tokens"]) for r in rows)  # type: ignore[call-overload]
    assert all(r["samples_used"] == 8 for r in rows)  # pruned samples used their slots
    out = capsys.readouterr().out
    assert f"samples pruned              {pruned} (prefix pruning z=0.5; their {spent} " in out


def test_off_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, rows = _solve(tmp_path)
    assert code == 0 and all(r["samples_pruned"] == 0 for r in rows)
    assert "samples pruned" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--verifier", "sim"], "--verifier confidence"),
        (["--record", "pool.jsonl.gz"], "record"),
        (["--strategy", "mr-thinking"], "--strategy samples"),
        (["--prune-min-steps", "0"], "min_steps"),
        (["--prune-z", "-1"], "z"),
    ],
)
def test_bad_pruning_options_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], names: str
) -> None:
    z = [] if "--prune-z" in extra else ["--prune-z", "1"]
    code, _ = _solve(tmp_path, *z, *extra)
    assert code == 2
    err = capsys.readouterr().err
    assert "optscale: error:" in err and names in err
