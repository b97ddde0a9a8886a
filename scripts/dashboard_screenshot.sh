#!/usr/bin/env bash
# Make docs/img/dashboard.png from a real local-stack run (docs/operations.md, "Dashboard
# screenshot"): the local stack on sim backends with metrics on, Debian's prometheus scraping it
# every 5 s, one warm-up question, then a batch of GSM8K questions; once all are answered and
# the graphs have settled, scripts/render_dashboard.py draws infra/grafana/optscale.json over
# the batch's time range. Not Grafana: no Grafana server is installable from the registries here.
#
#   scripts/dashboard_screenshot.sh [OUT.png]     # env: N (300), TOKEN_DELAY (0.05), BASE (30360)
#
# Ports BASE..BASE+10 on 127.0.0.1; the stack, Prometheus' data and logs go to a temporary
# directory (kept: its path is printed). Takes about N / 60 + 2 minutes on 2 shared cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/img/dashboard.png}
N=${N:-300}
TOKEN_DELAY=${TOKEN_DELAY:-0.05}
BASE=${BASE:-30360}
WORK=$(mktemp -d /tmp/dashboard-run.XXXXXX)
BOOT=127.0.0.1:$((BASE + 4))
export OPTSCALE_REDIS_URL=redis://127.0.0.1:$((BASE + 5))/0  # where submit records the batch
PROM=127.0.0.1:$((BASE + 10))
command -v prometheus >/dev/null || { echo "needs Debian's prometheus (apt-get install prometheus)" >&2; exit 2; }
echo "work directory: $WORK"

cleanup() {
  [[ -f $WORK/prometheus.pid ]] && kill "$(cat "$WORK/prometheus.pid")" 2>/dev/null || true
  .venv/bin/optscale stack down --dir "$WORK/stack" >/dev/null 2>&1 || true
}
trap cleanup EXIT

OPTSCALE_GENERATOR_SIM_TOKEN_DELAY=$TOKEN_DELAY .venv/bin/optscale stack up --backend sim \
  --dir "$WORK/stack" --grpc-base "$BASE" --broker-port $((BASE + 4)) \
  --redis-port $((BASE + 5)) --metrics-base $((BASE + 6))
targets=$(printf '"127.0.0.1:%s",' $((BASE + 6)) $((BASE + 7)) $((BASE + 8)) $((BASE + 9)))
cat >"$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: [$PWD/infra/prometheus/optscale-alerts.yaml]
scrape_configs:
  - job_name: optscale
    static_configs: [{targets: [${targets%,}]}]
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="$PROM" >"$WORK/prometheus.log" 2>&1 &
echo $! >"$WORK/prometheus.pid"

submit() {
  .venv/bin/optscale submit --bootstrap "$BOOT" --dataset gsm8k --n-max 8 --s-min 0.85 \
    --max-tokens 256 "$@"
}
until_done() {  # every submitted question answered (the progress reader sees when: no --no-progress)
  timeout 1800 .venv/bin/optscale results --bootstrap "$BOOT" --until-done >/dev/null 2>>"$WORK/results.log"
}
# The controller creates a labelled counter series on its first event, so a batch's first
# submissions would be invisible to increase(): one warm-up question creates the series first.
submit --limit 1
until_done
sleep 20  # four scrapes, so the range below starts after the warm-up
start=$(($(date +%s) - 10))
submit --offset 1 --limit "$N"
until_done
sleep 60  # the rates fall back to zero on the graphs
.venv/bin/python scripts/render_dashboard.py --prometheus "http://$PROM" \
  --range "$(($(date +%s) - start))s" --scrape-interval 5s --out "$OUT"
