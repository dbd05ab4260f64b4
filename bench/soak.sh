#!/usr/bin/env bash
# The soak of issue #16: `sealtrail serve` with everything on (as in
# bench/pipeline.sh: ledger with fsync, index, the shipped rule pack with
# lookups, response with a local SMTP sink) for 30 minutes at half its
# maximum rate, with RSS flat, lag bounded and no errors.
#
#   bash bench/soak.sh [OUT.md]           (default: bench-soak.md)
#
# Load: `loggen` RFC 5424 over one TCP connection at SOAK_RATE events/s
# (default: half of the maximum measured first, unpaced, on 500,000
# messages), plus the practice's events (`sealtrail gen`, 30 days) posted
# over HTTP at SOAK_HTTP_RATE events/s (default: spread over the run, ~66/s
# for 30 minutes), so rules fire and response sends email throughout.
# Environment: SOAK_MINUTES (30), SOAK_RATE, SOAK_HTTP_RATE, SEALTRAIL_BIN.
# Needs loggen (syslog-ng-core; installed with apt if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
out_md=${1:-bench-soak.md}
minutes=${SOAK_MINUTES:-30}

source bench/lib/serve.sh
bench_setup soak
source bench/lib/full.sh
trap 'exit 130' INT TERM
if ! command -v loggen >/dev/null; then
    apt-get update >&2 && apt-get install -y --no-install-recommends syslog-ng-core >&2
fi
full_setup

probe=(python3 bench/lib/pipeline.py)
rate=${SOAK_RATE:-}
if [[ -z "$rate" ]]; then
    st_start max
    "${probe[@]}" run --name "sealtrail syslog, maximum" --system sealtrail --transport syslog \
        --conns 1 --pid "$st_pid" --events 500000 --out "$work/max.ndjson" --done "sealtrail:$port" \
        --load loggen -Q -I 100000 -P -S -s 300 -r 100000000 -n 500000 --active-connections 1 127.0.0.1 $((port + 1))
    stop_pid "$st_pid"; rm -rf "$st_dir"
    rate=$(python3 -c 'import json,sys; print(int(json.loads(open(sys.argv[1]).readline())["events_per_s"] / 2))' "$work/max.ndjson")
fi
echo "soak: $minutes min at $rate syslog events/s" >&2

st_start soak
seconds=$(python3 -c "print(int(float('$minutes') * 60))")
http_rate=${SOAK_HTTP_RATE:-$(python3 -c "print(max(1, $http_n // $seconds))")}
status=0
{
    echo "<!-- bench/soak.sh, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD) -->"
    echo "Command: \`${SOAK_MINUTES:+SOAK_MINUTES=$SOAK_MINUTES }${SOAK_RATE:+SOAK_RATE=$SOAK_RATE }bash bench/soak.sh $out_md\`"
    echo
    echo "machine: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB RAM; at start: $(uptime)"
    echo
} >"$out_md.head"
python3 bench/lib/soak.py --pid "$st_pid" --port "$port" --log "$st_dir/serve.log" \
    --minutes "$minutes" --rate "$rate" --out "$out_md.body" \
    --ndjson "$work/practice/events.ndjson" --http-rate "$http_rate" \
    --load loggen -Q -P -S -s 300 -r "$rate" -I "$seconds" --active-connections 1 127.0.0.1 $((port + 1)) ||
    status=$?
stop_pid "$st_pid"
verify_rc=0
verify=$("$bin" verify --data "$st_dir/data" --vkey "$work/keys/signing.vkey" 2>&1) || verify_rc=$?
[[ $verify_rc == 0 ]] || status=1
{
    cat "$out_md.head" "$out_md.body"
    echo "- at end: $(uptime)"
    echo "- \`sealtrail verify\` after the stop: exit status $verify_rc"
    echo '```'
    echo "$verify"
    echo '```'
} >"$out_md"
rm -f "$out_md.head" "$out_md.body"
echo "written: $out_md" >&2
exit "$status"
