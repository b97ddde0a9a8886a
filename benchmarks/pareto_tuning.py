"""``benchmarks/pareto.py``: every tunable parameter chosen on the dev half."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


from pareto_allocation import ALLOCATION_ROWS, tune_allocation
from pareto_common import Options, Tuned, label

from optscale.calibrate import CALIBRATABLE, calibrate
from optscale.pools import Pool
from optscale.replay import ReplayConfig, replay

# ---------------------------------------------------------------------------------------------
# dev-half tuning


def _dev_choice(
    dev: Pool,
    policy: str,
    n: int,
    name: str,
    values: Sequence[Any],
    base: dict[str, Any],
    o: Options,
    priors: dict[str, tuple[float, float]] | None = None,
) -> Tuned:
    """The value of ``name`` with the largest gain over the dev BoN curve (ties: fewer tokens)."""
    best: tuple[float, float, Any] | None = None
    for v in values:
        cfg = ReplayConfig(
            policies=(policy,),
            n_max=(n,),
            orders=o.cal_orders,
            seed=o.seed,
            alpha=base["alpha"],
            s_min=base["s_min"],
            policy_kwargs={name: v},
            priors=priors,
        )
        r = replay(dev, cfg)
        st = r.standing(policy, n)
        assert st is not None
        key = (st.gain, -st.tokens, v)
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    return Tuned(
        policy, {**base, name: best[2]}, f"{name}={best[2]} (dev gain {100 * best[0]:+.1f} pts)"
    )


def _calibrated(cal: Any) -> tuple[dict[str, Any], str]:
    """make_policy options and a description of a :class:`optscale.calibrate.Calibration`."""
    kw: dict[str, Any] = cal.policy_kwargs()
    setting = getattr(cal, "setting", "") or f"alpha={cal.alpha}, s_min={cal.s_min}"
    if "p_correct" in kw:
        pc = kw["p_correct"]
        setting += f", P(correct|s) = sigmoid({pc.a:.2f} + {pc.b:.2f} s)"
    return kw, setting


def tune(
    dev: Pool,
    n: int,
    policies: Sequence[str],
    o: Options,
    priors: dict[str, tuple[float, float]] | None = None,
) -> tuple[list[Tuned], list[str]]:
    notes: list[str] = []
    base: dict[str, Any] = {}
    cal: Any = None
    if any(p not in ALLOCATION_ROWS and p not in ("bon", "sc", "wsc", "oracle") for p in policies):
        cal = calibrate(
            dev, n_max=n, orders=o.cal_orders, seed=o.seed, alphas=o.alphas, s_mins=o.s_mins
        )
        base = {"alpha": cal.alpha, "s_min": cal.s_min}
        notes.append(f"OptScale^0 dev calibration: {cal.verdict}")
    out: list[Tuned] = []
    rows = [p for p in policies if p in ALLOCATION_ROWS]
    alloc = {
        r: Tuned(r, kw, note)
        for r, kw, note in tune_allocation(
            dev,
            n,
            rows,
            cal_orders=o.cal_orders,
            seed=o.seed,
            price_grid=o.alloc_prices,
            budget_price_grid=o.alloc_budget_prices,
            give_up_grid=o.alloc_give_ups,
        )
    }
    for p in policies:
        if p == "optscale0":
            out.append(Tuned(p, dict(base), f"alpha={cal.alpha} s_min={cal.s_min}"))
        elif p == "optscalet":
            out.append(Tuned(p, dict(base), f"alpha={cal.alpha} s_min={cal.s_min} (OptScale^0's)"))
        elif p in CALIBRATABLE:
            c = calibrate(dev, policy=p, n_max=n, orders=o.cal_orders, seed=o.seed, priors=priors)
            kw, setting = _calibrated(c)
            notes.append(f"{label(p)} dev calibration: {c.verdict}")
            out.append(Tuned(p, kw, setting + " (calibrate)"))
        elif p == "asc":
            out.append(_dev_choice(dev, p, n, "threshold", o.asc_grid, base, o))
        elif p == "esc":
            windows = [w for w in o.esc_grid if w <= n] or [n]
            out.append(_dev_choice(dev, p, n, "window", windows, base, o))
        elif p == "dsc":
            windows = [w for w in o.esc_grid if w <= n] or [n]
            out.append(_dev_choice(dev, p, n, "dsc_window", windows, base, o, priors))
        elif p in alloc:
            out.append(alloc[p])
        elif p in ("bon", "sc", "wsc", "oracle"):
            out.append(Tuned(p, {}, ""))
        else:
            out.append(Tuned(p, dict(base), "untuned (defaults, OptScale^0's alpha/s_min)"))
    return out, notes
