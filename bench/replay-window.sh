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
# SEALTRAIL_BIN: a binary already built (otherwise target/release is built).
if [ -z "${SEALTRAIL_BIN:-}" ]; then
    cargo build --release --locked --quiet
fi
bin=${SEALTRAIL_BIN:-$PWD/target/release/sealtrail}
work=$(mktemp -d /tmp/sealtrail-replay.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$pid" ] && wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
start=$(date -u -d "today - $days days" +%Y-%m-%dT00:00:00Z)
"$bin" gen --days "$days" --users "$users" --patients "$patients" --seed 11 \
    --start "$start" --out "$work/gen" >/dev/null
"$bin" keygen --out "$work/keys" --name bench.example/log >/dev/null
port=$((20000 + RANDOM % 20000))
cat >"$work/config.toml" <<EOF
data_dir = "$work/data"
[ledger]
key_file = "$work/keys/signing.key"
[lookups]
dir = "$work/gen"
[http]
listen = "127.0.0.1:$port"
[syslog]
listen = "127.0.0.1:$((port + 1))"
[rules]
dir = "$PWD/rules"
EOF
events=$(wc -l <"$work/gen/events.ndjson")
t0=$(date +%s.%N)
"$bin" import --config "$work/config.toml" "$work/gen/events.ndjson" >/dev/null
t1=$(date +%s.%N)
echo "import of $events events ($days days, $users users) with detection: $(echo "$t1 - $t0" | bc) s"
"$bin" serve --config "$work/config.toml" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    grep -q "detection state rebuilt" "$work/serve.log" && break
    sleep 0.1
done
grep "detection state rebuilt" "$work/serve.log"
curl -sf "http://127.0.0.1:$port/metrics" | grep -E 'sealtrail_detection_engine\{stat="(groups|expired_groups|unjoined_hits)"' || true
echo "peak RSS of serve (KiB): $(grep VmHWM /proc/$pid/status | awk '{print $2}')"
