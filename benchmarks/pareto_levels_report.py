"""``benchmarks/pareto_levels.py``: the operating points against the test half's BoN curve — a
table per pool x level x policy, and a verdict per issue-18 target.

Per level, the **reference** on the test half is the best fixed N within BoN@k's tokens (k the
level's k; the most accurate BoN(j), j <= k, the fewest tokens on ties); for the ``BoN@64``
level it is BoN@64 itself. A policy **meets** a low / middle / high level when its test
accuracy is at least the reference's (point estimate; the difference is paired per question)
and its served tokens are at most 0.5x the fewest with which the test BoN curve reaches its
accuracy (the ratio at equal accuracy of :func:`pareto_standings.standings`; beyond the curve:
against its most accurate k) — the issue's "equal-or-better accuracy than the best fixed N
with <= 0.5x its tokens" at that operating point. It meets the ``BoN@64`` level when its
accuracy is at least BoN@64's with at most 0.25x BoN@64's served tokens. Target 1 holds on a
pool when each of the low / middle / high levels is met by some policy; target 2 (semi-synthetic
pools) when the BoN@64 level is. Also printed: the token fraction of the reference and the gain
at equal tokens; all with 95% percentile bootstrap intervals over test questions (orders
averaged within a question first).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pareto_common import TARGET_RATIO, TARGET_SEMI_FRACTION, CellData, Options, label
from pareto_levels import LEVEL_NAMES, Choice, Level, LevelsResult, setting
from pareto_standings import Interval, bon_arrays, standings

from optscale.pools import Pool, split_pool


def reference_k(test_acc_k: np.ndarray, level: Level) -> int:
    """The level's reference fixed N on test: BoN@k itself (exact) or the most accurate
    BoN(j), j <= k (the smallest j on ties)."""
    if level.exact:
        return level.k
    return int(np.argmax(test_acc_k[: level.k])) + 1


def versus(
    cell: CellData, ref_acc: np.ndarray, ref_tok: np.ndarray, w: np.ndarray
) -> tuple[Interval, Interval]:
    """(accuracy minus the reference's, paired per question; served tokens / the reference's),
    each with its bootstrap interval (``w``: resample weights, one row per resample)."""
    d = cell.acc - ref_acc
    bd = w @ d
    frac = (w @ cell.served) / (w @ ref_tok)
    point = float(cell.served.mean()) / float(ref_tok.mean())
    lo, hi = np.percentile(bd, [2.5, 97.5])
    flo, fhi = np.percentile(frac, [2.5, 97.5])
    return Interval(float(d.mean()), float(lo), float(hi)), Interval(point, float(flo), float(fhi))


def meets(diff: Interval, tokens: Interval, limit: float) -> tuple[bool, str]:
    """Met: accuracy at least the reference's (``diff`` >= 0) with ``tokens`` (the ratio at
    equal accuracy, or the fraction of BoN@64's tokens) at most ``limit`` (point estimates;
    whether the intervals stay on the right side is said too)."""
    ok = diff.point >= 0 and tokens.point <= limit
    if not ok:
        why = []
        if diff.point < 0:
            why.append("less accurate" + (" (within noise)" if diff.hi >= 0 else ""))
        if tokens.point > limit:
            why.append(f"over {limit}x tokens")
        return False, "missed (" + ", ".join(why) + ")"
    robust = diff.lo >= 0 and tokens.hi <= limit
    return True, "MET" + ("" if robust else " (within noise: a CI crosses)")


def report_levels(pool: Pool, r: LevelsResult, o: Options, boot: int) -> dict[str, Any]:
    """Print the pool's operating-point table and verdicts; return them as a JSON record."""
    _, test = split_pool(pool)
    bon_acc, bon_tok = bon_arrays(test, r.k_max, o)
    acc_k, tok_k = bon_acc.mean(0), bon_tok.mean(0)
    cells = [ch.cell for ch in r.choices if ch.cell is not None]
    if len(cells) != len(r.choices):
        raise ValueError("every choice needs its test cell")
    sts = standings(cells, bon_acc, bon_tok, top_n=None, boot=boot, seed=o.seed)
    nq = bon_acc.shape[0]
    rng = np.random.default_rng(o.seed + 1)
    w = np.stack([np.bincount(rng.integers(0, nq, nq), minlength=nq) for _ in range(boot)]) / nq
    levels = {lv.name: lv for lv in r.levels}
    refs = {lv.name: reference_k(acc_k, lv) for lv in r.levels}
    print(
        f"\n== operating points, {pool.name} ({r.pool}): levels on the dev half "
        f"({o.cal_orders} orders), settings chosen on dev ({sum(r.candidates.values())} "
        f"replayed: {', '.join(f'{label(p)} {n}' for p, n in r.candidates.items())}), "
        f"test half {len(test.questions)} questions x {o.orders} orders ({r.seconds:.0f} s)"
    )
    for lv in r.levels:
        k = refs[lv.name]
        what = f"BoN@{lv.k}" if lv.exact else f"best fixed N within BoN@{lv.k}'s tokens"
        limit = TARGET_SEMI_FRACTION if lv.exact else TARGET_RATIO
        # the reference is the whole curve's most accurate point (or BoN@64 itself): then the
        # target asks for < one sample per question when `limit` of its tokens is under BoN@1's
        top = lv.exact or k == int(np.argmax(acc_k)) + 1
        floor = (
            f"; {limit}x that is less than one sample ({tok_k[0]:.0f} tokens) and BoN@1 is "
            "less accurate: no policy that samples at least once can meet it"
            if top and limit * tok_k[k - 1] < tok_k[0] and acc_k[0] < acc_k[k - 1]
            else ""
        )
        print(
            f"   {lv.name:7s} = {what}: dev {100 * lv.dev_acc:.1f}%; test reference BoN@{k} "
            f"{100 * acc_k[k - 1]:.1f}% at {tok_k[k - 1]:.0f} tokens{floor}"
        )
    lw = max(12, *(len(label(ch.policy)) for ch in r.choices))
    print(
        f"   {'level':7s} {'policy':{lw}s} {'dev-chosen setting':34s} {'dev acc/tok':>13s} "
        f"{'test acc % [CI]':>19s} {'served':>7s}  {'vs reference: acc pts [CI]':>26s} "
        f"{'tokens x [CI]':>19s}  {'ratio@eq.acc [CI]':>19s} {'gain@eq.tok [CI]':>20s}  verdict"
    )
    rows: list[dict[str, Any]] = []
    met: dict[str, list[str]] = {name: [] for name in levels}
    for ch, st in zip(r.choices, sts, strict=True):
        lv, k = levels[ch.level], refs[ch.level]
        diff, frac = versus(st.cell, bon_acc[:, k - 1], bon_tok[:, k - 1], w)
        # target 2: the fraction of BoN@64's tokens; target 1: the ratio at equal accuracy
        if lv.exact:
            ok, verdict = meets(diff, frac, TARGET_SEMI_FRACTION)
        else:
            ok, verdict = meets(diff, st.ratio, TARGET_RATIO)
        if ok:
            met[ch.level].append(ch.policy)
        dev = f"{100 * ch.dev_acc:.1f}/{ch.dev_served:.0f}" + ("" if ch.reached else "!")
        beyond = "+" if st.beyond else " "
        print(
            f"   {ch.level:7s} {label(ch.policy):{lw}s} {setting(ch):34s} {dev:>13s} "
            f"{st.acc.fmt(100, 1):>19s} {st.served:7.0f}  {diff.fmt(100, 1, True):>26s} "
            f"{frac.fmt(1, 2):>19s}  {st.ratio.fmt(1, 2):>19s}{beyond}"
            f"{st.gain.fmt(100, 1, True):>20s}  {verdict}"
        )
        rows.append(_row(ch, st, diff, frac, k, ok))
    print(
        "   (dev acc/tok '!': the level was not reached on dev, the most accurate setting is "
        "shown; ratio '+': beyond the test curve, vs its most accurate k)"
    )
    t1_levels = [n for n in LEVEL_NAMES if n in met]
    t1 = all(met[n] for n in t1_levels)
    verdicts = {
        "target1": t1,
        "target1_by_level": {n: met[n] for n in t1_levels},
    }
    text = "; ".join(
        f"{n}: " + (", ".join(label(p) for p in met[n]) if met[n] else "nobody") for n in t1_levels
    )
    print(
        f"   target 1 (every level: >= the reference's accuracy at <= {TARGET_RATIO}x the "
        f"curve's tokens at equal accuracy): {'MET' if t1 else 'MISSED'} — {text}"
    )
    exact = [lv for lv in r.levels if lv.exact]
    if exact:
        lv = exact[0]
        verdicts["target2"] = bool(met[lv.name])
        print(
            f"   target 2 (BoN@{lv.k} accuracy at <= {TARGET_SEMI_FRACTION}x its tokens): "
            + (
                "MET by " + ", ".join(label(p) for p in met[lv.name])
                if met[lv.name]
                else "MISSED by every policy"
            )
        )
    return {
        "pool": pool.name,
        "key": r.pool,
        "levels": [
            {
                "name": lv.name,
                "k": lv.k,
                "dev_accuracy": lv.dev_acc,
                "exact": lv.exact,
                "test_reference_k": refs[lv.name],
                "test_reference_accuracy": float(acc_k[refs[lv.name] - 1]),
                "test_reference_tokens": float(tok_k[refs[lv.name] - 1]),
            }
            for lv in r.levels
        ],
        "rows": rows,
        **verdicts,
    }


def _row(ch: Choice, st: Any, diff: Interval, frac: Interval, k: int, ok: bool) -> dict[str, Any]:
    return {
        "level": ch.level,
        "policy": ch.policy,
        "n_max": ch.n_max,
        "kwargs": {
            k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v  # type: ignore[arg-type]
            for k, v in ch.kwargs.items()
        },
        "dev_accuracy": ch.dev_acc,
        "dev_served_tokens": ch.dev_served,
        "reached_on_dev": ch.reached,
        "accuracy": [st.acc.point, st.acc.lo, st.acc.hi],
        "served_tokens": st.served,
        "reference_k": k,
        "acc_diff": [diff.point, diff.lo, diff.hi],
        "token_fraction": [frac.point, frac.lo, frac.hi],
        "ratio": [st.ratio.point, st.ratio.lo, st.ratio.hi],
        "gain": [st.gain.point, st.gain.lo, st.gain.hi],
        "beyond_curve": st.beyond,
        "met": ok,
    }


def summary_line(doc: dict[str, Any]) -> str:
    """One line of the closing '== targets' block."""
    by = doc["target1_by_level"]
    parts = [
        f"{n}: " + (", ".join(label(p) for p in ps) if ps else "nobody") for n, ps in by.items()
    ]
    line = f"target 1 {'met' if doc['target1'] else 'missed'} ({'; '.join(parts)})"
    if "target2" in doc:
        line += f"; target 2 {'met' if doc['target2'] else 'missed'}"
    return line


__all__: Sequence[str] = ("meets", "reference_k", "report_levels", "summary_line", "versus")
