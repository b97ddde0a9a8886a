"""``benchmarks/pareto.py``: the BoN curve of the test half, every cell's standing against it
with bootstrap intervals over test questions, and the issue-18 targets."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


from pareto_common import NOT_A_POLICY, TARGET_RATIO, TARGET_SEMI_FRACTION, CellData, Options

from optscale.bon_curve import BonCurve, bon_prefixes
from optscale.pools import Pool
from optscale.replay import sample_orders


@dataclass(slots=True)
class Interval:
    point: float
    lo: float
    hi: float

    def fmt(self, scale: float = 1.0, digits: int = 1, sign: bool = False) -> str:
        f = f"{{:{'+' if sign else ''}.{digits}f}}"
        return (
            f"{f.format(scale * self.point)} "
            f"[{f.format(scale * self.lo)}, {f.format(scale * self.hi)}]"
        )


@dataclass(slots=True)
class Standing:
    cell: CellData
    acc: Interval
    served: float
    gain: Interval
    ratio: Interval  # effective ratio (against the most accurate BoN(k) when beyond the curve)
    beyond: bool
    curve_k: float | None
    vs_top: dict[str, Interval] = field(default_factory=dict)  # semi: vs BoN@N_max


# ---------------------------------------------------------------------------------------------
# the BoN curve and standings with bootstrap intervals


def bon_arrays(test: Pool, k_max: int, o: Options) -> tuple[np.ndarray, np.ndarray]:
    """Per question (rows) and k = 1..k_max (columns): BoN(k) accuracy and tokens, averaged
    over the same orders the episodes use."""
    acc = np.zeros((len(test.questions), k_max))
    tok = np.zeros((len(test.questions), k_max))
    for qi, q in enumerate(test.questions):
        for od in sample_orders(q, o.orders, o.seed):
            pre = bon_prefixes(od, k_max)
            acc[qi] += [c for c, _ in pre]
            tok[qi] += [t for _, t in pre]
    return acc / o.orders, tok / o.orders


def curve_of(acc_k: np.ndarray, tok_k: np.ndarray) -> BonCurve:
    c = BonCurve(len(acc_k))
    c.episodes = 1
    c.correct = [float(x) for x in acc_k]
    c.tokens = [float(x) for x in tok_k]
    return c


def effective(
    curve: BonCurve, tokens: float, acc: float
) -> tuple[float, float, bool, float | None]:
    """(gain, ratio, beyond the curve, equal k); beyond: ratio vs the most accurate BoN(k)."""
    st = curve.standing(tokens, acc)
    if st.ratio is not None:
        return st.gain, st.ratio, False, st.curve_k
    pts = curve.points()
    best = max(pts, key=lambda p: (p[2], -p[1]))
    return st.gain, tokens / best[1], True, None


def _ci(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def standings(
    cells: Sequence[CellData],
    bon_acc: np.ndarray,
    bon_tok: np.ndarray,
    *,
    top_n: int | None,
    boot: int,
    seed: int,
) -> list[Standing]:
    nq = bon_acc.shape[0]
    rng = np.random.default_rng(seed)
    w = np.stack([np.bincount(rng.integers(0, nq, nq), minlength=nq) for _ in range(boot)]) / nq
    ca, ct = w @ bon_acc, w @ bon_tok  # (boot, K)
    curves = [curve_of(ca[b], ct[b]) for b in range(boot)]
    point_curve = curve_of(bon_acc.mean(0), bon_tok.mean(0))
    out: list[Standing] = []
    for c in cells:
        acc, served = float(c.acc.mean()), float(c.served.mean())
        gain, ratio, beyond, k = effective(point_curve, served, acc)
        ba, bs = w @ c.acc, w @ c.served
        g, r = np.zeros(boot), np.zeros(boot)
        for b in range(boot):
            g[b], r[b], _, _ = effective(curves[b], float(bs[b]), float(ba[b]))
        st = Standing(
            c,
            Interval(acc, *_ci(ba)),
            served,
            Interval(gain, *_ci(g)),
            Interval(ratio, *_ci(r)),
            beyond,
            k,
        )
        if top_n is not None and c.n_max == top_n:
            d = c.acc - bon_acc[:, top_n - 1]
            frac = bs / ct[:, top_n - 1]
            st.vs_top = {
                "acc_diff": Interval(float(d.mean()), *_ci(w @ d)),
                "token_fraction": Interval(
                    served / float(bon_tok[:, top_n - 1].mean()), *_ci(frac)
                ),
            }
        out.append(st)
    return out


# ---------------------------------------------------------------------------------------------
# targets


def target1(sts: Sequence[Standing]) -> dict[str, tuple[bool, str]]:
    """Per policy: its three operating points (N_max low, middle, high) all at ratio <= 0.5
    (point estimates; whether the CI stays below 0.5 is printed too)."""
    out: dict[str, tuple[bool, str]] = {}
    by: dict[str, list[Standing]] = {}
    for s in sts:
        by.setdefault(s.cell.policy, []).append(s)
    for p, ss in by.items():
        ss = sorted(ss, key=lambda s: s.cell.n_max)
        parts, ok = [], len(ss) >= 3
        for s in ss:
            met = s.ratio.point <= TARGET_RATIO
            robust = s.ratio.hi <= TARGET_RATIO
            ok = ok and met
            parts.append(
                f"N={s.cell.n_max} ({100 * s.acc.point:.1f}%) {s.ratio.point:.2f}x "
                f"[{s.ratio.lo:.2f}, {s.ratio.hi:.2f}] "
                + ("met" + ("" if robust else " (CI crosses 0.5)") if met else "missed")
            )
        if p in NOT_A_POLICY:
            ok = False
            parts.append("(a limit, not a policy)")
        out[p] = (ok, "; ".join(parts))
    return out


def target2(sts: Sequence[Standing], top_n: int) -> dict[str, tuple[bool, str]]:
    out: dict[str, tuple[bool, str]] = {}
    for s in sts:
        if s.cell.n_max != top_n or not s.vs_top:
            continue
        d, f = s.vs_top["acc_diff"], s.vs_top["token_fraction"]
        tokens_ok = f.point <= TARGET_SEMI_FRACTION
        if d.point >= 0 and tokens_ok:
            verdict, ok = "met", True
        elif tokens_ok and d.hi >= 0:
            verdict, ok = "tokens met, accuracy below BoN@N_max but within noise", False
        else:
            verdict, ok = "missed", False
        if s.cell.policy in NOT_A_POLICY:
            ok, verdict = False, verdict + " (a limit, not a policy)"
        out[s.cell.policy] = (
            ok,
            f"acc vs BoN@{top_n} {d.fmt(100, 1, True)} pts, tokens {f.fmt(1, 3)}x: {verdict}",
        )
    return out
