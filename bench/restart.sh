#!/usr/bin/env bash
# Restart cost at ~1M events/day, with and without the detection state
# snapshot (src/detect/snapshot.rs), with the shipped rule pack.
#
# `sealtrail gen` makes at most 1,000 users (~46,000 events/day), so the
# practice is SITES copies of one generated practice (user, patient and
# event ids suffixed per copy, lookups copied alike, events interleaved in
# time order): 22 sites of 1,000 users is ~1M events/day. DAYS days ending
# today are generated and imported (detection on, as in service: it writes
# snapshots as it goes, and one at its end), then:
#   1. serve with the snapshot import left: only the entries after it replay
#   2. snapshot removed: serve replays the whole window (the old path), then
#      writes a snapshot; SIGTERM (one more at the stop)
#   3. serve with the snapshot written at that SIGTERM
# Each start prints the detection log line (path taken, entries replayed,
# took_ms) and the wall time from launching serve to that line.
#
#   bash bench/restart.sh [DAYS=2] [SITES=22]
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-2}
sites=${2:-22}
# SEALTRAIL_BIN: a binary already built (otherwise the release one is built).
source bench/lib/serve.sh
bench_setup restart
start=$(date -u -d "today - $days days" +%Y-%m-%dT00:00:00Z)
"$bin" gen --days "$days" --users 1000 --patients 50000 --seed 11 \
    --start "$start" --out "$work/gen" >/dev/null
mkdir -p "$work/lookups"
python3 - "$work/gen" "$work/lookups" "$sites" <<'PY'
import re, sys
src, dst, sites = sys.argv[1], sys.argv[2], int(sys.argv[3])
# Every user id (u0042, svc-x stay svc-: suffix, not prefix), patient id
# and event id gets the site's suffix; the rest of the event is unchanged.
pat = re.compile(r'\b(u\d{4}|svc-[a-z0-9_-]+|MRN-\d+|gen-[a-z]-\d+)\b')
def site(text, k):
    return text if k == 0 else pat.sub(lambda m: f"{m.group(1)}x{k}", text)
with open(f"{src}/events.ndjson") as f, open(f"{dst}/events.ndjson", "w") as out:
    for line in f:
        for k in range(sites):
            out.write(site(line, k))
for name in ("staff.csv", "patients.csv"):
    with open(f"{src}/{name}") as f:
        header, *rows = f.read().splitlines()
    with open(f"{dst}/{name}", "w") as out:
        out.write(header + "\n")
        for k in range(sites):
            for r in rows:
                out.write(site(r, k) + "\n")
with open(f"{src}/networks.csv") as f, open(f"{dst}/networks.csv", "w") as out:
    out.write(f.read())
PY
{
    serve_base_config
    cat <<EOF
[lookups]
dir = "$work/lookups"
[rules]
dir = "$PWD/rules"
EOF
} >"$work/config.toml"
events=$(wc -l <"$work/lookups/events.ndjson")
echo "practice: $sites sites x 1,000 users, $days days ending today: $events events ($((events / days)) per day)"
t0=$(date +%s.%N)
"$bin" import --config "$work/config.toml" "$work/lookups/events.ndjson" >/dev/null 2>"$work/import.log"
t1=$(date +%s.%N)
echo "import with detection: $(echo "$t1 - $t0" | bc) s"
echo "snapshots written during the import (position, bytes, took_ms):"
grep "detection snapshot written" "$work/import.log" | sed -E 's/^.*(position=)/  \1/' || true

metric() {
    curl -sf -H "Authorization: Bearer $SEALTRAIL_TOKEN" "http://127.0.0.1:$port/metrics" |
        awk -v s="$1" '$1 == s {print $2}'
}

# One start: launch, wait for the detection start-up line, report it.
timed_start() {
    local label=$1 t0 t1 line
    : >"$work/serve.log"
    t0=$(date +%s.%N)
    serve_start
    th=$(date +%s.%N)
    for _ in $(seq 1 36000); do
        line=$(grep -E "detection state (rebuilt|loaded)" "$work/serve.log" || true)
        [ -n "$line" ] && break
        sleep 0.1
    done
    t1=$(date +%s.%N)
    [ -n "$line" ] || { echo "no detection start-up line; log:" >&2; cat "$work/serve.log" >&2; exit 1; }
    echo "== $label: launch to /healthz $(echo "$th - $t0" | bc) s, to detection ready $(echo "$t1 - $t0" | bc) s"
    echo "$line" | sed -E 's/^.*(detection state)/  \1/'
    grep -E "detection snapshot (unusable|refused)|no detection snapshot" "$work/serve.log" |
        sed -E 's/^.*(detection snapshot (unusable|refused)|no detection snapshot)/  \1/' || true
    # The response engine's own replay (not snapshotted) runs before /healthz.
    grep -E "response playbooks loaded|response state rebuilt" "$work/serve.log" |
        sed -E 's/^([^ ]+) .*(response [a-z]+ [a-z]+).*/  \1 \2/' || true
    echo "  replayed_at_start=$(metric 'sealtrail_detection_snapshot{stat="replayed_at_start"}')" \
        "peak RSS $(grep VmHWM /proc/"$pid"/status | awk '{print $2}') KiB"
}

stop() {
    kill -TERM "$pid"
    wait "$pid" || true
}

timed_start "1. restart with the snapshot import left"
stop

rm "$work/data/snapshots/detection.snapshot"
timed_start "2. restart without a snapshot: full replay of the window"
# The first round after a replay of more than snapshot_entries writes one.
for _ in $(seq 1 6000); do
    w=$(metric 'sealtrail_detection_snapshot{stat="writes"}')
    [ -n "$w" ] && [ "$w" -ge 1 ] && break
    sleep 0.1
done
grep "detection snapshot written" "$work/serve.log" | sed -E 's/^.*(position=)/  snapshot written: \1/'
s0=$(date +%s.%N)
stop
echo "  SIGTERM to exit (writes the last snapshot): $(echo "$(date +%s.%N) - $s0" | bc) s"

timed_start "3. restart with the snapshot written at SIGTERM"
stop
ls -l "$work/data/snapshots/detection.snapshot" | awk '{print "snapshot file: " $5 " bytes"}'
