"""Answer extraction and grading.

* :func:`extract_answer` — the last ``\\boxed{...}`` (or ``\\fbox{...}``, balanced braces) of a
  completion; for GSM8K also ``#### 42``, "the answer is 42" and, last, the final number. A
  final answer that is a number followed by a comma and prose (``3, because ...``) is that
  number.
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
# A number: thousands-separated (``1,234``) or plain; ``3, 4`` is two numbers, ``3,`` is ``3``.
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUM)
# "answer is 3, because ...": the number, then a comma and a word (prose, not a list of values).
_NUM_THEN_PROSE = rf"\$?\s*({_NUM})\s*\$?\s*,\s+(?=[A-Za-z]{{2,}})"
_PROSE_RE = re.compile(_NUM_THEN_PROSE)
_ANSWER_IS_NUM_RE = re.compile(r"answer\s*(?:is|:)\s*[:\s]*" + _NUM_THEN_PROSE, re.IGNORECASE)


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


def _drop_prose(answer: str) -> str | None:
    """``3, because ...`` -> ``3``; anything else unchanged (None when empty)."""
    answer = answer.strip()
    m = _PROSE_RE.match(answer)
    return m.group(1) if m else answer or None


def _answer_is(text: str) -> str | None:
    """The last "the answer is X" (or "answer: X") of ``text``."""
    hits = [(m.start(), m.group(1)) for m in _ANSWER_IS_RE.finditer(text)]
    # "answer is 3, because 1+2=3." has no match above ("=" ends it); take the number then
    hits += [(m.start(), m.group(1)) for m in _ANSWER_IS_NUM_RE.finditer(text)]
    if not hits:
        return None
    return _drop_prose(max(hits, key=lambda h: h[0])[1])


def extract_answer(text: str, dataset: str = "math") -> str | None:
    """The final answer written in ``text``, or None when there is none.

    ``dataset`` starting with ``gsm`` (``gsm8k``) turns on the GSM8K forms: ``#### 42`` and,
    when nothing else is found, the last number of the text.
    """
    if not text:
        return None
    boxed = _boxed_contents(text)
    if boxed:
        return _drop_prose(boxed[-1])
    if dataset.startswith("gsm"):
        m = _HASH_RE.search(text)
        if m:
            return _drop_prose(m.group(1))
    hit = _answer_is(text)
    if hit is not None:
        return hit
    if dataset.startswith("gsm"):
        nums = _NUMBER_RE.findall(text)
        if nums:
            return str(nums[-1])
    return None


_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
# Only a plain number has thousands separators: ``1,234`` is 1234, ``(1,234)`` is a pair.
_THOUSANDS_RE = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_TRAILING_ZEROS_RE = re.compile(r"^([-+]?\d+)\.0+$")


@lru_cache(maxsize=65536)
def normalize_answer(s: str) -> str:
    """Cheap canonical spelling: no spaces/``$``/``\\left``/``\\text``, ``dfrac`` -> ``frac``,
    ``1,000`` -> ``1000`` (a plain number only: ``(1,000)`` keeps its comma), ``18.00`` ->
    ``18``, no trailing period or degree/percent signs."""
    t = s.strip()
    t = _TEXT_RE.sub(r"\1", t)
    for old, new in (
        ("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\ ", ""),
        ("dfrac", "frac"), ("tfrac", "frac"), ("^\\circ", ""), ("^{\\circ}", ""),
        ("\\%", ""), ("%", ""), ("\\$", ""), ("$", ""), ("\\displaystyle", ""), ("{,}", ","),
    ):
        t = t.replace(old, new)
    if _THOUSANDS_RE.fullmatch(t.strip().rstrip(".").strip()):  # before spaces go: "1, 234"
        t = t.replace(",", "")
    t = "".join(t.split())
    t = t.rstrip(".")
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
