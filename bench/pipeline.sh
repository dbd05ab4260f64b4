#!/usr/bin/env bash
# The whole pipeline against its peers, in one run on the same events
# (issue #16): `sealtrail serve` with everything on (ledger with fsync,
# index, the shipped rule pack with lookups, response with a local SMTP
# sink) and, alternately with it, plain syslog-ng and rsyslog writing a file,
# syslog-ng with its `slog` secure-logging template, and PostgreSQL COPY into
# an indexed audit table.
#
#   bash bench/pipeline.sh [OUT.md]       (default: bench-pipeline.md)
#
# Loads (each case starts from an empty receiver):
# - syslog TCP: `loggen -P -S -s 300` (RFC 5424, octet-counted, ~300-byte
#   messages) at 1 and 4 connections to sealtrail, syslog-ng, rsyslog and
#   syslog-ng+slog; the same loggen command for each.
# - HTTP NDJSON: the practice's events from `sealtrail gen` (batches of
#   1,000, keep-alive, 1 and 4 connections) to sealtrail, and the same
#   events as CSV through `\copy` (1 and 4 parallel psql) into PostgreSQL.
# A case ends when the receiver holds every event: sealtrail when
# `indexed_events` and `detection_position` reach `appended_events` (all
# searchable and evaluated), the file peers when the file has every line,
# PostgreSQL when every COPY has committed.
#
# Environment (counts are kept modest so a run takes a few minutes):
#   PIPE_SYSLOG_EVENTS  loggen messages per syslog case (default 500000)
#   PIPE_SLOG_EVENTS    messages for the slog peer, which is far slower (default 50000)
#   PIPE_GEN_DAYS/PIPE_GEN_USERS/PIPE_GEN_PATIENTS  the practice (default 30/100/5000)
#   PIPE_CONNS          connection counts (default "1 4")
#   PIPE_ROUNDS         rounds of every case, the table takes medians (default 3)
#   PIPE_PACED          1 (default): then sealtrail again at half its median maximum
#                       (loggen -r / paced HTTP) for latencies; 0 skips it
#   PIPE_CASES          subset of "sealtrail-syslog syslog-ng rsyslog slog sealtrail-http postgres"
#   SEALTRAIL_BIN       a release binary already built (else it is built)
# Needs: syslog-ng-core, syslog-ng-mod-slog (installed with apt if missing);
# rsyslog, whose package conflicts with syslog-ng-core, is unpacked with
# `apt-get download` + `dpkg-deb -x` into ${PIPE_CACHE:-/tmp/sealtrail-pipeline-cache};
# PostgreSQL through bench/search-postgres.sh. Run as root or as a user that
# may install (or has installed) them.
set -euo pipefail
cd "$(dirname "$0")/.."
out_md=${1:-bench-pipeline.md}
syslog_n=${PIPE_SYSLOG_EVENTS:-500000}
slog_n=${PIPE_SLOG_EVENTS:-50000}
conns_list=${PIPE_CONNS:-1 4}
cases=${PIPE_CASES:-sealtrail-syslog syslog-ng rsyslog slog sealtrail-http postgres}
cache=${PIPE_CACHE:-/tmp/sealtrail-pipeline-cache}
want() { [[ " $cases " == *" $1 "* ]]; }

source bench/lib/serve.sh
bench_setup pipeline
pg_dir=""
pipeline_cleanup() {
    bench_cleanup
    if [[ -n "$pg_dir" ]]; then bash bench/search-postgres.sh stop "$pg_dir" >/dev/null 2>&1 || true; fi
}
trap pipeline_cleanup EXIT
# A signal ends the script through exit, so the EXIT trap stops everything.
trap 'exit 130' INT TERM
results="$work/results.ndjson"
probe=(python3 bench/lib/pipeline.py)

# --- peers' software -------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
apt_updated=""
apt_install() {
    [[ -n "$apt_updated" ]] || { apt-get update >&2; apt_updated=1; }
    apt-get install -y --no-install-recommends "$@" >&2
}
if ! command -v loggen >/dev/null || ! command -v syslog-ng >/dev/null ||
    [[ ! -e /usr/lib/syslog-ng/3.38/libsecure-logging.so && -z "$(ls /usr/lib/syslog-ng/*/libsecure-logging.so 2>/dev/null)" ]]; then
    apt_install syslog-ng-core syslog-ng-mod-slog
fi
rsyslogd=""
rsyslog_mods=""
if want rsyslog; then
    if [[ ! -x "$cache/rsyslog/usr/sbin/rsyslogd" ]]; then
        [[ -n "$apt_updated" ]] || { apt-get update >&2; apt_updated=1; }
        mkdir -p "$cache/debs" && rm -rf "$cache/rsyslog"
        (cd "$cache/debs" && apt-get download rsyslog libestr0 libfastjson4 liblognorm5 >&2)
        for d in "$cache"/debs/*.deb; do dpkg-deb -x "$d" "$cache/rsyslog"; done
    fi
    rsyslogd="$cache/rsyslog/usr/sbin/rsyslogd"
    rsyslog_mods="$cache/rsyslog/usr/lib/x86_64-linux-gnu/rsyslog"
fi

# --- the practice, the SMTP sink, st_start / stop_pid: bench/lib/full.sh ------
source bench/lib/full.sh
full_setup

# --- syslog-ng (plain or slog) and rsyslog ----------------------------------------
peer_port=$((port + 2))
sng_start() {  # $1 = dir, $2 = plain|slog; sets peer_pid
    local d=$1 tmpl=""
    mkdir -p "$d"
    if [[ $2 == slog ]]; then
        slogkey -m "$d/master.key" >/dev/null
        slogkey -d "$d/master.key" 00:00:5e:00:53:01 bench-1 "$d/host.key" >/dev/null
        tmpl=" template(\"\$(slog -k $d/host.key -m $d/mac.dat \\\"\$R_DATE \$HOST \$MSGHDR\$MSG\\\")\\n\")"
    fi
    cat >"$d/syslog-ng.conf" <<EOF
@version: 3.38
options { keep_hostname(yes); stats_freq(0); log_fifo_size(100000); };
source s { syslog(ip(127.0.0.1) port($peer_port) transport("tcp") max-connections(64) log_iw_size(64000)); };
destination d { file("$d/out.log"$tmpl); };
log { source(s); destination(d); };
EOF
    syslog-ng -F -f "$d/syslog-ng.conf" --no-caps -R "$d/persist" -p "$d/pid" -c "$d/ctl" \
        >"$d/syslog-ng.log" 2>&1 &
    peer_pid=$!
    bench_track "$peer_pid"
    wait_port "$peer_port" "$peer_pid" "$d/syslog-ng.log"
}
rsyslog_start() {  # $1 = dir; sets peer_pid
    local d=$1
    mkdir -p "$d"
    cat >"$d/rsyslog.conf" <<EOF
global(workDirectory="$d")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="$peer_port")
*.* action(type="omfile" file="$d/out.log")
EOF
    LD_LIBRARY_PATH="$cache/rsyslog/usr/lib/x86_64-linux-gnu" \
        "$rsyslogd" -n -f "$d/rsyslog.conf" -i "$d/pid" -M "$rsyslog_mods" >"$d/rsyslog.log" 2>&1 &
    peer_pid=$!
    bench_track "$peer_pid"
    wait_port "$peer_port" "$peer_pid" "$d/rsyslog.log"
}
wait_port() {  # $1 port, $2 pid, $3 log
    for _ in $(seq 1 100); do
        (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "peer on port $1 did not start; its log:" >&2
    cat "$3" >&2
    exit 1
}
loggen_cmd() {  # $1 port, $2 conns, $3 total messages
    echo loggen -Q -I 100000 -P -S -s 300 -r 100000000 -n $(($3 / $2)) --active-connections "$2" 127.0.0.1 "$1"
}

# --- PostgreSQL: a private cluster, the table, the events as CSV -----------------
pg_port=""
if want postgres; then
    pg_line=$(bash bench/search-postgres.sh 2>"$work/pg.err")
    pg_dir=$(sed -n 's/.* running in \([^ ]*\) on port.*/\1/p' "$work/pg.err")
    pg_port=${pg_line##*:}
    pg_port=${pg_port%%/*}
    pg_version=$(head -1 "$work/pg.err" | sed 's/ running in.*//')
    pg_pid=$(head -1 "$pg_dir/data/postmaster.pid")
    psql_() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres "$@"; }
    pg_table() {
        psql_ <<'SQL'
DROP TABLE IF EXISTS audit_events;
CREATE TABLE audit_events (
    idx bigserial PRIMARY KEY, time timestamptz NOT NULL, category text, action text,
    outcome text, actor_user text, actor_role text, actor_ip inet, patient_id text,
    resource_type text, resource_id text, source_system text, reason text,
    message text, attrs jsonb);
CREATE INDEX ON audit_events (actor_user, time DESC);
CREATE INDEX ON audit_events (patient_id, time);
CREATE INDEX ON audit_events (action, outcome, time);
CREATE INDEX ON audit_events (time);
CHECKPOINT;
SQL
    }
    # The conversion is not timed: PostgreSQL gets its rows ready-made.
    python3 - "$work/practice/events.ndjson" "$work/pg" $conns_list <<'PY'
import csv, ipaddress, json, os, sys
src, out, conns = sys.argv[1], sys.argv[2], [int(c) for c in sys.argv[3:]]
os.makedirs(out, exist_ok=True)
rows = []
for line in open(src):
    if not line.strip():
        continue
    e = json.loads(line)
    g = lambda o, k: (e.get(o) or {}).get(k)
    ip = g("actor", "ip")
    try:
        ipaddress.ip_address(ip or "")
    except ValueError:
        ip = None
    rows.append([e["time"], e.get("category"), e.get("action"), e.get("outcome"), g("actor", "user"),
                 g("actor", "role"), ip, g("patient", "id"), g("resource", "type"), g("resource", "id"),
                 g("source", "system"), e.get("reason"), e.get("message"),
                 json.dumps(e["attrs"]) if e.get("attrs") is not None else None])
for c in conns:
    for i in range(c):
        with open(f"{out}/c{c}-{i}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows[i::c])
PY
fi
copy_cmd() {  # $1 conns: a shell command running $1 parallel \copy
    local i s=""
    for ((i = 0; i < $1; i++)); do
        s+="psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $pg_port -U postgres -d postgres -c \"\\copy audit_events(time,category,action,outcome,actor_user,actor_role,actor_ip,patient_id,resource_type,resource_id,source_system,reason,message,attrs) from '$work/pg/c$1-$i.csv' csv\" & "
    done
    echo "${s}wait"
}

# --- the run --------------------------------------------------------------------
# One function per case; every case starts from an empty receiver.
case_syslog_ng() {  # $1 conns, $2 round
    local d="$work/sng-$1-$2"
    sng_start "$d" plain
    "${probe[@]}" run --round "$2" --name "syslog-ng file, $1 conn" --system syslog-ng --transport syslog \
        --conns "$1" --pid "$peer_pid" --events "$syslog_n" --out "$results" --done "file:$d/out.log" \
        --disk "$d/out.log" --load $(loggen_cmd "$peer_port" "$1" "$syslog_n")
    stop_pid "$peer_pid"; rm -rf "$d"
}
case_slog() {
    local d="$work/slog-$1-$2"
    sng_start "$d" slog
    "${probe[@]}" run --round "$2" --name "syslog-ng slog, $1 conn" --system syslog-ng-slog --transport syslog \
        --conns "$1" --pid "$peer_pid" --events "$slog_n" --out "$results" --done "file:$d/out.log" \
        --disk "$d/out.log" --load $(loggen_cmd "$peer_port" "$1" "$slog_n")
    stop_pid "$peer_pid"; rm -rf "$d"
}
case_rsyslog() {
    local d="$work/rsyslog-$1-$2"
    rsyslog_start "$d"
    "${probe[@]}" run --round "$2" --name "rsyslog file, $1 conn" --system rsyslog --transport syslog \
        --conns "$1" --pid "$peer_pid" --events "$syslog_n" --out "$results" --done "file:$d/out.log" \
        --disk "$d/out.log" --load $(loggen_cmd "$peer_port" "$1" "$syslog_n")
    stop_pid "$peer_pid"; rm -rf "$d"
}
case_sealtrail_syslog() {
    st_start "syslog-$1-$2"
    "${probe[@]}" run --round "$2" --name "sealtrail syslog, $1 conn" --system sealtrail --transport syslog \
        --conns "$1" --pid "$st_pid" --events "$syslog_n" --out "$results" --done "sealtrail:$port" \
        --disk "$st_dir/data" --load $(loggen_cmd "$((port + 1))" "$1" "$syslog_n")
    stop_pid "$st_pid"; rm -rf "$st_dir"
}
case_postgres() {
    pg_table
    "${probe[@]}" run --round "$2" --name "PostgreSQL COPY, $1 conn" --system postgres-copy --transport copy \
        --conns "$1" --pid "$pg_pid" --events "$http_n" --out "$results" --done exit \
        --disk-cmd "psql -X -At -h 127.0.0.1 -p $pg_port -U postgres -d postgres -c \"select pg_total_relation_size('audit_events')\"" \
        --load bash -c "$(copy_cmd "$1")"
}
case_sealtrail_http() {
    st_start "http-$1-$2"
    "${probe[@]}" run --round "$2" --name "sealtrail HTTP NDJSON, $1 conn" --system sealtrail --transport http \
        --conns "$1" --pid "$st_pid" --out "$results" --done "sealtrail:$port" --disk "$st_dir/data" \
        --http "$port" --ndjson "$work/practice/events.ndjson"
    stop_pid "$st_pid"; rm -rf "$st_dir"
}

rounds=${PIPE_ROUNDS:-3}
echo "machine: $(nproc) x $(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM; uptime at start:$(uptime)" | tee "$work/machine.txt" >&2
for ((round = 1; round <= rounds; round++)); do
    for c in $conns_list; do
        echo "== round $round: syslog TCP, $c connection(s), $syslog_n messages (slog: $slog_n); HTTP/COPY $http_n practice events" >&2
        # Alternate who goes first, so neither side always meets the machine
        # in the same state.
        if ((round % 2)); then
            order="sealtrail-syslog syslog-ng rsyslog slog sealtrail-http postgres"
        else
            order="syslog-ng rsyslog slog sealtrail-syslog postgres sealtrail-http"
        fi
        for k in $order; do
            want "$k" || continue
            "case_${k//-/_}" "$c" "$round"
        done
    done
done

# --- sealtrail at half its maximum rate: latencies, not throughput ---------------
# The rate is half the median of this run's unpaced results for the case.
half_rate() {  # $1 transport, $2 conns
    python3 - "$results" "$1" "$2" <<'PY'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
v = [r["events_per_s"] for r in rs if r["system"] == "sealtrail" and r["transport"] == sys.argv[2]
     and r["conns"] == int(sys.argv[3]) and r["status"] == "ok"]
print(int(statistics.median(v) / 2) if v else 0)
PY
}
case_paced_syslog() {  # $1 conns
    local rate
    rate=$(half_rate syslog "$1")
    ((rate > 0)) || return 0
    st_start "paced-syslog-$1"
    "${probe[@]}" run --name "sealtrail syslog paced, $1 conn" --system sealtrail --transport syslog-paced \
        --conns "$1" --pid "$st_pid" --events "$syslog_n" --out "$results" --done "sealtrail:$port" \
        --rate "$rate" --disk "$st_dir/data" \
        --load loggen -Q -I 100000 -P -S -s 300 -r $((rate / $1)) -n $((syslog_n / $1)) --active-connections "$1" 127.0.0.1 $((port + 1))
    stop_pid "$st_pid"; rm -rf "$st_dir"
}
case_paced_http() {
    local rate
    rate=$(half_rate http "$1")
    ((rate > 0)) || return 0
    st_start "paced-http-$1"
    "${probe[@]}" run --name "sealtrail HTTP NDJSON paced, $1 conn" --system sealtrail --transport http-paced \
        --conns "$1" --pid "$st_pid" --out "$results" --done "sealtrail:$port" --disk "$st_dir/data" \
        --http "$port" --ndjson "$work/practice/events.ndjson" --rate "$rate"
    stop_pid "$st_pid"; rm -rf "$st_dir"
}
if [[ "${PIPE_PACED:-1}" == 1 ]]; then
    for c in $conns_list; do
        echo "== sealtrail at half its maximum rate, $c connection(s)" >&2
        if want sealtrail-syslog; then case_paced_syslog "$c"; fi
        if want sealtrail-http; then case_paced_http "$c"; fi
    done
fi
echo "uptime at end:$(uptime)" >>"$work/machine.txt"

{
    echo "<!-- bench/pipeline.sh, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD) -->"
    echo "Command: \`$(env | grep -E '^PIPE_' | sort | tr '\n' ' ')bash bench/pipeline.sh $out_md\`"
    echo
    cat "$work/machine.txt"
    echo
    echo "Events: syslog $syslog_n loggen messages per case (slog $slog_n), HTTP/COPY $http_n practice events (sealtrail gen)${pg_version:+; $pg_version}."
    echo
    "${probe[@]}" table "$results" "$work/table.md" >/dev/null
    cat "$work/table.md"
    echo "### Raw JSON"
    echo
    echo '```'
    cat "$results"
    echo '```'
} >"$out_md"
cat "$work/table.md"
echo "written: $out_md" >&2
