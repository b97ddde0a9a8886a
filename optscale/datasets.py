"""Benchmark questions by name, read from the shared datasets folder (never copied here).

The folder is ``$OPTSCALE_DATASETS`` when set, else ``../shared/datasets`` beside the repository
root. Every file is JSONL with at least ``id``, ``question`` and ``answer``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from optscale.errors import DataError, InvalidArgumentError
from optscale.types import Question

__all__ = ["DATASETS", "datasets_dir", "load_dataset", "load_questions_jsonl"]

DATASETS: dict[str, str] = {
    "math500": "math500.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
    "aime24": "aime24.jsonl",
    "aime25": "aime25.jsonl",
    "amc23": "amc23.jsonl",
    "math_train": "math_train.jsonl",
}

_REPO_ROOT = Path(__file__).resolve().parent.parent


def datasets_dir() -> Path:
    """The datasets folder, or :class:`DataError` saying where it was looked for."""
    env = os.environ.get("OPTSCALE_DATASETS")
    path = Path(env) if env else _REPO_ROOT.parent / "shared" / "datasets"
    if not path.is_dir():
        how = "$OPTSCALE_DATASETS" if env else "../shared/datasets beside the repository"
        raise DataError(
            str(path), f"datasets folder not found (looked at {how}; set OPTSCALE_DATASETS)"
        )
    return path


def load_questions_jsonl(
    path: str | Path, *, dataset: str | None = None, limit: int | None = None, offset: int = 0
) -> list[Question]:
    """Questions from a JSONL file with ``id``/``question`` (or ``problem``) and ``answer``.

    ``answer`` may be missing (questions to solve, not to grade). Errors name ``path:line``.

    GSM8K-style references are detected per question: an ``answer`` holding ``####`` (the
    original GSM8K form, ``"<solution>\n#### 1,234"``) becomes the text after the last ``####``
    without commas (``"1234"``, as in ``gsm8k_test.jsonl``), and, unless ``dataset`` is given,
    the question's ``dataset`` becomes ``"gsm8k"`` so the solver extracts and grades its answers
    as for ``--dataset gsm8k``. Other questions get ``dataset`` or the file's stem.
    """
    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise InvalidArgumentError("limit", limit, "must be >= 0")
    if isinstance(offset, bool) or offset < 0:
        raise InvalidArgumentError("offset", offset, "must be >= 0")
    p = Path(path)
    try:
        fh = p.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(str(p), f"cannot open: {exc.strerror or exc}") from exc
    out: list[Question] = []
    ids: set[str] = set()
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(where, f"not JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise DataError(where, "each line must be a JSON object")
            text = row.get("question", row.get("problem"))
            if not isinstance(text, str) or not text.strip():
                raise DataError(where, "missing 'question' text")
            qid = row.get("id", row.get("unique_id", f"{p.stem}-{lineno}"))
            if not isinstance(qid, str | int) or isinstance(qid, bool):
                raise DataError(where, f"'id' must be a string, got {qid!r}")
            qid = str(qid)
            if qid in ids:
                raise DataError(where, f"duplicate id {qid!r}")
            ids.add(qid)
            answer = row.get("answer")
            if answer is not None and not isinstance(answer, str | int | float):
                raise DataError(where, f"'answer' must be a string, got {answer!r}")
            ref = None if answer is None else str(answer)
            style = dataset or p.stem
            if ref is not None and "####" in ref:
                ref = ref.rsplit("####", 1)[1].strip().replace(",", "")
                if not ref:
                    raise DataError(where, "GSM8K-style 'answer' has nothing after '####'")
                style = dataset or "gsm8k"
            out.append(Question(qid, text, ref, style))
    end = None if limit is None else offset + limit
    return out[offset:end]


def load_dataset(name: str, *, limit: int | None = None, offset: int = 0) -> list[Question]:
    """The benchmark ``name`` (one of :data:`DATASETS`) or, if ``name`` is a path, that file."""
    if name in DATASETS:
        return load_questions_jsonl(
            datasets_dir() / DATASETS[name], dataset=name, limit=limit, offset=offset
        )
    if name.endswith(".jsonl") or os.sep in name:
        return load_questions_jsonl(name, limit=limit, offset=offset)
    names = ", ".join(DATASETS)
    raise InvalidArgumentError("dataset", name, f"must be one of {names} or a .jsonl path")
