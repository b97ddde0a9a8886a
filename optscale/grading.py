"""Answer extraction and grading.

* :func:`extract_answer` — the last ``\\boxed{...}`` (or ``\\fbox{...}``, balanced braces) of a
  completion; for GSM8K also ``#### 42``, "the answer is 42" and, last, the final number.
* :func:`normalize_answer` — a cheap string normal form. Votes (self-consistency, ESC, ASC,
  the oracle) group answers by it: math-verify equivalence costs ~1-50 ms a pair, too slow for
  replay's millions of votes, so two spellings of one value that the normal form misses vote
  separately (documented trade-off).
* :func:`is_correct` — grading against a reference with ``math-verify`` (after a normalized
  string match). Its signal-based timeouts are turned off so it works off the main thread.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

__all__ = ["extract_answer", "is_correct", "normalize_answer"]

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASH_RE = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS_RE = re.compile(
    r"answer\s*(?:is|:)\s*[:\s]*\$?\s*([-+]?[$\\\w{}().,/^* ]+?)\s*\$?(?:\.\s|\.?$|\n)",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def _boxed_contents(text: str) -> list[str]:
    out: list[str] = []
    for m in _BOX_RE.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        if depth == 0:
            out.append(text[m.end() : i - 1].strip())
    return out


def extract_answer(text: str, dataset: str = "math") -> str | None:
    """The final answer written in ``text``, or None when there is none."""
    if not text:
        return None
    boxed = _boxed_contents(text)
    if boxed:
        return boxed[-1] or None
    if dataset == "gsm8k" or dataset.startswith("gsm"):
        m = _HASH_RE.search(text)
        if m:
            return m.group(1).strip() or None
    hits = _ANSWER_IS_RE.findall(text)
    if hits:
        return str(hits[-1]).strip() or None
    if dataset.startswith("gsm"):
        nums = _NUMBER_RE.findall(text)
        if nums:
            return str(nums[-1])
    return None


_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_NUM_COMMA_RE = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")
_TRAILING_ZEROS_RE = re.compile(r"^([-+]?\d+)\.0+$")


@lru_cache(maxsize=65536)
def normalize_answer(s: str) -> str:
    """Cheap canonical spelling: no spaces/``$``/``\\left``/``\\text``, ``dfrac`` -> ``frac``,
    ``1,000`` -> ``1000``, ``18.00`` -> ``18``, no trailing period or degree/percent signs."""
    t = s.strip()
    t = _TEXT_RE.sub(r"\1", t)
    for old, new in (
        ("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\ ", ""),
        ("dfrac", "frac"), ("tfrac", "frac"), ("^\\circ", ""), ("^{\\circ}", ""),
        ("\\%", ""), ("%", ""), ("$", ""), ("\\displaystyle", ""),
    ):
        t = t.replace(old, new)
    t = "".join(t.split())
    t = t.rstrip(".")
    t = _NUM_COMMA_RE.sub("", t)
    m = _TRAILING_ZEROS_RE.match(t)
    if m:
        t = m.group(1)
    if t.startswith("+"):
        t = t[1:]
    return t


def _quiet_math_verify() -> None:
    # With timeouts off (needed off the main thread) math-verify warns on every call.
    for name in ("math_verify", "math_verify.parser", "math_verify.grader", "math_verify.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _parse(x: str) -> list[Any]:
    from math_verify import parse

    _quiet_math_verify()

    return list(parse(f"${x}$", parsing_timeout=None))


@lru_cache(maxsize=65536)
def is_correct(pred: str | None, reference: str) -> bool:
    """Whether ``pred`` equals ``reference`` (normalized string match, else math-verify)."""
    if pred is None or not pred.strip():
        return False
    if normalize_answer(pred) == normalize_answer(reference):
        return True
    from math_verify import verify

    gold, target = _parse(reference), _parse(pred)
    if not gold or not target:
        return False
    try:
        return bool(verify(gold, target, timeout_seconds=None))
    except Exception:  # math-verify raises on exotic sympy input; treat as not equal
        return False
