#!/usr/bin/env bash
# Cost of rebuilding detection state on a restart with the shipped rule pack:
# its longest replay span is vip_no_treatment's `window + lead` (30d + 14d),
# so `sealtrail serve` replays the last 44 days of the ledger before it
# evaluates new events. This script generates DAYS of a practice ending
# today (`sealtrail gen`), imports it (detection on, as in service), starts
# `serve` on that data and prints the service's own "detection state
# rebuilt" log line (entries replayed and took_ms), plus the engine's state.
#
#   bash bench/replay-window.sh [DAYS=44] [USERS=60] [PATIENTS=1500]
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-44}
users=${2:-60}
patients=${3:-1500}
# SEALTRAIL_BIN: a binary already built (otherwise the release one is built).
source bench/lib/serve.sh
bench_setup replay
start=$(date -u -d "today - $days days" +%Y-%m-%dT00:00:00Z)
"$bin" gen --days "$days" --users "$users" --patients "$patients" --seed 11 \
    --start "$start" --out "$work/gen" >/dev/null
{
    serve_base_config
    cat <<EOF
[lookups]
dir = "$work/gen"
[rules]
dir = "$PWD/rules"
EOF
} >"$work/config.toml"
events=$(wc -l <"$work/gen/events.ndjson")
t0=$(date +%s.%N)
"$bin" import --config "$work/config.toml" "$work/gen/events.ndjson" >/dev/null
t1=$(date +%s.%N)
echo "import of $events events ($days days, $users users) with detection: $(echo "$t1 - $t0" | bc) s"
serve_start
for _ in $(seq 1 600); do
    grep -q "detection state rebuilt" "$work/serve.log" && break
    sleep 0.1
done
grep "detection state rebuilt" "$work/serve.log"
curl -sf -H "Authorization: Bearer $SEALTRAIL_TOKEN" "http://127.0.0.1:$port/metrics" | grep -E 'sealtrail_detection_engine\{stat="(groups|expired_groups|unjoined_hits)"' || true
echo "peak RSS of serve (KiB): $(grep VmHWM /proc/$pid/status | awk '{print $2}')"
