#!/usr/bin/env bash
# The fault campaign of issue #16, scripted and repeatable: each fault runs
# against the release `sealtrail serve` (shipped rule pack, lookups of a
# generated practice, fsync on), with HTTP NDJSON senders whose events carry
# client ids and that retry everything not acknowledged, and is checked from
# the ledger's own segment files, `sealtrail verify`, the search index and
# /metrics (bench/lib/faults.py). Run as root (tmpfs mounts).
#
#   bash bench/faults.sh [OUT.md]            (default: bench-faults.md)
#
# Faults (FAULTS_CASES, default all, in this order):
#   kills     50 SIGKILLs at seeded random moments under load (4 connections);
#             every acknowledged id stored once, none twice, verify passes,
#             index and detection catch up after the last restart
#   diskfull  data directory on a 64 MiB tmpfs, filled by a filler file while
#             the senders run: 503 (no 500, no hang), nothing acknowledged
#             lost, the same process accepts again once the filler is deleted
#   smtp      the SMTP sink down for FAULTS_SMTP_DOWN seconds (default 600,
#             the issue's 10 minutes) while failed-login bursts raise alerts:
#             every notification delivered after it returns, none twice
#   stall     DATA/index on its own 256 MiB tmpfs, filled by a filler file:
#             ingest goes on (or 503), VmRSS sampled stays bounded, the index
#             catches up once the filler is deleted (the tmpfs must hold the
#             whole index of the run: at 48 MiB the index itself filled it
#             during catch-up, and the service waited, retrying, for space)
#   clock     the wall clock of `serve` stepped -1 h, +1 h, +1 h, -1 h with
#             libfaketime (monotonic clock untouched): nothing lost,
#             duplicated or reordered, seals go on, verify passes
#
# Environment:
#   FAULTS_CASES        subset of "kills diskfull smtp stall clock"
#   FAULTS_KILLS        SIGKILLs (default 50)     FAULTS_SEED   (default 16)
#   FAULTS_SMTP_DOWN    seconds the SMTP server is down (default 600)
#   FAULTS_SMTP_RETRY_FOR  [smtp] retry_for for the run (default: the service's;
#                       "0s" shows the behaviour before the fix: notifications lost)
#   FAULTS_FULL_SECONDS seconds the disk stays full (default 15)
#   FAULTS_STALL_SECONDS seconds the index stays stalled (default 40)
#   FAULTS_STEP_SECONDS seconds between clock steps (default 5)
#   SEALTRAIL_BIN       a release binary already built (else it is built)
# Exit status: 0 when every check passed, 1 when one failed.
set -euo pipefail
cd "$(dirname "$0")/.."
out_md=${1:-bench-faults.md}
cases=${FAULTS_CASES:-kills diskfull smtp stall clock}
want() { [[ " $cases " == *" $1 "* ]]; }
[[ $(id -u) == 0 ]] || { echo "bench/faults.sh mounts tmpfs file systems: run it as root" >&2; exit 2; }

source bench/lib/serve.sh
bench_setup faults
# What this script mounted (faults.py appends its own) and started.
: >"$work/mounts"
: >"$work/pids"
faults_cleanup() {
    local p m
    while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$work/pids"
    # Innermost first (a mount inside a mount).
    tac "$work/mounts" | while read -r m; do
        [[ -n "$m" ]] && umount -l "$m" 2>/dev/null || true
    done
    bench_cleanup
}
trap faults_cleanup EXIT
trap 'exit 130' INT TERM

export DEBIAN_FRONTEND=noninteractive
faketime_lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
if want clock && [[ ! -e $faketime_lib ]]; then
    apt-get install -y --no-install-recommends faketime >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends faketime >&2; }
fi
python3 -c 'import aiosmtpd' 2>/dev/null || { echo "the SMTP sink needs python3-aiosmtpd" >&2; exit 2; }

echo "generating lookups (sealtrail gen)..." >&2
"$bin" gen --days 2 --users 60 --patients 2000 --seed 16 --out "$work/practice" >/dev/null
results="$work/results.ndjson"
: >"$results"
drv=(python3 bench/lib/faults.py)
common=(--work "$work" --bin "$bin" --port "$port" --out "$results" --rules "$PWD/rules"
    --sink "$PWD/tests/support/smtp_sink.py")
status=0
for c in $cases; do
    echo "== fault: $c" >&2
    case $c in
    kills)
        "${drv[@]}" kills "${common[@]}" --kills "${FAULTS_KILLS:-50}" --seed "${FAULTS_SEED:-16}" || status=1 ;;
    diskfull)
        mnt="$work/diskfull-tmpfs"
        mkdir -p "$mnt"
        mount -t tmpfs -o size=64m tmpfs "$mnt"
        echo "$mnt" >>"$work/mounts"
        "${drv[@]}" diskfull "${common[@]}" --mount "$mnt" --size 64m \
            --full-seconds "${FAULTS_FULL_SECONDS:-15}" || status=1
        umount "$mnt" ;;
    smtp)
        "${drv[@]}" smtp "${common[@]}" --down "${FAULTS_SMTP_DOWN:-600}" \
            ${FAULTS_SMTP_RETRY_FOR:+--smtp-retry-for "$FAULTS_SMTP_RETRY_FOR"} || status=1 ;;
    stall)
        "${drv[@]}" stall "${common[@]}" --size 256m --stall-seconds "${FAULTS_STALL_SECONDS:-40}" || status=1 ;;
    clock)
        "${drv[@]}" clock "${common[@]}" --faketime "$faketime_lib" \
            --step-seconds "${FAULTS_STEP_SECONDS:-5}" || status=1 ;;
    *) echo "unknown fault $c" >&2; exit 2 ;;
    esac
done

{
    echo "<!-- bench/faults.sh, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD) -->"
    echo "Command: \`$(env | grep -E '^FAULTS_' | sort | tr '\n' ' ')bash bench/faults.sh $out_md\`"
    echo
    echo "machine: $(nproc) x $(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM"
    echo
    "${drv[@]}" table "$results" "$work/table.md" >/dev/null || true
    cat "$work/table.md"
    echo
    echo '### Raw JSON'
    echo
    echo '```'
    cat "$results"
    echo '```'
} >"$out_md"
"${drv[@]}" table "$results" "$work/table.md" || status=1
echo "written: $out_md" >&2
exit $status
