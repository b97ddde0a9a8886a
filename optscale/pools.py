"""Recorded sample pools: read, write, split.

A *pool* is every sample that was generated and scored for a set of questions. Replay re-runs
stopping policies offline on pools, so a pool must hold, per sample, what a policy sees (answer,
score, tokens) and what the report needs (correct or not).

Three on-disk formats are read (see ``docs/pool-format.md``):

* ``ours`` — one JSON object per line per sample (``.jsonl`` or ``.jsonl.gz``), written by
  ``optscale solve --record`` / ``optscale record``.
* ``reference`` — the OptScale reference implementation's scored-completions file
  (``Albertwyk/OptScale`` ``generation_and_scoring/prm_scoring.py``): a JSON list (or JSONL) of
  ``{"id", "score": {"problem": [p], "completions": [[...]], "scores": [[...]],
  "last_scores": [[...]], "completion_tokens": [[...]]}}``. Reference answers come from the
  matching prompts file (``data/test_prompts/*.json``, by position) or from an ``answer`` field.
  Correctness: a ``correct`` list when present, else the last ``\\boxed{}`` of each completion
  graded with math-verify (as their ``bon.py`` does).
* ``samples`` — ``../shared/datasets/samples/qwen25math_rm8_math100.jsonl``: one question per
  line with ``samples: [{pred, correct, rm_score, n_chars, ...}]``. ``rm_score`` is an unbounded
  ORM logit; it is mapped to [0, 1] with the logistic sigmoid. The file has no token counts;
  tokens are estimated as ``ceil(n_chars / 4)`` (about 4 characters per token for English/LaTeX
  with Qwen-family tokenizers).

A pool recorded in several files (same model, scorer and settings; each question in one file)
is read as one pool by :func:`read_pools` (paths or glob patterns; the checks are in
:mod:`optscale.pool_union`).

Layout: this module holds our format (:func:`sample_record`, :func:`read_ours`,
:class:`PoolWriter`), format detection, :func:`read_pool` and :func:`read_pools`, and re-exports
the rest, so every
public name in ``__all__`` imports from here. The data model and the dev/test split are in
:mod:`optscale.pool_model`, the readers of the two foreign formats in :mod:`optscale.pool_readers`,
and the file and field checks all readers share in :mod:`optscale.pool_io`.
"""

from __future__ import annotations

import glob
import gzip
import itertools
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from optscale.errors import DataError
from optscale.pool_io import (
    as_opt_str,
    as_score,
    as_tokens,
    grade_answer,
    iter_json_lines,
    open_text,
    require_field,
)
from optscale.pool_model import (
    Pool,
    PoolQuestion,
    PoolSample,
    in_dev_split,
    merge_pools,
    split_pool,
)
from optscale.pool_readers import (
    CHARS_PER_TOKEN,
    estimate_tokens,
    read_reference,
    read_samples_file,
    sigmoid,
)
from optscale.pool_union import SETTING_FIELDS, PoolPart, union_pools

__all__ = [
    "CHARS_PER_TOKEN",
    "FORMATS",
    "Pool",
    "PoolQuestion",
    "PoolSample",
    "PoolWriter",
    "detect_format",
    "estimate_tokens",
    "expand_pool_paths",
    "in_dev_split",
    "merge_pools",
    "read_ours",
    "read_pool",
    "read_pools",
    "read_reference",
    "read_samples_file",
    "sample_record",
    "sigmoid",
    "split_pool",
]

FORMATS = ("auto", "ours", "reference", "samples")


# ---------------------------------------------------------------------------------------------
# our format


def sample_record(
    *,
    question_id: str,
    sample_id: str,
    text: str,
    answer: str | None,
    correct: bool | None,
    score: float,
    completion_tokens: int,
    step_scores: Sequence[float] = (),
    gen_seconds: float = 0.0,
    reference: str | None = None,
    question: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One line of our pool format (extra keys, e.g. ``finish_reason``, are kept as is)."""
    rec: dict[str, Any] = {
        "question_id": question_id,
        "sample_id": sample_id,
        "question": question,
        "reference": reference,
        "text": text,
        "answer": answer,
        "correct": correct,
        "score": float(score),
        "step_scores": [float(x) for x in step_scores],
        "completion_tokens": int(completion_tokens),
        "gen_seconds": round(float(gen_seconds), 4),
    }
    rec.update(extra)
    return rec


def read_ours(path: str | os.PathLike[str], *, grade_missing: bool = True) -> Pool:
    return _read_ours(path, grade_missing=grade_missing)[0]


def _read_ours(
    path: str | os.PathLike[str], *, grade_missing: bool = True
) -> tuple[Pool, dict[str, frozenset[str]]]:
    """The pool and the recording settings its records carry (:data:`SETTING_FIELDS`: field
    -> every value seen, JSON-encoded)."""
    p = Path(path)
    settings: dict[str, set[str]] = {}
    by_q: dict[str, PoolQuestion] = {}
    seen: set[str] = set()
    for where, obj in iter_json_lines(p):
        if not isinstance(obj, dict):
            raise DataError(where, "each line must be a JSON object (one sample)")
        qid = as_opt_str(require_field(obj, "question_id", where), where, "question_id")
        sid = as_opt_str(require_field(obj, "sample_id", where), where, "sample_id")
        if qid is None or sid is None:
            raise DataError(where, "question_id and sample_id must not be null")
        if sid in seen:
            raise DataError(where, f"duplicate sample_id {sid!r}")
        seen.add(sid)
        for name in SETTING_FIELDS:
            if obj.get(name) is not None:
                settings.setdefault(name, set()).add(json.dumps(obj[name], sort_keys=True))
        score = as_score(require_field(obj, "score", where), where)
        tokens = as_tokens(require_field(obj, "completion_tokens", where), where)
        answer = as_opt_str(obj.get("answer"), where, "answer")
        reference = as_opt_str(obj.get("reference"), where, "reference")
        correct_raw = obj.get("correct")
        if correct_raw is None:
            if "correct" not in obj and "reference" not in obj:
                raise DataError(where, "missing field 'correct' (or 'reference' to grade with)")
            correct = grade_answer(answer, reference) if grade_missing else False
        elif isinstance(correct_raw, bool):
            correct = correct_raw
        else:
            raise DataError(where, f"field 'correct' must be true/false/null, got {correct_raw!r}")
        steps_raw = obj.get("step_scores") or []
        if not isinstance(steps_raw, list):
            raise DataError(where, "field 'step_scores' must be a list")
        steps = tuple(as_score(x, where, "step_scores") for x in steps_raw)
        ends = _step_token_ends(obj.get("step_token_ends"), len(steps), tokens, where)
        gen_s = obj.get("gen_seconds", 0.0)
        if isinstance(gen_s, bool) or not isinstance(gen_s, int | float) or not gen_s >= 0:
            raise DataError(where, f"field 'gen_seconds' must be a number >= 0, got {gen_s!r}")
        q = by_q.get(qid)
        if q is None:
            q = by_q[qid] = PoolQuestion(qid, reference, [], obj.get("question"))
        elif q.reference is None and reference is not None:
            q.reference = reference
        q.samples.append(PoolSample(sid, answer, correct, score, tokens, steps, float(gen_s), ends))
    if not by_q:
        raise DataError(str(p), "pool file has no samples")
    pool = Pool(p.name, list(by_q.values()))
    return pool, {k: frozenset(v) for k, v in settings.items()}


def _step_token_ends(raw: Any, n_steps: int, tokens: int, where: str) -> tuple[int, ...]:
    """``step_token_ends``: absent/empty, or one strictly increasing token count per step
    score, the last at most the completion's tokens."""
    if not raw:
        return ()
    if not isinstance(raw, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in raw):
        raise DataError(where, "field 'step_token_ends' must be a list of integers")
    if len(raw) != n_steps:
        raise DataError(where, f"'step_token_ends' has {len(raw)} entries for {n_steps} steps")
    if raw[0] < 1 or any(b <= a for a, b in itertools.pairwise(raw)) or raw[-1] > tokens:
        raise DataError(
            where, f"'step_token_ends' must increase from >= 1 to <= {tokens}, got {raw}"
        )
    return tuple(raw)


class PoolWriter:
    """Appends samples to a pool file in our format; one question is written at once.

    ``recorded_ids()`` lists the questions already in the file, so a recording can resume.
    ``.gz`` paths are written as gzip members appended to the file (still one valid gzip).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def recorded_ids(self) -> set[str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return set()
        return {q.question_id for q in read_ours(self.path, grade_missing=False).questions}

    def write_question(self, records: Iterable[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if not data:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.suffix == ".gz":
            with gzip.open(self.path, "ab") as fh:
                fh.write(data.encode("utf-8"))
        else:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()


# ---------------------------------------------------------------------------------------------
# dispatch on format


def detect_format(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    try:
        with open_text(p) as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise DataError(str(p), f"cannot open: {exc.strerror or exc}") from exc
    stripped = head.lstrip()
    if stripped.startswith("["):
        return "reference"
    first = stripped.split("\n", 1)[0]
    try:
        obj = json.loads(first)
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}:1", f"not valid JSON ({exc.msg}); cannot detect format") from exc
    if isinstance(obj, dict):
        if "sample_id" in obj:
            return "ours"
        if "samples" in obj:
            return "samples"
        if ("score" in obj and isinstance(obj["score"], dict)) or "completions" in obj:
            return "reference"
    raise DataError(f"{p}:1", "unknown pool format (expected ours, reference or samples)")


def read_pool(
    path: str | os.PathLike[str],
    fmt: str = "auto",
    *,
    prompts: str | os.PathLike[str] | None = None,
    score_field: str = "scores",
) -> Pool:
    if fmt not in FORMATS:
        raise DataError(str(path), f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "ours":
        return read_ours(path)
    if fmt == "samples":
        return read_samples_file(path)
    return read_reference(path, prompts=prompts, score_field=score_field)


def expand_pool_paths(specs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Paths and glob patterns (``*``, ``?``, ``[``; sorted matches) -> the files, each once."""
    out: list[Path] = []
    seen: set[Path] = set()
    for spec in specs:
        text = os.fspath(spec)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise DataError(text, "no pool file matches this pattern")
            files = [Path(m) for m in matches]
        else:
            files = [Path(text)]
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    if not out:
        raise DataError("pools", "no pool files given")
    return out


def read_pools(
    specs: Sequence[str | os.PathLike[str]],
    fmt: str = "auto",
    *,
    prompts: str | os.PathLike[str] | None = None,
    score_field: str = "scores",
) -> Pool:
    """Several pool files (paths or glob patterns) read as ONE pool, refused unless they were
    recorded the same way and no question is in two files (:func:`optscale.pool_union.
    union_pools`); one file is read as :func:`read_pool` reads it."""
    files = expand_pool_paths(specs)
    if prompts is not None and len(files) > 1:
        raise DataError(
            str(prompts), "a prompts file gives answers by position: use it with one pool file"
        )
    if fmt not in FORMATS:
        raise DataError(str(files[0]), f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    parts: list[PoolPart] = []
    for f in files:
        if (detect_format(f) if fmt == "auto" else fmt) == "ours":
            pool, settings = _read_ours(f)
            parts.append(PoolPart(str(f), pool, settings))
        else:
            pool = read_pool(f, fmt, prompts=prompts, score_field=score_field)
            parts.append(PoolPart(str(f), pool))
    return union_pools(parts)
