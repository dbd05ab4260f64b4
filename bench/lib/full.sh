# sealtrail with everything on, for the whole-pipeline benches (pipeline.sh,
# soak.sh). Sourced after bench/lib/serve.sh's `bench_setup`.
#
#   full_setup            # the practice (events + lookups, sets http_n) and the SMTP sink
#   st_start NAME         # a fresh data directory, `sealtrail serve`; sets st_pid, st_dir
#   stop_pid PID          # SIGTERM, then wait for the exit

full_setup() {
    # --- the practice (HTTP events, lookups) -------------------------------------
    echo "generating the practice (sealtrail gen)..." >&2
    "$bin" gen --days "${PIPE_GEN_DAYS:-30}" --users "${PIPE_GEN_USERS:-100}" \
        --patients "${PIPE_GEN_PATIENTS:-5000}" --seed 16 --out "$work/practice" >&2
    http_n=$(grep -c . "$work/practice/events.ndjson")

    # --- the SMTP sink: stops when its stdin (a fifo held by this shell) closes --
    mkdir -p "$work/mail"
    mkfifo "$work/smtp.in"
    # fd 3 stays open in the shell that sourced this file.
    exec 3<>"$work/smtp.in"
    python3 tests/support/smtp_sink.py --no-write --dir "$work/mail" <"$work/smtp.in" >"$work/smtp.out" 2>&1 &
    bench_track $!
    for _ in $(seq 1 100); do grep -q PORT "$work/smtp.out" 2>/dev/null && break; sleep 0.05; done
    smtp_port=$(awk '/PORT/ {print $2}' "$work/smtp.out")
}

# --- sealtrail: a fresh data directory per case --------------------------------
st_pid=""
st_start() {  # $1 = case name; sets st_pid, st_dir, SEALTRAIL_TOKEN
    st_dir="$work/st-$1"
    mkdir -p "$st_dir"
    SEALTRAIL_TOKEN=$("$bin" token create --data "$st_dir/data" --name bench \
        --role ingest,analyst,responder,auditor,metrics)
    export SEALTRAIL_TOKEN
    cat >"$st_dir/config.toml" <<EOF
data_dir = "$st_dir/data"
[ledger]
key_file = "$work/keys/signing.key"
[http]
listen = "127.0.0.1:$port"
[syslog]
listen = "127.0.0.1:$((port + 1))"
[lookups]
dir = "$work/practice"
[rules]
dir = "$PWD/rules"
[smtp]
host = "127.0.0.1"
port = $smtp_port
starttls = "never"
[response]
enabled = true
[[oncall.levels]]
name = "primary"
emails = ["oncall@clinic.example"]
ack_timeout = "1h"
EOF
    serve_start "$st_dir/config.toml" "$st_dir/serve.log"
    st_pid=$pid
}
stop_pid() {  # SIGTERM, then wait for the exit
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
