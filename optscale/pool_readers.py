"""Readers of the two foreign pool formats (see ``docs/pool-format.md``).

* ``reference`` — the OptScale reference implementation's scored-completions file
  (``Albertwyk/OptScale`` ``generation_and_scoring/prm_scoring.py``): a JSON list (or JSONL) of
  ``{"id", "score": {"problem": [p], "completions": [[...]], "scores": [[...]],
  "last_scores": [[...]], "completion_tokens": [[...]]}}``. Reference answers come from the
  matching prompts file (``data/test_prompts/*.json``, by position) or from an ``answer`` field.
  Correctness: a ``correct`` list when present, else the last ``\\boxed{}`` of each completion
  graded with math-verify (as their ``bon.py`` does). Their BoN skips empty completions; here an
  empty completion has no answer and scores 0. A record without completions is dropped; a
  question's id is its ``id`` field, else its 1-based position.
* ``samples`` — ``../shared/datasets/samples/qwen25math_rm8_math100.jsonl``: one question per
  line with ``samples: [{pred, correct, rm_score, n_chars, ...}]``. ``rm_score`` is an unbounded
  ORM logit; it is mapped to [0, 1] with the logistic sigmoid. The file has no token counts;
  tokens are estimated as ``ceil(n_chars / 4)`` (about 4 characters per token for English/LaTeX
  with Qwen-family tokenizers), from ``len(response)`` when ``n_chars`` is absent.

Both return a :class:`~optscale.pool_model.Pool`; :func:`optscale.pools.read_pool` picks the
reader by format, and our own format is read in :mod:`optscale.pools`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from optscale import pool_io
from optscale.errors import DataError
from optscale.pool_model import Pool, PoolQuestion, PoolSample

__all__ = [
    "CHARS_PER_TOKEN",
    "estimate_tokens",
    "read_reference",
    "read_samples_file",
    "sigmoid",
]

CHARS_PER_TOKEN = 4.0


# ---------------------------------------------------------------------------------------------
# reference (OptScale) format


def _unwrap(value: Any, where: str, name: str) -> list[Any]:
    """Their fields are wrapped in one-element lists: ``[[...]]`` -> ``[...]``."""
    if not isinstance(value, list):
        raise DataError(where, f"field {name!r} must be a list")
    if len(value) == 1 and isinstance(value[0], list):
        return value[0]
    return value


def _load_json_any(path: Path) -> list[tuple[str, Any]]:
    """A JSON list (where = path:item) or JSONL (where = path:line)."""
    try:
        with pool_io.open_text(path) as fh:
            head = fh.read(1 << 16)
            rest = fh.read()
    except OSError as exc:
        raise DataError(str(path), f"cannot open: {exc.strerror or exc}") from exc
    text = head + rest
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}", f"not valid JSON ({exc.msg})") from exc
        return [(f"{path}:item {i + 1}", obj) for i, obj in enumerate(data)]
    return list(pool_io.iter_json_lines(path))


def _load_references(prompts: str | os.PathLike[str]) -> list[tuple[str | None, str | None]]:
    """(question text, answer) by position from their prompts JSON or our dataset JSONL."""
    p = Path(prompts)
    out: list[tuple[str | None, str | None]] = []
    for where, obj in _load_json_any(p):
        if not isinstance(obj, dict):
            raise DataError(where, "prompt entries must be objects")
        ans = obj.get("answer")
        if isinstance(ans, str) and "####" in ans:  # raw GSM8K answer field
            ans = ans.split("####")[-1].strip().replace(",", "")
        text = obj.get("problem") or obj.get("question")
        out.append((text, pool_io.as_opt_str(ans, where, "answer")))
    return out


def read_reference(
    path: str | os.PathLike[str],
    *,
    prompts: str | os.PathLike[str] | None = None,
    score_field: str = "scores",
) -> Pool:
    """Read the OptScale reference scored-completions file.

    ``score_field`` is ``scores`` (mean of step rewards; what their BoN/OptScale use) or
    ``last_scores``. ``prompts`` gives reference answers by position.
    """
    if score_field not in ("scores", "last_scores"):
        raise DataError(str(path), f"unknown score field {score_field!r}")
    p = Path(path)
    refs = _load_references(prompts) if prompts is not None else None
    items = _load_json_any(p)
    if refs is not None and len(refs) != len(items):
        raise DataError(str(prompts), f"has {len(refs)} prompts but {p} has {len(items)} records")
    from optscale.grading import extract_answer

    questions: list[PoolQuestion] = []
    for i, (where, obj) in enumerate(items):
        if not isinstance(obj, dict):
            raise DataError(where, "each record must be a JSON object")
        inner = obj.get("score")
        body: dict[str, Any] = inner if isinstance(inner, dict) else obj
        comps = _unwrap(pool_io.require_field(body, "completions", where), where, "completions")
        scores = _unwrap(pool_io.require_field(body, score_field, where), where, score_field)
        toks = _unwrap(
            pool_io.require_field(body, "completion_tokens", where), where, "completion_tokens"
        )
        last = body.get("last_scores")
        if not (len(comps) == len(scores) == len(toks)):
            raise DataError(
                where,
                f"completions/{score_field}/completion_tokens lengths differ "
                f"({len(comps)}/{len(scores)}/{len(toks)})",
            )
        correct_list = body.get("correct", obj.get("correct"))
        if correct_list is not None:
            correct_list = _unwrap(correct_list, where, "correct")
            if len(correct_list) != len(comps):
                raise DataError(where, "field 'correct' has the wrong length")
        qid = str(obj.get("id", i + 1))
        qtext: str | None = None
        reference = pool_io.as_opt_str(obj.get("answer", body.get("answer")), where, "answer")
        problem = body.get("problem")
        if isinstance(problem, list) and problem:
            qtext = str(problem[0])
        if refs is not None:
            rtext, rans = refs[i]
            qtext = qtext or rtext
            reference = reference if reference is not None else rans
        if correct_list is None and reference is None:
            raise DataError(
                where, "no correctness: give the prompts file (--prompts) or a 'correct' field"
            )
        samples: list[PoolSample] = []
        for j, (c, s, t) in enumerate(zip(comps, scores, toks, strict=True)):
            w = f"{where} sample {j}"
            if not isinstance(c, str):
                raise DataError(w, "completion must be a string")
            score = pool_io.as_score(s, w, score_field)
            ans = extract_answer(c, "math") if c else None
            if correct_list is not None:
                ok = correct_list[j]
                if not isinstance(ok, bool):
                    raise DataError(w, f"field 'correct' must be true/false, got {ok!r}")
            else:
                ok = pool_io.grade_answer(ans, reference)
            steps: tuple[float, ...] = ()
            if isinstance(last, list):
                last_u = _unwrap(last, where, "last_scores")
                if j < len(last_u) and isinstance(last_u[j], int | float):
                    steps = (float(last_u[j]),)
            # their BoN skips empty completions; an empty text cannot be right and scores 0
            samples.append(
                PoolSample(
                    f"{qid}/{j}", ans, ok, score if c else 0.0, pool_io.as_tokens(t, w), steps
                )
            )
        if samples:
            questions.append(PoolQuestion(qid, reference, samples, qtext))
    if not questions:
        raise DataError(str(p), "no records")
    return Pool(p.name, questions)


# ---------------------------------------------------------------------------------------------
# the shared sample file (Qwen2.5-Math RM example)


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def estimate_tokens(n_chars: int) -> int:
    """Token estimate for a text of ``n_chars`` characters: ``ceil(n_chars / 4)``, at least 1."""
    return max(1, math.ceil(n_chars / CHARS_PER_TOKEN))


def read_samples_file(path: str | os.PathLike[str]) -> Pool:
    p = Path(path)
    questions: list[PoolQuestion] = []
    for where, obj in pool_io.iter_json_lines(p):
        if not isinstance(obj, dict):
            raise DataError(where, "each line must be a JSON object (one question)")
        qid = pool_io.as_opt_str(pool_io.require_field(obj, "id", where), where, "id") or ""
        reference = pool_io.as_opt_str(obj.get("answer"), where, "answer")
        raw = pool_io.require_field(obj, "samples", where)
        if not isinstance(raw, list) or not raw:
            raise DataError(where, "field 'samples' must be a non-empty list")
        samples: list[PoolSample] = []
        for j, s in enumerate(raw):
            w = f"{where} sample {j}"
            if not isinstance(s, dict):
                raise DataError(w, "sample must be an object")
            rm = pool_io.require_field(s, "rm_score", w)
            if isinstance(rm, bool) or not isinstance(rm, int | float) or not math.isfinite(rm):
                raise DataError(w, f"field 'rm_score' must be a finite number, got {rm!r}")
            ok = pool_io.require_field(s, "correct", w)
            if not isinstance(ok, bool):
                raise DataError(w, f"field 'correct' must be true/false, got {ok!r}")
            if "n_chars" in s:
                n_chars = pool_io.as_tokens(s["n_chars"], w, "n_chars")
            else:
                n_chars = len(str(pool_io.require_field(s, "response", w)))
            samples.append(
                PoolSample(
                    f"{qid}/{j}",
                    pool_io.as_opt_str(s.get("pred"), w, "pred"),
                    ok,
                    sigmoid(float(rm)),
                    estimate_tokens(n_chars),
                )
            )
        questions.append(PoolQuestion(qid, reference, samples, obj.get("question")))
    if not questions:
        raise DataError(str(p), "file has no questions")
    return Pool(p.name, questions)
