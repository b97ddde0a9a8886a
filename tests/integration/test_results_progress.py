"""``optscale results --until-done`` and ``optscale status`` against a running local stack:
the progress line counts the submitted questions (from optscale.question-events) and the
answered ones, tokens and accuracy agree with the results themselves, and a summary table
ends the output."""

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
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = free_port_block(6)
    d = tmp_path_factory.mktemp("stack")
    up = _cli("stack", "up", "--dir", str(d), "--broker-port", str(base + 4), "--redis-port",
              str(base + 5), "--grpc-base", str(base))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield f"127.0.0.1:{base + 4}"
    finally:
        _cli("stack", "down", "--dir", str(d))


def test_results_until_done_and_status_show_progress_and_summary(
    bootstrap: str, tmp_path: Path
) -> None:
    empty = _cli("status", "--bootstrap", bootstrap)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.splitlines()[0] == "answered 0/0 | tokens 0"

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(
        json.dumps({"id": f"p{i}", "question": f"what is {i} + 40?", "answer": str(i + 40)})
        + "\n" for i in range(N)
    ))
    sub = _cli("submit", str(questions), "--bootstrap", bootstrap, "--n-max", "8")
    assert sub.returncode == 0, sub.stdout + sub.stderr
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
        f"answered {N}/{N} (100%) | tokens {tokens:,} | saved vs BoN@N_max "
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
