# Sourced (not run) by the bench scripts that drive a `sealtrail serve`:
# the binary, a work folder, a signing key, loopback ports, start-up and
# clean-up, so that each script holds only its load and its report.
#
#   source bench/lib/serve.sh
#   bench_setup NAME      # bin, work=/tmp/sealtrail-NAME.*, keys, port
#   { serve_base_config; cat <<EOF ... EOF; } >"$work/config.toml"
#   serve_start           # pid; returns once /healthz answers
#
# SEALTRAIL_BIN names a binary already built; otherwise the release binary is
# built in ${CARGO_TARGET_DIR:-target}. Everything started through
# `bench_track` or `serve_start` is stopped, and the work folder removed, on exit.

bench_setup() {
    if [ -z "${SEALTRAIL_BIN:-}" ]; then
        cargo build --release --locked --quiet
    fi
    bin=${SEALTRAIL_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/sealtrail}
    work=$(mktemp -d "/tmp/sealtrail-$1.XXXXXX")
    bench_pids=()
    trap bench_cleanup EXIT
    "$bin" keygen --out "$work/keys" --name bench.example/log >/dev/null
    # Every route but /healthz needs a token: one for the whole bench
    # (sending, searching, scraping), read by `gen --send` and curl.
    SEALTRAIL_TOKEN=$("$bin" token create --data "$work/data" --name bench \
        --role ingest,analyst,responder,auditor,metrics)
    export SEALTRAIL_TOKEN
    # HTTP on $port, syslog on $port + 1 (a fixed default port would collide
    # with other runs on the machine).
    port=$((20000 + RANDOM % 20000))
}

# Stops a background process on exit.
bench_track() {
    bench_pids+=("$1")
}

bench_cleanup() {
    local p
    for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${bench_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}

# The config every bench shares: data and key in the work folder, HTTP and
# syslog on loopback.
serve_base_config() {
    cat <<CONF
data_dir = "$work/data"
[ledger]
key_file = "$work/keys/signing.key"
[http]
listen = "127.0.0.1:$port"
[syslog]
listen = "127.0.0.1:$((port + 1))"
CONF
}

# Starts `sealtrail serve` on CONFIG (default $work/config.toml; log: LOG,
# default $work/serve.log), sets pid and waits up to 60 s for /healthz;
# fails with the log if it does not answer.
serve_start() {
    local config=${1:-$work/config.toml} log=${2:-$work/serve.log}
    "$bin" serve --config "$config" >"$log" 2>&1 &
    pid=$!
    bench_track "$pid"
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "sealtrail serve did not answer /healthz; its log:" >&2
    cat "$log" >&2
    exit 1
}
