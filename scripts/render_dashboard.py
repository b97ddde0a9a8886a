"""Render a Grafana dashboard JSON to a PNG without Grafana: every panel's PromQL targets are
evaluated with ``query_range`` against a real Prometheus, and the panels are drawn with
matplotlib in the dashboard's grid layout (``gridPos``: 24 columns, 30 px rows as Grafana).

    python scripts/render_dashboard.py --prometheus http://127.0.0.1:9090 \\
        [--dashboard infra/grafana/optscale.json] [--range 15m] [--end UNIX] \\
        [--step 15s] [--scrape-interval 15s] [--var NAME=VALUE] [--width 1600] \\
        --out docs/img/dashboard.png

What is drawn, as Grafana would show it: ``timeseries`` (and the old ``graph``) panels as
lines, ``stat`` and ``gauge`` panels as the last non-null value in big type with the
panel's unit and a sparkline, ``bargauge`` panels as one bar per series (last value), ``row``
panels as section headers (a collapsed row's own panels are not drawn, as in Grafana). Any
other panel type is drawn as a list of its series' last values. Targets with
``"format": "heatmap"`` have their cumulative ``le`` buckets turned into per-bucket counts
(Grafana does the same). ``$__range``, ``$__interval``, ``$__rate_interval`` (and their
``_s``/``_ms`` forms) are substituted as Grafana does; other ``$name`` variables come from
``--var``, unknown ones are left as they are. Hidden targets are skipped.

Prints one line per panel (series found, the value a stat panel shows, query errors) and the
PNG's size. Exit status: 0, 1 when a query failed (drawn in its panel, PNG still written),
2 on bad input (dashboard file, options, Prometheus unreachable)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # dashboard_drawing.py is beside this
from dashboard_drawing import draw, format_value, series_format

ROOT = Path(__file__).resolve().parents[1]
GRID_COLUMNS = 24


class RenderError(Exception):
    """Bad input: a clear message, exit status 2."""


@dataclass
class Series:
    name: str
    labels: dict[str, str]
    times: list[float]
    values: list[float | None]
    ref_id: str = ""

    def last(self) -> float | None:
        return next((v for v in reversed(self.values) if v is not None), None)


@dataclass
class PanelData:
    panel: dict[str, Any]
    series: list[Series] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    step: float
    scrape: float

    @property
    def range_s(self) -> float:
        return self.end - self.start


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``1h30m``, ``500ms``, or plain seconds -> seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise RenderError(f"not a duration: {text!r} (e.g. 90s, 15m, 1h)")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * scale[u] for n, u in parts)


def load_panels(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dashboard and its top-level panels (rows included), each checked for a gridPos."""
    try:
        board = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RenderError(f"{path}: cannot read the dashboard JSON ({exc})") from exc
    panels = board.get("panels") if isinstance(board, dict) else None
    if not isinstance(panels, list) or not panels:
        raise RenderError(f"{path}: no 'panels' list")
    for i, p in enumerate(panels):
        name = f"{path}: panel {p.get('id', i)} ({p.get('title', '')!r})"
        g = p.get("gridPos")
        if not isinstance(g, dict) or not all(isinstance(g.get(k), int) for k in "hwxy"):
            raise RenderError(f"{name}: gridPos needs integer h, w, x, y")
        if g["w"] < 1 or g["h"] < 1 or g["x"] < 0 or g["y"] < 0 or g["x"] + g["w"] > 24:
            raise RenderError(f"{name}: gridPos {g} is outside the 24-column grid")
        for t in p.get("targets", []) if p.get("type") != "row" else []:
            if not isinstance(t.get("expr"), str):
                raise RenderError(f"{name}: target {t.get('refId', '?')} has no PromQL 'expr'")
    return board, panels


def grafana_variables(w: Window, extra: dict[str, str]) -> dict[str, str]:
    rate = max(w.step + w.scrape, 4 * w.scrape)  # Grafana's $__rate_interval
    out = {
        "__range": f"{round(w.range_s)}s",
        "__range_s": str(round(w.range_s)),
        "__range_ms": str(round(w.range_s * 1000)),
        "__interval": f"{round(w.step)}s",
        "__interval_ms": str(round(w.step * 1000)),
        "__rate_interval": f"{round(rate)}s",
    }
    return {**extra, **out}


def substitute(expr: str, variables: dict[str, str]) -> str:
    """``$name`` / ``${name}`` / ``${name:fmt}`` replaced when known, else left as is."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return variables.get(name, m.group(0))

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)


def legend(fmt: str | None, labels: dict[str, str], expr: str) -> str:
    if fmt and fmt != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    name = labels.get("__name__", "")
    if not shown:
        return name or expr
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"


def bucket_counts(series: list[Series]) -> list[Series]:
    """Cumulative ``le`` buckets -> per-bucket counts sorted by ``le`` (as Grafana's heatmap)."""

    def le(s: Series) -> float:
        try:
            return float(s.labels.get("le", "inf"))
        except ValueError:
            return math.inf

    ordered = sorted(series, key=le)
    out: list[Series] = []
    for below, s in zip([None, *ordered[:-1]], ordered, strict=True):
        if below is None:
            out.append(s)
            continue
        prev = dict(zip(below.times, below.values, strict=True))
        vals = [
            None if v is None else v - (prev.get(t) or 0.0)
            for t, v in zip(s.times, s.values, strict=True)
        ]
        out.append(Series(s.name, s.labels, s.times, vals, s.ref_id))
    return out


class Prometheus:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.api = url.rstrip("/") + "/api/v1"
        self.timeout = timeout

    def query_range(self, expr: str, w: Window) -> list[dict[str, Any]]:
        """The ``matrix`` result; ``ValueError`` with Prometheus' message on a query error,
        ``RenderError`` when Prometheus cannot be reached."""
        body = urllib.parse.urlencode(
            {"query": expr, "start": w.start, "end": w.end, "step": w.step}
        ).encode()
        try:
            with urllib.request.urlopen(f"{self.api}/query_range", body, self.timeout) as r:
                reply = json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400/422/503: Prometheus explains in JSON
            try:
                reply = json.loads(exc.read())
            except ValueError:
                raise ValueError(f"HTTP {exc.code} from Prometheus") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RenderError(f"cannot reach Prometheus at {self.api}: {exc}") from exc
        if reply.get("status") != "success":
            raise ValueError(f"{reply.get('errorType', 'error')}: {reply.get('error', reply)}")
        if reply["data"]["resultType"] != "matrix":
            raise ValueError(f"expected a matrix, got {reply['data']['resultType']}")
        return list(reply["data"]["result"])


def query_panel(
    prom: Prometheus, panel: dict[str, Any], w: Window, variables: dict[str, str]
) -> PanelData:
    data = PanelData(panel)
    for t in panel.get("targets", []):
        if t.get("hide"):
            continue
        expr = substitute(t["expr"], variables)
        data.queries.append(expr)
        try:
            result = prom.query_range(expr, w)
        except ValueError as exc:
            data.errors.append(f"{t.get('refId', '?')}: {exc}")
            continue
        found = []
        for r in result:
            labels = {str(k): str(v) for k, v in r["metric"].items()}
            pts = [(float(ts), float(v)) for ts, v in r["values"]]
            vals: list[float | None] = [None if math.isnan(v) else v for _, v in pts]
            name = legend(t.get("legendFormat"), labels, expr)
            found.append(Series(name, labels, [ts for ts, _ in pts], vals, t.get("refId", "")))
        data.series += bucket_counts(found) if t.get("format") == "heatmap" else found
    return data


def summary_line(d: PanelData) -> str:
    p = d.panel
    line = f"panel {p.get('id', '?')} [{p.get('type')}] {p.get('title', '')!r}: "
    line += f"{len(d.queries)} queries, {len(d.series)} series"
    if p.get("type") in ("stat", "gauge", "bargauge"):
        shown = [f"{s.name}={format_value(s.last(), *series_format(p, s))}" for s in d.series]
        line += "; shows " + (", ".join(shown) if shown else "No data")
    return line + "".join(f"; ERROR {e}" for e in d.errors)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dashboard", type=Path, default=ROOT / "infra" / "grafana" / "optscale.json")
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--range", default="15m", help="time range ending at --end (default 15m)")
    ap.add_argument("--end", default="now", help="unix seconds or 'now'")
    ap.add_argument("--step", default="", help="query step (default: range / 240, >= scrape)")
    ap.add_argument(
        "--scrape-interval",
        default="15s",
        help="Prometheus' scrape interval (Grafana's data source setting; sets $__rate_interval)",
    )
    ap.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a dashboard variable's value (repeatable)",
    )
    ap.add_argument("--width", type=int, default=1600, help="PNG width in pixels")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except RenderError as exc:
        print(f"render_dashboard: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.width < 400:
        raise RenderError(f"--width {args.width}: at least 400 pixels")
    bad = [v for v in args.var if "=" not in v]
    if bad:
        raise RenderError(f"--var {bad[0]!r}: expected NAME=VALUE")
    try:
        end = time.time() if args.end == "now" else float(args.end)
    except ValueError as exc:
        raise RenderError(f"--end {args.end!r}: unix seconds or 'now'") from exc
    span, scrape = parse_duration(args.range), parse_duration(args.scrape_interval)
    if span <= 0 or scrape <= 0:
        raise RenderError("--range and --scrape-interval must be positive")
    step = parse_duration(args.step) if args.step else max(scrape, span / 240)
    w = Window(end - span, end, step, scrape)
    board, panels = load_panels(args.dashboard)
    variables = grafana_variables(w, dict(v.split("=", 1) for v in args.var))
    prom = Prometheus(args.prometheus)
    data = [
        query_panel(prom, p, w, variables) if p.get("type") != "row" else PanelData(p)
        for p in panels
    ]
    for d in data:
        print(summary_line(d))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    width, height = draw(board, data, w, args.out, args.width)
    print(f"wrote {args.out} ({width}x{height} px, {args.out.stat().st_size} bytes)")
    return 1 if any(d.errors for d in data) else 0


if __name__ == "__main__":
    sys.exit(main())
