"""Tuned stopping parameters with their provenance.

A params file (written by ``optscale calibrate``) says what it was tuned on: the pool (name and
a content hash), the split and the question ids, the policy and N_max, the finish model. Users
of a params file (``optscale replay|solve|eval --params``) must not evaluate on a question it
was tuned on — :func:`check_overlap` refuses unless ``allow_overlap`` is given, and then the
output says so — and must run it at the N_max it was tuned for (:func:`check_n_max`).

A params file without provenance (written by an earlier version) is refused: its numbers
cannot be told apart from numbers tuned on the test questions.

The dev BoN curve a params file records (``dev.bon_curve``: k, tokens per question, accuracy
for every k <= N_max, and the tuned policy's ``dev.accuracy``) gives ``k_eq``, the fixed best-of-k
of the policy's dev accuracy (fractional, :meth:`optscale.bon_curve.BonCurve.tokens_for`; when
the policy beats every k on dev, the smallest k of the curve's best accuracy, which claims less
saving, and :attr:`Params.bon_curve_beyond` says so). It travels with the tuned options as
:data:`BON_CURVE_K_EQ` — no policy reads it (:func:`make_policy_options` drops it); the
controller counts each such question's tokens per scored sample x k_eq into its BoN-curve
estimate. A params file without the curve (an older one) loads with ``bon_curve_k_eq`` None.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optscale.errors import DataError, InvalidArgumentError
from optscale.pool_model import Pool

__all__ = [
    "BON_CURVE_K_EQ",
    "Params",
    "bon_curve_k_eq",
    "check_n_max",
    "check_overlap",
    "make_policy_options",
    "pool_sha256",
    "read_params",
]


# the option a question carries its params' equal-accuracy fixed k in (read by the controller's
# metrics, by no policy)
BON_CURVE_K_EQ = "bon_curve_k_eq"


def make_policy_options(
    alpha: float, s_min: float, policy_params: Iterable[tuple[str, Any]]
) -> dict[str, Any]:
    """Options for :func:`optscale.policies.make_policy` from tuned values in their JSON form
    (``p_correct`` as ``{"a": .., "b": ..}`` becomes a
    :class:`~optscale.bayes.CorrectnessModel`); :data:`BON_CURVE_K_EQ` is checked and left
    out (no policy reads it)."""
    kw: dict[str, Any] = {"alpha": alpha, "s_min": s_min}
    for k, v in policy_params:
        if k == BON_CURVE_K_EQ:
            bon_curve_k_eq(v)
        elif k == "p_correct":
            from optscale.bayes import CorrectnessModel

            kw[k] = CorrectnessModel(float(v["a"]), float(v["b"]))
        else:
            kw[k] = v
    return kw


def pool_sha256(pool: Pool) -> str:
    """A hash of what a pool holds (question ids, sample ids, scores, tokens, correctness),
    independent of file format, order of lines and compression."""
    h = hashlib.sha256()
    for q in sorted(pool.questions, key=lambda q: q.question_id):
        h.update(f"q\0{q.question_id}\n".encode())
        for s in sorted(q.samples, key=lambda s: s.sample_id):
            h.update(f"{s.sample_id}\0{s.score!r}\0{s.tokens}\0{int(s.correct)}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Params:
    path: str
    policy: str
    n_max: int
    alpha: float
    s_min: float
    pool: str
    pool_sha256: str
    split: str
    question_ids: frozenset[str]
    policy_params: tuple[tuple[str, Any], ...] = ()  # further tuned options (JSON form)
    # the dev BoN curve ((k, tokens per question, accuracy), ...), the policy's dev accuracy,
    # the fixed k of equal accuracy (also in policy_params as BON_CURVE_K_EQ) and whether the
    # policy was beyond the curve (k_eq is then the curve's best k): empty / None in old files
    bon_curve: tuple[tuple[int, float, float], ...] = ()
    dev_accuracy: float | None = None
    bon_curve_k_eq: float | None = None
    bon_curve_beyond: bool = False

    def policy_kwargs(self) -> dict[str, Any]:
        """Options for :func:`optscale.policies.make_policy` (alpha / s_min included)."""
        return make_policy_options(self.alpha, self.s_min, self.policy_params)


def _num(data: dict[str, Any], key: str, where: str) -> float:
    v = data.get(key)
    if not isinstance(v, int | float) or isinstance(v, bool):
        raise DataError(where, f"missing or non-numeric {key!r}")
    return float(v)


def read_params(path: str | Path) -> Params:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(str(p), f"cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}:{exc.lineno}", f"not valid JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise DataError(str(p), "a params file is a JSON object")
    alpha, s_min = _num(data, "alpha", str(p)), _num(data, "s_min", str(p))
    extra = data.get("policy_params") or {}
    if not isinstance(extra, dict):
        raise DataError(str(p), "policy_params must be a JSON object")
    tuned = data.get("tuned_on")
    if not isinstance(tuned, dict) or not isinstance(tuned.get("question_ids"), list):
        raise DataError(
            str(p),
            "no provenance (tuned_on.question_ids): re-run `optscale calibrate` on a dev split",
        )
    n_max = _num(data, "n_max", str(p))
    if n_max != int(n_max) or n_max < 1:
        raise DataError(str(p), f"n_max {n_max} is not an integer >= 1")
    curve, accuracy = _dev_curve(data.get("dev"), int(n_max), str(p))
    k_eq, beyond = _k_eq(curve, accuracy) if accuracy is not None else (None, False)
    if k_eq is not None and k_eq <= 0:  # a dev accuracy of 0: no fixed k to compare with
        k_eq, beyond = None, False
    if k_eq is not None:
        extra = {**extra, BON_CURVE_K_EQ: k_eq}
    return Params(
        path=str(p),
        policy=str(data.get("policy", "optscale0")),
        n_max=int(n_max),
        alpha=alpha,
        s_min=s_min,
        pool=str(tuned.get("pool", "")),
        pool_sha256=str(tuned.get("pool_sha256", "")),
        split=str(tuned.get("split", "")),
        question_ids=frozenset(str(q) for q in tuned["question_ids"]),
        policy_params=tuple(sorted(extra.items())),
        bon_curve=curve,
        dev_accuracy=accuracy,
        bon_curve_k_eq=k_eq,
        bon_curve_beyond=beyond,
    )


def bon_curve_k_eq(value: Any) -> float:
    """``value`` as an equal-accuracy fixed k: a finite number > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidArgumentError(BON_CURVE_K_EQ, value, "must be a finite number > 0")
    return float(value)


def _dev_curve(
    dev: Any, n_max: int, where: str
) -> tuple[tuple[tuple[int, float, float], ...], float | None]:
    """The recorded dev BoN curve and the policy's dev accuracy; ``((), None)`` when the file
    has none (written before the curve was recorded)."""
    if dev is None or (isinstance(dev, dict) and "bon_curve" not in dev):
        return (), None
    if not isinstance(dev, dict) or not isinstance(dev["bon_curve"], list):
        raise DataError(where, "dev.bon_curve must be a list of {k, tokens_per_question, accuracy}")
    points = []
    for i, row in enumerate(dev["bon_curve"]):
        at = f"{where}: dev.bon_curve[{i}]"
        if not isinstance(row, dict):
            raise DataError(at, "not a JSON object")
        k, tokens, acc = (_num(row, f, at) for f in ("k", "tokens_per_question", "accuracy"))
        if k != i + 1 or tokens < 0 or not 0.0 <= acc <= 1.0:
            raise DataError(at, f"expected k={i + 1}, tokens >= 0, accuracy in [0, 1]")
        points.append((i + 1, tokens, acc))
    if len(points) != n_max:
        raise DataError(where, f"dev.bon_curve has {len(points)} points for N_max {n_max}")
    accuracy = _num(dev, "accuracy", f"{where}: dev")
    if not 0.0 <= accuracy <= 1.0:
        raise DataError(f"{where}: dev", f"accuracy {accuracy} is not in [0, 1]")
    return tuple(points), accuracy


def _k_eq(curve: tuple[tuple[int, float, float], ...], accuracy: float) -> tuple[float, bool]:
    """The (fractional) fixed k at which the curve first reaches ``accuracy``, and whether the
    accuracy is beyond every k (then: the smallest k of the curve's best accuracy)."""
    from optscale.bon_curve import BonCurve

    c = BonCurve(k_max=len(curve), episodes=1)
    c.tokens = [t for _, t, _ in curve]
    c.correct = [a for _, _, a in curve]
    reach = c.tokens_for(accuracy)
    beyond = reach is None
    if reach is None:
        reach = c.tokens_for(max(c.correct))
    assert reach is not None  # the curve reaches its own best
    return reach[1], beyond


def check_overlap(
    params: Params, evaluated: Iterable[str], *, allow_overlap: bool = False
) -> str | None:
    """Refuse params tuned on any evaluated question; with ``allow_overlap`` return the warning
    to print instead (``None``: no overlap)."""
    both = sorted(params.question_ids.intersection(evaluated))
    if not both:
        return None
    shown = ", ".join(both[:5]) + (f" and {len(both) - 5} more" if len(both) > 5 else "")
    msg = (
        f"{params.path} was tuned on {len(both)} of the questions evaluated here ({shown}); "
        "its numbers on them are not a fair test"
    )
    if not allow_overlap:
        raise InvalidArgumentError("params", params.path, msg + " (--allow-overlap overrides)")
    return "WARNING: " + msg + " (--allow-overlap given)"


def check_n_max(params: Params, n_max: int) -> None:
    if n_max != params.n_max:
        raise InvalidArgumentError(
            "n_max", n_max, f"{params.path} was tuned at N_max {params.n_max}; run it there"
        )
