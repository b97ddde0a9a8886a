"""Drawing for scripts/render_dashboard.py: Grafana's units and the panels in the dashboard's
grid (24 columns; a grid row is 30 px plus an 8 px gap, as in Grafana), dark theme, one PNG.
matplotlib (a runtime dependency already, for optscale/report.py) is imported only to draw."""

from __future__ import annotations

import io
import math
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from render_dashboard import PanelData, Series, Window

ROW_PX, GAP_PX, PAD_PX, HEADER_PX, DPI = 30, 8, 8, 64, 100
BG, PANEL, BORDER, TEXT, DIM = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9e"
GREEN, RED = "#73bf69", "#f2495c"
PALETTE = (
    "#7eb26d",
    "#eab839",
    "#6ed0e0",
    "#ef843c",
    "#e24d42",
    "#1f78c1",
    "#ba43a9",
    "#705da0",
    "#508642",
    "#cca300",
    "#447ebc",
    "#c15c17",
)


def format_value(v: float | None, unit: str | None, decimals: int | None = None) -> str:
    """A value in a Grafana unit (percentunit, percent, s, ms, reqps, ops, bytes, short/none;
    others as a suffix), with ``decimals`` or three significant digits."""
    if v is None:
        return "No data"

    def _num(x: float) -> str:
        return _digits(x) if decimals is None else f"{x:.{decimals}f}"

    if unit == "percentunit":
        return f"{_num(v * 100)}%"
    if unit == "percent":
        return f"{_num(v)}%"
    if unit in ("s", "ms"):
        secs = v / 1000 if unit == "ms" else v
        for size, suffix in ((3600, " h"), (60, " min"), (1, " s"), (1e-3, " ms"), (1e-6, " µs")):
            if abs(secs) >= size:
                return f"{_num(secs / size)}{suffix}"
        return "0 s" if secs == 0 else f"{_num(secs * 1e9)} ns"
    if unit == "bytes":
        for size, suffix in ((2**40, " TiB"), (2**30, " GiB"), (2**20, " MiB"), (2**10, " KiB")):
            if abs(v) >= size:
                return f"{_num(v / size)}{suffix}"
        return f"{_num(v)} B"
    names = {"reqps": " req/s", "ops": " ops/s", "short": "", "none": "", None: "", "": ""}
    unit_text = names.get(unit, f" {unit}")
    for size, si in ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " K")):
        if abs(v) >= size:
            return f"{_num(v / size)}{si}{unit_text}".replace("  ", " ")
    return f"{_num(v)}{unit_text}"


def _digits(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    digits = max(0, 2 - math.floor(math.log10(abs(v))))  # three significant digits
    text = f"{v:.{min(digits, 4)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def series_format(panel: dict[str, Any], s: Series | None = None) -> tuple[str | None, int | None]:
    """(unit, decimals) of a panel's series: ``fieldConfig.defaults``, then the overrides that
    match it (``byFrameRefID``, ``byName``, ``byRegexp``), as Grafana applies them."""
    config = panel.get("fieldConfig") or {}
    found = dict(config.get("defaults") or {})
    for o in config.get("overrides") or []:
        kind, want = o.get("matcher", {}).get("id"), str(o.get("matcher", {}).get("options"))
        hit = s is not None and (
            (kind == "byFrameRefID" and s.ref_id == want)
            or (kind == "byName" and s.name == want)
            or (kind == "byRegexp" and re.fullmatch(want, s.name) is not None)
        )
        if hit:
            found.update({q["id"]: q.get("value") for q in o.get("properties", []) if "id" in q})
    unit, decimals = found.get("unit"), found.get("decimals")
    return (str(unit) if unit else None), (int(decimals) if decimals is not None else None)


class Canvas:
    """Pixel coordinates (origin top left) on one matplotlib figure."""

    def __init__(self, width: int, grid_rows: int) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.w, self.h = width, HEADER_PX + grid_rows * (ROW_PX + GAP_PX) + PAD_PX
        self.fig = plt.figure(figsize=(self.w / DPI, self.h / DPI), dpi=DPI, facecolor=BG)
        self.col = (width - 2 * PAD_PX + GAP_PX) / 24

    def cell(self, g: dict[str, int]) -> tuple[float, float, float, float]:
        """A gridPos as (left, top, width, height) pixels."""
        left = PAD_PX + g["x"] * self.col
        top = HEADER_PX + g["y"] * (ROW_PX + GAP_PX)
        return left, top, g["w"] * self.col - GAP_PX, g["h"] * (ROW_PX + GAP_PX) - GAP_PX

    def axes(self, left: float, top: float, width: float, height: float, **kw: Any) -> Any:
        rect = (left / self.w, 1 - (top + height) / self.h, width / self.w, height / self.h)
        return self.fig.add_axes(rect, **kw)

    def text(self, x: float, y: float, s: str, **kw: Any) -> None:
        kw.setdefault("color", TEXT)
        kw.setdefault("va", "top")
        self.fig.text(x / self.w, 1 - y / self.h, s, **kw)


def draw(
    board: dict[str, Any], data: list[PanelData], w: Window, out: Path, width: int
) -> tuple[int, int]:
    """Draw every panel at its gridPos into ``out`` (PNG); the PNG's (width, height)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    rows = max(d.panel["gridPos"]["y"] + d.panel["gridPos"]["h"] for d in data)
    c = Canvas(width, rows)
    start, end = (datetime.fromtimestamp(t, UTC) for t in (w.start, w.end))
    c.text(PAD_PX, 10, board.get("title", "dashboard"), fontsize=15, weight="bold")
    c.text(
        width - PAD_PX,
        12,
        f"{start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC",
        fontsize=10,
        ha="right",
        color=DIM,
    )
    c.text(
        PAD_PX,
        36,
        "drawn by scripts/render_dashboard.py (not Grafana): each panel's "
        f"PromQL evaluated with Prometheus query_range, step {_digits(w.step)} s, "
        f"$__rate_interval {_digits(max(w.step + w.scrape, 4 * w.scrape))} s",
        fontsize=8.5,
        color=DIM,
    )
    for d in data:
        _panel(c, d, w)
    raw = io.BytesIO()
    c.fig.savefig(raw, format="png", dpi=DPI, facecolor=BG)
    plt.close(c.fig)
    # a 256-colour palette: the same picture at a third of the bytes (a few flat colours)
    Image.open(raw).convert("RGB").quantize(256).save(out, format="PNG", optimize=True)
    return c.w, c.h


def _panel(c: Canvas, d: PanelData, w: Window) -> None:
    p, kind = d.panel, d.panel.get("type")
    left, top, width, height = c.cell(p["gridPos"])
    if kind == "row":
        inner = p.get("panels") or []
        hidden = f"  (collapsed: {len(inner)} panels not drawn)" if p.get("collapsed") else ""
        c.text(left, top + 6, p.get("title", "") + hidden, fontsize=12.5, weight="bold")
        return
    frame = c.axes(left, top, width, height, facecolor=PANEL)
    frame.set_xticks([])
    frame.set_yticks([])
    for spine in frame.spines.values():
        spine.set_color(BORDER)
    limit = max(8, int(width / 7))
    c.text(left + 8, top + 7, _clip(p.get("title", ""), limit), fontsize=10.5, weight="bold")
    body = (left + 10, top + 28, width - 20, height - 36)
    if d.errors:
        msg = "query error: " + "; ".join(d.errors)
        lines = textwrap.wrap(msg, max(20, int(width / 6)))[:3]
        c.text(
            left + 10, top + height - 8 - 13 * len(lines), "\n".join(lines), fontsize=8, color=RED
        )
    if not d.series:
        if not d.errors:
            c.text(
                left + width / 2,
                top + height / 2,
                "No data",
                fontsize=12,
                color=DIM,
                ha="center",
                va="center",
            )
        return
    texts = [format_value(s.last(), *series_format(p, s)) for s in d.series]
    if kind in ("timeseries", "graph"):
        _lines(c, d.series, series_format(p), w, body)
    elif kind in ("stat", "gauge"):
        _stats(c, d.series, texts, w, body)
    elif kind == "bargauge":
        _bars(c, d.series, texts, body)
    else:
        shown = [f"{s.name}: {t}" for s, t in zip(d.series[:12], texts, strict=False)]
        c.text(body[0], body[1], "\n".join(shown), fontsize=9, family="monospace")


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _style(ax: Any) -> None:
    ax.set_facecolor(PANEL)
    ax.tick_params(colors=DIM, labelsize=7.5, length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _xy(s: Series) -> tuple[list[datetime], list[float]]:
    times = [datetime.fromtimestamp(t, UTC) for t in s.times]
    return times, [math.nan if v is None else v for v in s.values]


def _lines(
    c: Canvas,
    series: list[Series],
    fmt: tuple[str | None, int | None],
    w: Window,
    body: tuple[float, float, float, float],
) -> None:
    import matplotlib.dates as mdates
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    left, top, width, height = body
    ncol = max(1, int(width // 230))
    legend_rows = min(3, math.ceil(len(series) / ncol))
    plot_h = height - 14 * legend_rows - 22
    ax = c.axes(left + 52, top, width - 52, plot_h)
    _style(ax)
    for i, s in enumerate(series):
        ax.plot(*_xy(s), color=PALETTE[i % len(PALETTE)], linewidth=1.3)
    ax.set_xlim(datetime.fromtimestamp(w.start, UTC), datetime.fromtimestamp(w.end, UTC))
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(color=BORDER, linewidth=0.6)
    clock, ticks = _time_ticks(w, max(3, int(width // 90)))
    ax.set_xticks([datetime.fromtimestamp(t, UTC) for t in ticks])
    ax.xaxis.set_major_formatter(mdates.DateFormatter(clock, tz=UTC))  # type: ignore[no-untyped-call]
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, fmt[0])))
    shown = ncol * legend_rows
    entries = series[:shown] if len(series) <= shown else series[: shown - 1]
    col_w = width / ncol
    for i, s in enumerate(entries):
        x, y = left + (i % ncol) * col_w, top + plot_h + 20 + (i // ncol) * 14
        c.text(x, y, "■", fontsize=8, color=PALETTE[i % len(PALETTE)])
        c.text(x + 11, y, _clip(s.name, int(col_w / 6)), fontsize=8)
    if len(series) > len(entries):
        x, y = left + (len(entries) % ncol) * col_w, top + plot_h + 20 + (legend_rows - 1) * 14
        c.text(x, y, f"+ {len(series) - len(entries)} more series", fontsize=8, color=DIM)


def _time_ticks(w: Window, most: int) -> tuple[str, list[float]]:
    """The clock format and tick times: the smallest round step giving at most ``most``."""
    steps = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
    step = next((s for s in steps if w.range_s / s <= most), steps[-1])
    first = math.ceil(w.start / step) * step
    ticks = [float(t) for t in range(int(first), int(w.end) + 1, step)]
    return ("%H:%M" if step % 60 == 0 else "%H:%M:%S"), ticks


def _stats(
    c: Canvas,
    series: list[Series],
    texts: list[str],
    w: Window,
    body: tuple[float, float, float, float],
) -> None:
    left, top, width, height = body
    n = len(series)
    cell_w = width / n
    px_per_pt = DPI / 72
    widest = max(len(t) for t in texts)  # a bold digit is ~0.65 em wide
    size = max(9.0, min(height * 0.3, 0.85 * cell_w / (0.65 * widest)) / px_per_pt)
    for i, (s, text) in enumerate(zip(series, texts, strict=True)):
        x = left + i * cell_w
        if n > 1:
            c.text(
                x + cell_w / 2, top + 2, _clip(s.name, int(cell_w / 6)), fontsize=8.5, ha="center"
            )
        c.text(
            x + cell_w / 2,
            top + height * 0.4,
            text,
            fontsize=size,
            ha="center",
            va="center",
            color=GREEN if s.last() is not None else DIM,
            weight="bold",
        )
        spark = c.axes(x + 4, top + height * 0.66, cell_w - 8, height * 0.34)
        spark.set_axis_off()
        times, vals = _xy(s)
        spark.fill_between(times, vals, color=GREEN, alpha=0.18, linewidth=0)
        spark.plot(times, vals, color=GREEN, linewidth=1)
        spark.set_xlim(datetime.fromtimestamp(w.start, UTC), datetime.fromtimestamp(w.end, UTC))


def _bars(
    c: Canvas, series: list[Series], texts: list[str], body: tuple[float, float, float, float]
) -> None:
    left, top, width, height = body
    ax = c.axes(left + 4, top + 16, width - 8, height - 34)
    _style(ax)
    values = [s.last() or 0.0 for s in series]
    xs = range(len(series))
    ax.bar(xs, values, color=GREEN, alpha=0.85, width=0.7)
    ax.set_yticks([])
    ax.set_xticks(list(xs), [_clip(s.name, 8) for s in series])
    peak = max(values) if values and max(values) > 0 else 1.0
    ax.set_ylim(0, peak * 1.18)
    for x, v, text in zip(xs, values, texts, strict=True):
        ax.text(x, v + peak * 0.02, text, ha="center", va="bottom", color=TEXT, fontsize=8)
