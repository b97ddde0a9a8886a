"""Several pool files read as ONE pool (a pool that grew in several recordings).

A pool may be recorded in parts — the first questions in one file, later questions in others —
as long as every part was recorded the same way. :func:`union_pools` joins the parts read by
:func:`optscale.pools.read_pools` and refuses, with an error naming the two files, parts that:

* were recorded with a different setting: any of :data:`SETTING_FIELDS` that the records of
  both files carry (model, verifier, scorer aggregation, dataset, sampling settings) has
  different values (a field one file does not carry is not compared);
* hold a different number of samples per question (each file's smallest and largest count);
* hold the same question id (a question belongs to one file; nothing is renamed, so params
  tuned on the union name the questions by their own ids and ``check_overlap`` still works).

The union is named ``"<file 1>+<file 2>+..."``; one part is returned as it is (same name, so
the same pool hash as before). The pool hash (:func:`optscale.params.pool_sha256`) is over the
union's content, so it covers every file. The dev/test split is by question-id hash, so adding
a file never moves a question between halves. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from optscale.errors import DataError
from optscale.pool_model import Pool

__all__ = ["SETTING_FIELDS", "PoolPart", "union_pools"]

# record fields that say how a pool was recorded; parts must agree on those both carry
SETTING_FIELDS: tuple[str, ...] = (
    "dataset",
    "model",
    "verifier",
    "aggregation",
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
)


@dataclass(frozen=True, slots=True)
class PoolPart:
    """One file of a pool: where it came from, what it holds, and the recording settings its
    records carry (field -> every value seen, JSON-encoded)."""

    path: str
    pool: Pool
    settings: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _shown(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def _check_settings(first: PoolPart, other: PoolPart) -> None:
    for name in SETTING_FIELDS:
        a, b = first.settings.get(name), other.settings.get(name)
        if a and b and a != b:
            raise DataError(
                f"{first.path} + {other.path}",
                f"recorded with a different {name} ({_shown(a)} vs {_shown(b)}); "
                "one pool is one model, scorer and sampling setting",
            )


def _check_sample_counts(first: PoolPart, other: PoolPart) -> None:
    a = (first.pool.min_samples, first.pool.max_samples)
    b = (other.pool.min_samples, other.pool.max_samples)
    if a != b:
        raise DataError(
            f"{first.path} + {other.path}",
            f"different samples per question ({_counts(a)} vs {_counts(b)}); "
            "one pool has one N per question",
        )


def _counts(lo_hi: tuple[int, int]) -> str:
    lo, hi = lo_hi
    return str(lo) if lo == hi else f"{lo}-{hi}"


def union_pools(parts: Sequence[PoolPart]) -> Pool:
    """The parts as one pool, after the checks above (see the module doc)."""
    if not parts:
        raise DataError("pools", "no pool files given")
    if len(parts) == 1:
        return parts[0].pool
    first = parts[0]
    owner: dict[str, str] = {}
    questions = []
    for part in parts:
        if not part.pool.questions:
            raise DataError(part.path, "pool file has no questions")
        _check_settings(first, part)
        _check_sample_counts(first, part)
        for q in part.pool.questions:
            prev = owner.get(q.question_id)
            if prev is not None:
                raise DataError(
                    f"{prev} + {part.path}",
                    f"question {q.question_id!r} is in both files; a question belongs to one "
                    "file of a pool (drop one of the files, or the file the other contains)",
                )
            owner[q.question_id] = part.path
            questions.append(q)
    return Pool("+".join(p.pool.name for p in parts), questions)
