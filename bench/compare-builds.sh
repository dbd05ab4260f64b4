#!/usr/bin/env bash
# Builds side by side on the whole pipeline: the sealtrail cases of
# bench/pipeline.sh for each release binary given, alternating, with the
# order flipped every round (a shared machine drifts; events per CPU-second
# is the figure to compare when the load changes).
#
#   bash bench/compare-builds.sh NAME=BINARY NAME=BINARY ...
#
# Environment: ROUNDS (3), CASES ("sealtrail-syslog sealtrail-http"),
# CONNS (1), OUT (bench-compare.txt: the raw rows of every run, prefixed with
# the build's name and round); each run's full output is OUT.NAME-ROUND.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
out=${OUT:-bench-compare.txt}
: >"$out"
for r in $(seq 1 "$rounds"); do
    list=("$@")
    if ((r % 2 == 0)); then mapfile -t list < <(printf '%s\n' "$@" | tac); fi
    for nb in "${list[@]}"; do
        name=${nb%%=*} b=${nb#*=}
        PIPE_CASES="${CASES:-sealtrail-syslog sealtrail-http}" PIPE_ROUNDS=1 PIPE_CONNS="${CONNS:-1}" \
            PIPE_PACED=0 SEALTRAIL_BIN="$b" bash bench/pipeline.sh "$out.$name-$r.md" >/dev/null 2>&1
        grep '^| 1: sealtrail' "$out.$name-$r.md" | sed "s/^/$name r$r /" >>"$out"
    done
done
cat "$out"
