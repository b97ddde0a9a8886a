"""Answer extraction and grading."""

from __future__ import annotations

import threading

import pytest

from optscale.grading import extract_answer, is_correct, normalize_answer


@pytest.mark.parametrize(
    ("text", "dataset", "want"),
    [
        ("so \\boxed{3} then \\boxed{\\frac{1}{2}}.", "math", "\\frac{1}{2}"),
        ("\\boxed{\\left( 3, \\pi \\right)}", "math", "\\left( 3, \\pi \\right)"),
        ("nested \\boxed{x^{2}+{1}} end", "math", "x^{2}+{1}"),
        ("\\fbox{7}", "math", "7"),
        ("unbalanced \\boxed{3", "math", None),
        ("She makes 9 * 2 = 18.\n#### 18", "gsm8k", "18"),
        ("#### 1,000\n", "gsm8k", "1,000"),
        ("The answer is 42.", "gsm8k", "42"),
        ("first 3 apples then 5 pears", "gsm8k", "5"),
        ("first 3 apples then 5 pears", "math", None),
        ("", "math", None),
        ("\\boxed{}", "math", None),
        # a number, a comma, then prose: the number is the answer
        ("The answer is 3, because 1+2=3.", "math", "3"),
        ("Final answer: 3, because it is.", "math", "3"),
        ("The answer is $12$, since 4*3 = 12.", "math", "12"),
        ("\\boxed{3, because}", "math", "3"),
        ("#### 3, because reasons", "gsm8k", "3"),
        ("The answer is 1,234, so she is done.", "gsm8k", "1,234"),
        ("she has 7, because 2 and 5 are gone, so 5, or 4", "gsm8k", "4"),
        ("so she pays 5, because it is cheap", "gsm8k", "5"),
        # ... but a list of values stays a list
        ("The answer is 1, 2, 3.", "math", "1, 2, 3"),
        ("The answer is 2, 3 and 5.", "math", "2, 3 and 5"),
        ("\\boxed{(3, x)}", "math", "(3, x)"),
    ],
)
def test_extract_answer(text: str, dataset: str, want: str | None) -> None:
    assert extract_answer(text, dataset) == want


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("1,000", "1000"),
        ("18.00", "18"),
        ("\\text{(B)}", "(B)"),
        ("$5$", "5"),
        ("90^\\circ", "90"),
        ("+3", "3"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("1{,}008{,}016", "1008016"),
        ("\\$23{,}000", "23000"),
        ("-1,234.5", "-1234.5"),
    ],
)
def test_normalize_answer_equates_spellings(a: str, b: str) -> None:
    assert normalize_answer(a) == normalize_answer(b)


def test_normalize_answer_keeps_different_values_apart() -> None:
    assert normalize_answer("1,2") != normalize_answer("12")
    assert normalize_answer("-3") != normalize_answer("3")
    assert normalize_answer("1, 234") != normalize_answer("1234")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("(1,234)", "(1234)"),
        ("(4,112)", "(4112)"),
        ("(2,12) \\cup (12,102)", "(2,12) \\cup (12102)"),
    ],
)
def test_thousands_separators_only_in_a_plain_number(a: str, b: str) -> None:
    # a tuple, interval or set is not a thousands-separated number
    assert normalize_answer(a) != normalize_answer(b)
    assert not is_correct(a, b) and not is_correct(b, a)
    assert is_correct("1,234", "1234") and is_correct("1234", "1,234")


@pytest.mark.parametrize(
    ("pred", "ref", "want"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("\\frac{2}{4}", "\\frac12", True),
        ("2\\sqrt{2}", "\\sqrt{8}", True),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)", True),
        ("3", "4", False),
        (None, "4", False),
        ("", "4", False),
        ("x+1", "1+x", True),
    ],
)
def test_is_correct(pred: str | None, ref: str, want: bool) -> None:
    assert is_correct(pred, ref) is want


def test_is_correct_works_off_the_main_thread() -> None:
    out: list[bool] = []
    t = threading.Thread(target=lambda: out.append(is_correct("\\sqrt{18}", "3\\sqrt{2}")))
    t.start()
    t.join(60)
    assert out == [True]
