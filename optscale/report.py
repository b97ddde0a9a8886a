"""Text tables and PNG plots for replay results (paper Table 1, Fig. 2, Fig. 3 styles)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optscale.pools import Pool
from optscale.replay import POLICY_LABELS, ReplayResult


def _label(policy: str) -> str:
    return POLICY_LABELS.get(policy, policy)


def table1(result: ReplayResult) -> str:
    """Rows = policies, columns = N_max; each cell = accuracy %, served tokens per question
    (with the samples cut at the stop: the headline) and, beside it, the paper's count
    (completed samples only)."""
    ns = result.n_values
    w0 = max(len(_label(p)) for p in result.policies) + 2
    head1 = " " * w0 + "".join(f"| {'N=' + str(n):^22}" for n in ns)
    head2 = f"{'policy':<{w0}}" + "".join(f"| {'acc%':>6} {'served':>7} {'paper':>6} " for _ in ns)
    lines = [
        f"{result.pool}: {result.cells[next(iter(result.cells))].n_questions} questions x "
        f"{result.config.orders} orders (alpha={result.config.alpha}, "
        f"s_min={result.config.s_min}); tokens per question: served = completed + cut at the "
        f"stop (finish model: {result.config.finish}), paper = completed only",
        head1,
        head2,
        "-" * len(head2),
    ]
    for p in result.policies:
        row = f"{_label(p):<{w0}}"
        for n in ns:
            c = result.cells.get((p, n))
            if c is None or not c.n_episodes:
                row += f"| {'-':>6} {'-':>7} {'-':>6} "
            else:
                row += (
                    f"| {100 * c.accuracy:6.1f} {c.served_tokens_per_question:7.0f} "
                    f"{c.tokens_per_question:6.0f} "
                )
        lines.append(row)
    return "\n".join(lines)


def curve_table(result: ReplayResult) -> str:
    """Each policy against the BoN curve (BoN(k) for every k <= N_max, same orders): accuracy
    points gained at equal served tokens, and served tokens / the best fixed k's tokens at
    equal accuracy (the k in brackets; '>curve': no k <= N_max is that accurate)."""
    ns = result.n_values
    w0 = max(len(_label(p)) for p in result.policies) + 2
    lines = [
        "against the BoN curve (every fixed k <= N_max on the same orders): accuracy gain in "
        "points at equal tokens; tokens / fixed-k tokens at equal accuracy [k]",
        f"{'policy':<{w0}}" + "".join(f"| {'N=' + str(n):^22}" for n in ns),
    ]
    for p in result.policies:
        row = f"{_label(p):<{w0}}"
        for n in ns:
            st = result.standing(p, n)
            if st is None:
                row += f"| {'-':^22}"
                continue
            ratio = ">curve" if st.ratio is None else f"{st.ratio:.2f}x"
            k = "" if st.curve_k is None else f"[{st.curve_k:.1f}]"
            row += f"| {100 * st.gain:+6.1f} {ratio:>7} {k:>6} "
        lines.append(row)
    curve = result.curve
    if curve is not None:
        pts = ", ".join(f"k={k}: {100 * a:.1f}% {t:.0f}" for k, t, a in curve.points())
        lines.append(f"BoN(k): {pts}")
    single = [
        f"{_label(p)} N={n}"
        for (p, n), c in result.cells.items()
        if p not in ("bon", "sc", "wsc") and n > 1 and c.n_episodes and c.single_wave_fraction == 1
    ]
    if single:
        lines.append(
            "never waited past its first batch (a smaller fixed N under another name): "
            + ", ".join(single)
        )
    return "\n".join(lines)


def samples_table(result: ReplayResult) -> str:
    """Mean samples used per question, and the token ratio vs BoN at the same N_max."""
    ns = result.n_values
    w0 = max(len(_label(p)) for p in result.policies) + 2
    lines = [
        "mean samples used per question (tokens / BoN tokens at the same N_max)",
        f"{'policy':<{w0}}" + "".join(f"| {'N=' + str(n):^15}" for n in ns),
    ]
    for p in result.policies:
        row = f"{_label(p):<{w0}}"
        for n in ns:
            c = result.cells.get((p, n))
            b = result.cells.get(("bon", n))
            if c is None or not c.n_episodes:
                row += f"| {'-':^15}"
                continue
            ratio = (
                f"{c.tokens_per_question / b.tokens_per_question:.2f}"
                if b is not None and b.tokens_per_question > 0
                else "-"
            )
            row += f"| {c.samples_per_question:5.2f} ({ratio:>5}) "
        lines.append(row)
    return "\n".join(lines)


def n_star_histogram(result: ReplayResult, policy: str = "optscale0") -> str:
    """Text histogram of the per-question final N* (mean over orders) at the largest N_max."""
    n = max(result.n_values)
    c = result.cells.get((policy, n))
    if c is None or not c.n_star_by_question:
        return f"(no N* recorded for {policy} at N_max={n})"
    vals = list(c.n_star_by_question.values())
    edges = [b for b in (1, 2, 4, 8, 16, 32, 64, 128) if b <= n] + [n]
    edges = sorted(set(edges))
    buckets: list[tuple[str, int]] = []
    lo = 0.0
    for e in edges:
        cnt = sum(1 for v in vals if lo < v <= e)
        buckets.append((f"({lo:g}, {e}]", cnt))
        lo = float(e)
    buckets.append((f"> {n} (capped at N_max)", sum(1 for v in vals if v > n)))
    total = len(vals)
    lines = [f"N* per question ({_label(policy)}, N_max={n}, mean over orders):"]
    for lab, cnt in buckets:
        bar = "#" * round(40 * cnt / total) if total else ""
        lines.append(f"  {lab:>24} {cnt:5d} {bar}")
    return "\n".join(lines)


def full_report(result: ReplayResult) -> str:
    parts = [
        table1(result),
        "",
        curve_table(result),
        "",
        samples_table(result),
        "",
        n_star_histogram(result),
    ]
    inflight = [
        (p, result.cells[(p, max(result.n_values))].inflight_per_question)
        for p in result.policies
        if (p, max(result.n_values)) in result.cells
    ]
    waste = ", ".join(f"{p} {v:.0f}" for p, v in inflight if v > 0)
    if waste:
        parts += [
            "",
            f"cancelled in-flight samples at N_max={max(result.n_values)} (their full length, "
            f"an upper bound; the served tokens above count what they had decoded): {waste}",
        ]
    if result.notes:
        parts += ["", *[f"note: {n}" for n in result.notes]]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# plots


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_tokens(result: ReplayResult, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5))
    for p in result.policies:
        xs, ys = [], []
        for n in result.n_values:
            c = result.cells.get((p, n))
            if c is not None and c.n_episodes:
                xs.append(c.tokens_per_question)
                ys.append(100 * c.accuracy)
        style = "k--" if p == "oracle" else "-o"
        ax.plot(xs, ys, style, label=_label(p), markersize=4)
    ax.set_xscale("log")
    ax.set_xlabel("completion tokens per question (log)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{result.pool}: accuracy vs tokens (N_max = {list(result.n_values)})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_n_star_hist(result: ReplayResult, path: Path, policy: str = "optscale0") -> Path:
    plt = _plt()
    n = max(result.n_values)
    c = result.cells.get((policy, n))
    vals = list(c.n_star_by_question.values()) if c is not None else []
    capped = [min(v, n + 1) if math.isfinite(v) else n + 1 for v in vals]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(capped, bins=np.arange(0.5, n + 2.5, 1.0 if n <= 16 else max(1, n // 16)))
    ax.set_xlabel(f"N* (mean over orders; {n + 1} = beyond N_max)")
    ax.set_ylabel("questions")
    ax.set_title(f"{result.pool}: N* per question, {_label(policy)}, N_max={n}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fits(pool: Pool, path: Path, k: int = 6) -> Path:
    """Fitted truncated normal (MLE on all samples) vs the empirical scores, k questions."""
    from scipy.stats import truncnorm

    from optscale.stats import SuffStats, fit_mle

    plt = _plt()
    qs = sorted(pool.questions, key=lambda q: -len(q.samples))[: max(1, k)]
    cols = min(3, len(qs))
    rows = math.ceil(len(qs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    x = np.linspace(0, 1, 400)
    for ax, q in zip(axes.flat, qs, strict=False):
        scores = [s.score for s in q.samples]
        ax.hist(scores, bins=20, range=(0, 1), density=True, alpha=0.5, label="scores")
        stats = SuffStats.of(scores)
        fit = fit_mle(stats)
        mu, sigma = float(fit.mu), float(fit.sigma)
        if sigma > 0 and math.isfinite(mu):
            a, b = (0 - mu) / sigma, (1 - mu) / sigma
            ax.plot(x, truncnorm.pdf(x, a, b, loc=mu, scale=sigma), "r-",
                    label=f"fit mu={mu:.3f} sd={sigma:.3f}")
        ax.set_title(f"{q.question_id[:30]} (n={len(scores)})", fontsize=8)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(qs):]:
        ax.axis("off")
    fig.suptitle(f"{pool.name}: fitted truncated normal vs empirical scores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(result: ReplayResult, pool: Pool, out_dir: str | Path) -> Sequence[Path]:
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in result.pool)
    return [
        plot_accuracy_vs_tokens(result, d / f"{stem}_acc_vs_tokens.png"),
        plot_n_star_hist(result, d / f"{stem}_nstar_hist.png"),
        plot_fits(pool, d / f"{stem}_fits.png"),
    ]
