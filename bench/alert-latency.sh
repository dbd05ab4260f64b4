#!/usr/bin/env bash
# Ingest-to-alert latency under load: `sealtrail serve` with the shipped rule
# pack takes a steady stream of chart views (RATE events/s, event time =
# now) over HTTP while, every second, a break-glass access (a detection
# rule) and a burst of 8 failed logins for a fresh user (a correlation:
# failed_login_burst) arrive. The service measures each alert from the
# `received` time of the event that completed it to the alert being durable
# (`sealtrail_alert_latency_seconds`); this script prints that histogram's
# p50/p99 (bucket upper bounds) and checks every expected alert was raised.
#
#   bash bench/alert-latency.sh [SECONDS=30] [RATE=2000] [LATENESS=2s]
#
# LATENESS defaults to the service's default (`[rules] allowed_lateness`).
# SEALTRAIL_BIN: a binary already built (otherwise the release one is built).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
rate=${2:-2000}
lateness=${3:-2s}
source bench/lib/serve.sh
bench_setup alerts
{
    serve_base_config
    cat <<EOF
[rules]
dir = "$PWD/rules"
allowed_lateness = "$lateness"
EOF
} >"$work/config.toml"
serve_start
python3 - "$port" "$seconds" "$rate" <<'PY'
import json, sys, time, urllib.request, datetime, re
port, seconds, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
url = f"http://127.0.0.1:{port}"
def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
def post(events):
    body = "\n".join(json.dumps(e) for e in events).encode()
    req = urllib.request.Request(url + "/v1/events", body, {"content-type": "application/x-ndjson"})
    urllib.request.urlopen(req).read()
tick = 0.25
per_tick = max(1, int(rate * tick))
start = time.monotonic()
n = 0
glass = bursts = k = 0
while time.monotonic() - start < seconds:
    t0 = time.monotonic()
    events = [{"time": now(), "category": "access", "action": "view", "outcome": "success",
               "actor": {"user": f"u{(n + i) % 50:04d}", "role": "night_nurse", "ip": "10.20.1.7"},
               "patient": {"id": f"MRN-{(n + i) % 5000:07d}"}, "resource": {"type": "chart"},
               "source": {"system": "ehr"}, "reason": "treatment", "message": "Viewed chart"}
              for i in range(per_tick)]
    n += per_tick
    k += 1
    if k % 4 == 1:  # once a second
        events.append({"time": now(), "category": "access", "action": "break_glass", "outcome": "success",
                       "actor": {"user": "u0001", "role": "nurse", "ip": "10.20.1.8"},
                       "patient": {"id": f"MRN-9{glass:06d}"}, "reason": "break_glass",
                       "source": {"system": "ehr"}, "message": "Emergency access"})
        glass += 1
        events.extend({"time": now(), "category": "auth", "action": "login", "outcome": "failure",
                       "actor": {"user": f"burst{bursts:05d}", "ip": "203.0.113.9"},
                       "source": {"system": "sso"}, "message": "Sign-in failed"} for _ in range(8))
        bursts += 1
    post(events)
    time.sleep(max(0.0, tick - (time.monotonic() - t0)))
elapsed = time.monotonic() - start
# Wait until every expected alert is listed rather than a fixed time.
def alerts_by_title():
    out = {}
    for a in json.load(urllib.request.urlopen(url + "/v1/alerts?limit=1000"))["alerts"]:
        out[a["title"]] = out.get(a["title"], 0) + 1
    return out
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    by_rule = alerts_by_title()
    if (by_rule.get("Break-glass access", 0) >= glass
            and by_rule.get("Burst of failed logins for one account", 0) >= bursts):
        break
    time.sleep(0.1)
metrics = urllib.request.urlopen(url + "/metrics").read().decode()
buckets = [(float(m.group(1)) if m.group(1) != "+Inf" else float("inf"), int(m.group(2)))
           for m in re.finditer(r'sealtrail_alert_latency_seconds_bucket\{le="([^"]+)"\} (\d+)', metrics)]
count = buckets[-1][1] if buckets else 0
def quantile(q):
    for le, c in buckets:
        if c >= q * count:
            return le
    return float("nan")
print(f"load: {n + glass + 8 * bursts} events in {elapsed:.1f} s ({(n + glass + 8 * bursts) / elapsed:.0f} events/s); "
      f"{glass} break-glass accesses, {bursts} failed-login bursts sent")
print(f"alerts: {by_rule}")
print(f"ingest-to-alert latency over {count} alerts: p50 <= {quantile(0.5)} s, p99 <= {quantile(0.99)} s "
      f"(histogram bucket bounds)")
ok = (by_rule.get("Break-glass access", 0) >= glass
      and by_rule.get("Burst of failed logins for one account", 0) >= bursts - 1 and count > 0)
sys.exit(0 if ok else 1)
PY
