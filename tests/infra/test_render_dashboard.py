"""scripts/render_dashboard.py against a stub of Prometheus' HTTP API (fixed series): every
shown panel's queries reach Prometheus with Grafana's variables substituted, the PNG has the
grid's size, stat values carry their units and overrides, heatmap-format buckets become
per-bucket counts, query errors and bad input are reported. This tests the renderer; the
screenshot of a real stack (docs/img/dashboard.png) is made by hand (docs/operations.md)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))  # the renderer's modules
from dashboard_drawing import HEADER_PX, PAD_PX  # the renderer's title band
from render_dashboard import RenderError, Window, grafana_variables, parse_duration, substitute

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "render_dashboard.py"

END, RANGE_S, STEP_S = 1_800_000_000, 600, 30
BUCKETS = {"1.0": 2.0, "2.0": 5.0, "+Inf": 6.0}  # cumulative: per bucket 2, 3, 1


def _target(ref: str, expr: str, **extra: Any) -> dict[str, Any]:
    return {"refId": ref, "expr": expr, **extra}


PANELS: list[dict[str, Any]] = [
    {"id": 1, "type": "row", "title": "Top", "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}},
    {
        "id": 2,
        "type": "stat",
        "title": "Saved",
        "gridPos": {"h": 6, "w": 8, "x": 0, "y": 1},
        "targets": [
            _target("A", 'ratio_metric{x="1"}[$__range]', legendFormat="saved"),
            _target("B", "count_metric", legendFormat="counted"),
        ],
        "fieldConfig": {
            "defaults": {"unit": "percentunit"},
            "overrides": [
                {
                    "matcher": {"id": "byFrameRefID", "options": "B"},
                    "properties": [
                        {"id": "unit", "value": "short"},
                        {"id": "decimals", "value": 0},
                    ],
                }
            ],
        },
    },
    {
        "id": 3,
        "type": "timeseries",
        "title": "Rates",
        "gridPos": {"h": 8, "w": 16, "x": 8, "y": 1},
        "targets": [
            _target(
                "A", "sum by (code) (rate(req_total[$__rate_interval]))", legendFormat="{{code}}"
            ),
            _target("B", "hidden_metric", hide=True),
        ],
        "fieldConfig": {"defaults": {"unit": "reqps"}},
    },
    {
        "id": 4,
        "type": "bargauge",
        "title": "Buckets",
        "gridPos": {"h": 8, "w": 8, "x": 0, "y": 9},
        "targets": [
            _target(
                "A",
                "sum by (le) (increase(h_bucket[$__range]))",
                legendFormat="{{le}}",
                format="heatmap",
            )
        ],
    },
    {
        "id": 5,
        "type": "table",
        "title": "Other",
        "gridPos": {"h": 8, "w": 8, "x": 8, "y": 9},
        "targets": [_target("A", 'up{job="$job"}')],
        "fieldConfig": {"defaults": {"unit": "s"}},
    },
    {
        "id": 6,
        "type": "row",
        "title": "Folded",
        "collapsed": True,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": 17},
        "panels": [
            {
                "id": 7,
                "type": "stat",
                "title": "inside",
                "targets": [_target("A", "folded")],
                "gridPos": {"h": 4, "w": 4, "x": 0, "y": 18},
            }
        ],
    },
]
# what Prometheus must receive: --range 10m, --step 30s, --scrape-interval 15s, --var job=api
# ($__rate_interval = max(step + scrape, 4 x scrape) = 60s, as Grafana computes it)
EXPECTED_QUERIES = {
    'ratio_metric{x="1"}[600s]',
    "count_metric",
    "sum by (code) (rate(req_total[60s]))",
    "sum by (le) (increase(h_bucket[600s]))",
    'up{job="api"}',
}


class StubPrometheus(BaseHTTPRequestHandler):
    """``/api/v1/query_range`` with fixed series per query; records each request's form."""

    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        self.received.append({"path": self.path, **form})
        query, start, step = form["query"], float(form["start"]), float(form["step"])
        times = [start + i * step for i in range(3)]

        def series(labels: dict[str, str], values: list[float]) -> dict[str, Any]:
            return {
                "metric": labels,
                "values": [[t, str(v)] for t, v in zip(times, values, strict=True)],
            }

        if "broken" in query:
            self._reply(
                400,
                {
                    "status": "error",
                    "errorType": "bad_data",
                    "error": "parse error: unexpected end of input",
                },
            )
            return
        if "h_bucket" in query:
            result = [series({"le": le}, [0.0, v / 2, v]) for le, v in BUCKETS.items()]
        elif "req_total" in query:
            result = [
                series({"code": "OK"}, [1.0, 2.0, 3.0]),
                series({"code": "CANCELLED"}, [0.0, 0.5, 0.25]),
            ]
        elif "count_metric" in query:
            result = [series({}, [10.0, 20.0, 42.0])]
        else:
            result = [series({}, [0.1, 0.2, 0.25])]
        self._reply(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def prometheus() -> Iterator[str]:
    StubPrometheus.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def render(
    tmp_path: Path, url: str, panels: list[dict[str, Any]], width: int = 800
) -> tuple[subprocess.CompletedProcess[str], Path]:
    board = tmp_path / "board.json"
    board.write_text(json.dumps({"title": "stub board", "panels": panels}))
    out = tmp_path / "img" / "board.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--dashboard",
            str(board),
            "--prometheus",
            url,
            "--range",
            "10m",
            "--end",
            str(END),
            "--step",
            "30s",
            "--scrape-interval",
            "15s",
            "--var",
            "job=api",
            "--width",
            str(width),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc, out


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    return int(width), int(height)


def test_every_shown_panel_is_queried_and_drawn_at_the_grid_size(
    tmp_path: Path, prometheus: str
) -> None:
    proc, out = render(tmp_path, prometheus, PANELS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = StubPrometheus.received
    assert {r["query"] for r in got} == EXPECTED_QUERIES  # hidden and folded ones are not
    assert len(got) == len(EXPECTED_QUERIES)
    assert all(r["path"] == "/api/v1/query_range" for r in got)
    assert {(float(r["start"]), float(r["end"]), float(r["step"])) for r in got} == {
        (END - RANGE_S, END, STEP_S)
    }
    grid_rows = 18  # the folded row's bottom: y 17 + h 1; Grafana: 30 px a row + 8 px gap
    assert png_size(out) == (800, HEADER_PX + grid_rows * (30 + 8) + PAD_PX)
    assert 10_000 < out.stat().st_size < 400_000
    lines = proc.stdout.splitlines()
    assert "shows saved=25%, counted=42" in lines[1]  # percentunit; the override: short, 0 dp
    assert "'Rates': 1 queries, 2 series" in lines[2]
    assert "shows 1.0=2, 2.0=3, +Inf=1" in lines[3]  # cumulative buckets -> per bucket
    assert "'Folded': 0 queries" in lines[5]
    assert lines[-1].startswith(f"wrote {out} (800x")


def test_the_width_scales_the_png(tmp_path: Path, prometheus: str) -> None:
    proc, out = render(tmp_path, prometheus, PANELS[:3], width=1200)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert png_size(out) == (1200, HEADER_PX + 9 * (30 + 8) + PAD_PX)


def test_a_failing_query_is_reported_and_the_png_still_written(
    tmp_path: Path, prometheus: str
) -> None:
    broken = {
        "id": 9,
        "type": "timeseries",
        "title": "Broken",
        "gridPos": {"h": 8, "w": 8, "x": 16, "y": 9},
        "targets": [_target("A", "broken(")],
    }
    proc, out = render(tmp_path, prometheus, [*PANELS, broken])
    assert proc.returncode == 1
    assert "ERROR A: bad_data: parse error: unexpected end of input" in proc.stdout
    assert out.exists() and {r["query"] for r in StubPrometheus.received} >= EXPECTED_QUERIES


def test_bad_input_is_a_clear_error(tmp_path: Path, prometheus: str) -> None:
    no_grid = [{"id": 1, "type": "stat", "title": "X", "targets": [_target("A", "m")]}]
    proc, out = render(tmp_path, prometheus, no_grid)
    assert proc.returncode == 2 and not out.exists()
    assert "panel 1 ('X'): gridPos needs integer h, w, x, y" in proc.stderr
    proc, out = render(tmp_path, "http://127.0.0.1:9", PANELS)  # nothing listens on port 9
    assert proc.returncode == 2 and not out.exists()
    assert "cannot reach Prometheus at http://127.0.0.1:9/api/v1" in proc.stderr


def test_durations_and_grafana_variables() -> None:
    assert [parse_duration(d) for d in ("90s", "15m", "1h30m", "500ms", "42")] == [
        90,
        900,
        5400,
        0.5,
        42,
    ]
    with pytest.raises(RenderError, match="not a duration: '15 minutes'"):
        parse_duration("15 minutes")
    v = grafana_variables(Window(0, 3600, 60, 15), {"pool": "gpu"})
    assert v["__rate_interval"] == "75s" and v["__range"] == "3600s"  # max(60 + 15, 4 x 15)
    expr = 'rate(x{pool="$pool",a=~"b$"}[${__rate_interval}]) > $__range_s and $unknown'
    assert substitute(expr, v) == 'rate(x{pool="gpu",a=~"b$"}[75s]) > 3600 and $unknown'
