"""The OptScale paper's reference numbers, read from its released result files.

``optscale_official/`` (in the shared datasets folder) holds the authors' per-method result
JSON and the table they printed (``results/results_table.csv``). Our docs quote the baselines
we do not re-run from here, never from hand copies: :func:`paper_row` reads a method's
accuracy and mean tokens per question at one N from the result JSON, :func:`table_row` the same
cell of the printed table; ``tests/optscale/test_paper_tables.py`` checks the two agree.

Methods read from result files: ``dsc`` (``SC/<DS>_dsc_results.json``, the
``max_sample_size`` sweep) and ``mr-thinking`` (``Seq/<DS>_MR-Thinking.json``, by ``max_N``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optscale.errors import DataError, InvalidArgumentError

__all__ = ["DATASETS", "METHODS", "PaperRow", "paper_row", "table_row"]

DATASETS = ("MATH500", "GSM8K", "AIME24", "AIME25", "AMC23")
METHODS = {
    "dsc": "Difficulty-Adaptive SC (DSC)",
    "mr-thinking": "MR-Thinking",
}


@dataclass(frozen=True, slots=True)
class PaperRow:
    method: str
    dataset: str
    n: int
    accuracy: float  # fraction
    tokens: float  # mean completion tokens per question


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}", f"not valid JSON ({exc.msg})") from exc


def _check(method: str, dataset: str) -> None:
    if method not in METHODS:
        raise InvalidArgumentError("method", method, f"one of {', '.join(METHODS)}")
    if dataset not in DATASETS:
        raise InvalidArgumentError("dataset", dataset, f"one of {', '.join(DATASETS)}")


def paper_row(official: Path, method: str, dataset: str, n: int) -> PaperRow:
    """The method's result at N from the authors' result JSON."""
    _check(method, dataset)
    if method == "dsc":
        path = official / "SC" / f"{dataset}_dsc_results.json"
        rows = _load(path)["dsc_max_sample_size_sweep"]
        found = [r for r in rows if r["max_sample_size"] == n]
        acc_key, tok_key = "accuracy", "average_token_count"
    else:
        path = official / "Seq" / f"{dataset}_MR-Thinking.json"
        found = [r for r in _load(path) if r["max_N"] == n]
        acc_key, tok_key = "accuracy", "avg_tokens"
    if not found:
        raise DataError(str(path), f"no row for N={n}")
    r = found[0]
    return PaperRow(method, dataset, n, float(r[acc_key]), float(r[tok_key]))


def table_row(official: Path, method: str, dataset: str, n: int) -> PaperRow:
    """The same cell of the printed table (accuracy in %, tokens rounded, as printed)."""
    _check(method, dataset)
    path = official / "results" / "results_table.csv"
    try:
        rows = list(csv.reader(path.open(encoding="utf-8")))
    except OSError as exc:
        raise DataError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    label = f"{METHODS[method]} ($N={n}$)"
    col = 1 + 2 * DATASETS.index(dataset)
    for r in rows[1:]:
        if r and r[0] == label:
            return PaperRow(method, dataset, n, float(r[col]) / 100, float(r[col + 1]))
    raise DataError(str(path), f"no row {label!r}")
