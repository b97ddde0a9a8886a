"""``optscale results --until-done`` and ``optscale status`` against a running local stack:
the progress line counts the submitted questions (from optscale.question-events) and the
answered ones, tokens and accuracy agree with the results themselves, and a summary table
ends the output. With two batches submitted side by side, ``--batch A`` prints and counts only
A's results, against A's recorded total (resubmitting into A adds only new questions), and
``results --follow`` stops by itself at A's total; an unknown batch is exit code 2 and
consumes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.infra import free_port_block

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
N = 6


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optscale", *args], cwd=ROOT, text=True, capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(Kafka bootstrap, Redis URL) of a local stack."""
    base = free_port_block(6)
    d = tmp_path_factory.mktemp("stack")
    up = _cli("stack", "up", "--dir", str(d), "--broker-port", str(base + 4), "--redis-port",
              str(base + 5), "--grpc-base", str(base))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield f"127.0.0.1:{base + 4}", f"redis://127.0.0.1:{base + 5}/0"
    finally:
        _cli("stack", "down", "--dir", str(d))


def _questions(path: Path, ids: list[str]) -> str:
    path.write_text("".join(
        json.dumps({"id": q, "question": f"what is {i} + 40?", "answer": str(i + 40)}) + "\n"
        for i, q in enumerate(ids)
    ))
    return str(path)


def test_results_until_done_and_status_show_progress_and_summary(
    stack: tuple[str, str], tmp_path: Path
) -> None:
    bootstrap, redis_url = stack
    empty = _cli("status", "--bootstrap", bootstrap)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.splitlines()[0] == "answered 0/0 | tokens 0"

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(
        json.dumps({"id": f"p{i}", "question": f"what is {i} + 40?", "answer": str(i + 40)})
        + "\n" for i in range(N)
    ))
    sub = _cli("submit", str(questions), "--bootstrap", bootstrap, "--redis-url", redis_url,
               "--n-max", "8")
    assert sub.returncode == 0, sub.stdout + sub.stderr
    (line,) = sub.stdout.splitlines()  # a batch id was generated and printed
    assert line.startswith("batch b") and line.endswith(f" {N} questions")
    out = _cli("results", "--bootstrap", bootstrap, "--until-done")
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["questionId"] for r in results) == [f"p{i}" for i in range(N)]

    tokens = sum(int(r.get("completionTokens", 0)) for r in results)
    right = sum(bool(r.get("correct")) for r in results)
    graded = sum("correct" in r for r in results)
    assert graded == N  # every question had a reference
    bon = sum(int(r.get("completionTokens", 0)) / r["samplesUsed"] * r["nMax"] for r in results)
    final = (
        f"answered {N}/{N} (100%) [{'#' * 20}] | tokens {tokens:,} | saved vs BoN@N_max "
        f"{100 * (1 - tokens / bon):.1f}% (est.) | accuracy {100 * right / N:.1f}% "
        f"({right}/{N} graded)"
    )
    err = out.stderr.splitlines()
    assert final in err  # the last progress line
    assert all(line.startswith("answered ") for line in err[: err.index(final)])
    summary = err[err.index(final) + 1:]
    assert summary[0].split() == ["questions", "submitted", str(N)]
    assert summary[1].split() == ["answered", str(N)]
    assert ["tokens", "used", f"{tokens:,}"] in [row.split() for row in summary]

    status = _cli("status", "--bootstrap", bootstrap)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == final and lines[1:] == summary

    # --until-done ends by itself without the progress display too (it once never did)
    quiet = _cli("results", "--bootstrap", bootstrap, "--until-done", "--no-progress")
    assert quiet.returncode == 0, quiet.stderr
    assert not quiet.stderr.strip()
    got = sorted(json.loads(line)["questionId"] for line in quiet.stdout.splitlines())
    assert got == [f"p{i}" for i in range(N)]


def test_two_batches_side_by_side_each_counts_and_ends_at_its_own_total(
    stack: tuple[str, str], tmp_path: Path
) -> None:
    bootstrap, redis_url = stack
    conn = ("--bootstrap", bootstrap, "--redis-url", redis_url)

    def submit(ids: list[str], *batch: str) -> str:
        name = f"{ids[0]}-{len(ids)}.jsonl"
        sub = _cli("submit", _questions(tmp_path / name, ids), *conn, "--n-max", "8", *batch)
        assert sub.returncode == 0, sub.stdout + sub.stderr
        return sub.stdout.strip()

    assert submit(["a0", "a1", "a2"], "--batch-id", "A") == "batch A 3 questions"
    line = submit(["b0", "b1", "b2", "b3", "b4"])
    batch_b = line.split()[1]
    assert line == f"batch {batch_b} 5 questions" and batch_b != "A"
    # into A again: a2 is in A already, a3 is new: A has 4 questions
    assert submit(["a2", "a3"], "--batch-id", "A") == "batch A 2 questions"

    out = _cli("results", *conn, "--follow", "--batch", "A")  # stops by itself
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(r["questionId"] for r in results) == ["a0", "a1", "a2", "a3"]
    assert {r["batchId"] for r in results} == {"A"}
    tokens = sum(int(r.get("completionTokens", 0)) for r in results)
    err = out.stderr.splitlines()
    (final,) = [line for line in err if line.startswith("batch A | answered 4/4 (100%) [#")]
    assert f"| tokens {tokens:,} |" in final
    assert all(line.startswith("batch A | answered ") for line in err[: err.index(final)])
    summary = err[err.index(final) + 1:]
    assert summary[0].split() == ["batch", "A"]
    assert summary[1].split() == ["questions", "submitted", "4"]
    assert summary[2].split() == ["answered", "4"]

    status = _cli("status", *conn, "--batch", "A")
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines() == [final, *summary]

    out_b = _cli("results", *conn, "--follow", "--batch", batch_b, "--no-progress")
    assert out_b.returncode == 0 and out_b.stderr == "", out_b.stderr
    ids_b = sorted(json.loads(line)["questionId"] for line in out_b.stdout.splitlines())
    assert ids_b == ["b0", "b1", "b2", "b3", "b4"]


def test_an_unknown_batch_is_exit_code_2_and_consumes_nothing(
    stack: tuple[str, str], tmp_path: Path
) -> None:
    bootstrap, redis_url = stack
    conn = ("--bootstrap", bootstrap, "--redis-url", redis_url)
    submit = _cli("submit", _questions(tmp_path / "c.jsonl", ["c0"]), *conn, "--batch-id", "C")
    assert submit.returncode == 0, submit.stderr
    refused = [
        _cli("results", *conn, "--follow", "--batch", "nope", "--group", "g-nope"),
        _cli("status", *conn, "--batch", "nope"),
    ]
    for bad in refused:
        assert bad.returncode == 2, bad.stdout + bad.stderr
        assert "no such batch" in bad.stderr and bad.stdout == ""
    # the group of the refused run read nothing: it still gets C's result from the start
    out = _cli("results", *conn, "--follow", "--batch", "C", "--group", "g-nope", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["questionId"] for line in out.stdout.splitlines()] == ["c0"]
