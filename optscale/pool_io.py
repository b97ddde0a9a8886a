"""Reading pool files: the file and field checks that every pool reader shares.

``.gz`` paths are read as gzip, everything else as plain text, both UTF-8. Every failure is a
:class:`~optscale.errors.DataError` that names where it happened (``path`` or ``path:line``): a
file that cannot be opened or read, a line that is not valid JSON, a missing field, a score that
is not a finite number in [0, 1], a token count that is not a non-negative integer (integral
floats such as ``12.0`` pass), a text field that is not a string, a number (kept as its ``str``)
or null. Empty lines are skipped. :func:`grade_answer` grades with math-verify, imported lazily
(the import is slow); a missing answer or reference counts as wrong.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from optscale.errors import DataError

__all__ = [
    "as_opt_str",
    "as_score",
    "as_tokens",
    "grade_answer",
    "iter_json_lines",
    "open_text",
    "require_field",
]


def open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open("r", encoding="utf-8")


def iter_json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ("path:line", object) for each non-empty line."""
    try:
        fh = open_text(path)
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


def require_field(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise DataError(where, f"missing field {key!r}")
    return obj[key]


def as_score(value: Any, where: str, name: str = "score") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(where, f"field {name!r} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise DataError(where, f"field {name!r} is {v} (scores must be finite)")
    if not 0.0 <= v <= 1.0:
        raise DataError(where, f"field {name!r}={v} is outside [0, 1]")
    return v


def as_tokens(value: Any, where: str, name: str = "completion_tokens") -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(where, f"field {name!r} must be an integer, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise DataError(where, f"field {name!r} must be an integer, got {value!r}")
    if value < 0:
        raise DataError(where, f"field {name!r} must be >= 0, got {value!r}")
    return int(value)


def as_opt_str(value: Any, where: str, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(where, f"field {name!r} must be a string or null, got {value!r}")
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise DataError(where, f"field {name!r} must be a string or null, got {value!r}")
    return value


def grade_answer(answer: str | None, reference: str | None) -> bool:
    if answer is None or reference is None:
        return False
    from optscale.grading import is_correct  # lazy: math-verify import is slow

    return bool(is_correct(answer, reference))
