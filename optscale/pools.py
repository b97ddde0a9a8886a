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
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from optscale.errors import DataError

FORMATS = ("auto", "ours", "reference", "samples")
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True, slots=True)
class PoolSample:
    """One recorded sample, as replay needs it."""

    sample_id: str
    answer: str | None
    correct: bool
    score: float
    tokens: int
    step_scores: tuple[float, ...] = ()
    gen_seconds: float = 0.0


@dataclass(slots=True)
class PoolQuestion:
    question_id: str
    reference: str | None
    samples: list[PoolSample] = field(default_factory=list)
    question: str | None = None


@dataclass(slots=True)
class Pool:
    name: str
    questions: list[PoolQuestion]

    @property
    def min_samples(self) -> int:
        return min((len(q.samples) for q in self.questions), default=0)

    @property
    def max_samples(self) -> int:
        return max((len(q.samples) for q in self.questions), default=0)

    def n_samples(self) -> int:
        return sum(len(q.samples) for q in self.questions)

    def summary(self) -> str:
        n = self.n_samples()
        acc = sum(s.correct for q in self.questions for s in q.samples) / n if n else 0.0
        return (
            f"{self.name}: {len(self.questions)} questions, {n} samples "
            f"({self.min_samples}-{self.max_samples} per question), "
            f"{100 * acc:.1f}% of samples correct"
        )


# ---------------------------------------------------------------------------------------------
# file helpers


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _iter_json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ("path:line", object) for each non-empty line."""
    try:
        fh = _open_text(path)
    except OSError as exc:
        raise DataError(str(path), f"cannot open: {exc.strerror or exc}") from exc
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(where, f"not valid JSON ({exc.msg})") from exc
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise DataError(str(path), f"cannot read: {exc}") from exc


def _req(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise DataError(where, f"missing field {key!r}")
    return obj[key]


def _as_score(value: Any, where: str, name: str = "score") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(where, f"field {name!r} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise DataError(where, f"field {name!r} is {v} (scores must be finite)")
    if not 0.0 <= v <= 1.0:
        raise DataError(where, f"field {name!r}={v} is outside [0, 1]")
    return v


def _as_tokens(value: Any, where: str, name: str = "completion_tokens") -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(where, f"field {name!r} must be an integer, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise DataError(where, f"field {name!r} must be an integer, got {value!r}")
    if value < 0:
        raise DataError(where, f"field {name!r} must be >= 0, got {value!r}")
    return int(value)


def _as_opt_str(value: Any, where: str, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(where, f"field {name!r} must be a string or null, got {value!r}")
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise DataError(where, f"field {name!r} must be a string or null, got {value!r}")
    return value


def _grade(answer: str | None, reference: str | None) -> bool:
    if answer is None or reference is None:
        return False
    from optscale.grading import is_correct  # lazy: math-verify import is slow

    return bool(is_correct(answer, reference))


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
    p = Path(path)
    by_q: dict[str, PoolQuestion] = {}
    seen: set[str] = set()
    for where, obj in _iter_json_lines(p):
        if not isinstance(obj, dict):
            raise DataError(where, "each line must be a JSON object (one sample)")
        qid = _as_opt_str(_req(obj, "question_id", where), where, "question_id")
        sid = _as_opt_str(_req(obj, "sample_id", where), where, "sample_id")
        if qid is None or sid is None:
            raise DataError(where, "question_id and sample_id must not be null")
        if sid in seen:
            raise DataError(where, f"duplicate sample_id {sid!r}")
        seen.add(sid)
        score = _as_score(_req(obj, "score", where), where)
        tokens = _as_tokens(_req(obj, "completion_tokens", where), where)
        answer = _as_opt_str(obj.get("answer"), where, "answer")
        reference = _as_opt_str(obj.get("reference"), where, "reference")
        correct_raw = obj.get("correct")
        if correct_raw is None:
            if "correct" not in obj and "reference" not in obj:
                raise DataError(where, "missing field 'correct' (or 'reference' to grade with)")
            correct = _grade(answer, reference) if grade_missing else False
        elif isinstance(correct_raw, bool):
            correct = correct_raw
        else:
            raise DataError(where, f"field 'correct' must be true/false/null, got {correct_raw!r}")
        steps_raw = obj.get("step_scores") or []
        if not isinstance(steps_raw, list):
            raise DataError(where, "field 'step_scores' must be a list")
        steps = tuple(_as_score(x, where, "step_scores") for x in steps_raw)
        gen_s = obj.get("gen_seconds", 0.0)
        if isinstance(gen_s, bool) or not isinstance(gen_s, int | float) or not gen_s >= 0:
            raise DataError(where, f"field 'gen_seconds' must be a number >= 0, got {gen_s!r}")
        q = by_q.get(qid)
        if q is None:
            q = by_q[qid] = PoolQuestion(qid, reference, [], obj.get("question"))
        elif q.reference is None and reference is not None:
            q.reference = reference
        q.samples.append(PoolSample(sid, answer, correct, score, tokens, steps, float(gen_s)))
    if not by_q:
        raise DataError(str(p), "pool file has no samples")
    return Pool(p.name, list(by_q.values()))


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
        with _open_text(path) as fh:
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
    return list(_iter_json_lines(path))


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
        out.append((text, _as_opt_str(ans, where, "answer")))
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
        comps = _unwrap(_req(body, "completions", where), where, "completions")
        scores = _unwrap(_req(body, score_field, where), where, score_field)
        toks = _unwrap(_req(body, "completion_tokens", where), where, "completion_tokens")
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
        reference = _as_opt_str(obj.get("answer", body.get("answer")), where, "answer")
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
            score = _as_score(s, w, score_field)
            ans = extract_answer(c, "math") if c else None
            if correct_list is not None:
                ok = correct_list[j]
                if not isinstance(ok, bool):
                    raise DataError(w, f"field 'correct' must be true/false, got {ok!r}")
            else:
                ok = _grade(ans, reference)
            steps: tuple[float, ...] = ()
            if isinstance(last, list):
                last_u = _unwrap(last, where, "last_scores")
                if j < len(last_u) and isinstance(last_u[j], int | float):
                    steps = (float(last_u[j]),)
            # their BoN skips empty completions; an empty text cannot be right and scores 0
            samples.append(
                PoolSample(f"{qid}/{j}", ans, ok, score if c else 0.0, _as_tokens(t, w), steps)
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
    for where, obj in _iter_json_lines(p):
        if not isinstance(obj, dict):
            raise DataError(where, "each line must be a JSON object (one question)")
        qid = _as_opt_str(_req(obj, "id", where), where, "id") or ""
        reference = _as_opt_str(obj.get("answer"), where, "answer")
        raw = _req(obj, "samples", where)
        if not isinstance(raw, list) or not raw:
            raise DataError(where, "field 'samples' must be a non-empty list")
        samples: list[PoolSample] = []
        for j, s in enumerate(raw):
            w = f"{where} sample {j}"
            if not isinstance(s, dict):
                raise DataError(w, "sample must be an object")
            rm = _req(s, "rm_score", w)
            if isinstance(rm, bool) or not isinstance(rm, int | float) or not math.isfinite(rm):
                raise DataError(w, f"field 'rm_score' must be a finite number, got {rm!r}")
            ok = _req(s, "correct", w)
            if not isinstance(ok, bool):
                raise DataError(w, f"field 'correct' must be true/false, got {ok!r}")
            if "n_chars" in s:
                n_chars = _as_tokens(s["n_chars"], w, "n_chars")
            else:
                n_chars = len(str(_req(s, "response", w)))
            samples.append(
                PoolSample(
                    f"{qid}/{j}",
                    _as_opt_str(s.get("pred"), w, "pred"),
                    ok,
                    sigmoid(float(rm)),
                    estimate_tokens(n_chars),
                )
            )
        questions.append(PoolQuestion(qid, reference, samples, obj.get("question")))
    if not questions:
        raise DataError(str(p), "file has no questions")
    return Pool(p.name, questions)


# ---------------------------------------------------------------------------------------------
# dispatch on format


def detect_format(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    try:
        with _open_text(p) as fh:
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


def merge_pools(pools: Sequence[Pool]) -> Pool:
    if len(pools) == 1:
        return pools[0]
    questions: list[PoolQuestion] = []
    seen: set[str] = set()
    for pool in pools:
        for q in pool.questions:
            qid = q.question_id if q.question_id not in seen else f"{pool.name}:{q.question_id}"
            seen.add(qid)
            questions.append(
                PoolQuestion(qid, q.reference, q.samples, q.question) if qid != q.question_id else q
            )
    return Pool("+".join(p.name for p in pools), questions)


def in_dev_split(question_id: str, *, dev_fraction: float = 0.5, seed: int = 0) -> bool:
    """Deterministic dev/test assignment of one question by a seeded hash of its id."""
    h = hashlib.sha256(f"{seed}:{question_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64 < dev_fraction


def split_pool(pool: Pool, *, dev_fraction: float = 0.5, seed: int = 0) -> tuple[Pool, Pool]:
    """Split into (dev, test) by question id hash; stable when the pool grows."""
    dev = [
        q
        for q in pool.questions
        if in_dev_split(q.question_id, dev_fraction=dev_fraction, seed=seed)
    ]
    test = [
        q
        for q in pool.questions
        if not in_dev_split(q.question_id, dev_fraction=dev_fraction, seed=seed)
    ]
    return Pool(f"{pool.name}[dev]", dev), Pool(f"{pool.name}[test]", test)
