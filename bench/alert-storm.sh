#!/usr/bin/env bash
# Alert storm: `sealtrail serve` with a local SMTP server
# (tests/support/smtp_sink.py, aiosmtpd) takes, within SECONDS, STORM break-glass
# accesses (a detection rule without a group: one alert each, all in one
# incident) and USERS failed logins of distinct accounts (a correlation
# grouped by account, `gte: 1`: one alert and one incident each). Prints the
# number of alerts and emails (grouping), the service's RSS before and after,
# and the alert-to-email-accepted latency (alert event time -> the SMTP
# server's acceptance) over the per-account emails, p50/p99.
#
#   bash bench/alert-storm.sh [SECONDS=60] [STORM=10000] [USERS=1000]
# RESPONSE=false runs the same load with incident response off (the RSS
# baseline of ingest, index and detection).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
storm=${2:-10000}
users=${3:-1000}
# SEALTRAIL_BIN: an already built release binary (skips the build).
source bench/lib/serve.sh
bench_setup storm
mkdir -p "$work/rules/playbooks" "$work/mail"
cat >"$work/rules/storm.yml" <<'EOF2'
title: Break-glass access
id: break-glass
level: high
detection:
  sel:
    reason: break_glass
  condition: sel
---
title: Failed login
id: failed-login
level: low
detection:
  sel:
    action: login
    outcome: failure
  condition: sel
---
title: Failed login of an account
id: per-account
level: high
correlation:
  type: event_count
  rules: [failed-login]
  group-by: [actor.user]
  timespan: 1m
  condition: {gte: 1}
EOF2
cat >"$work/rules/playbooks/page.yml" <<'EOF2'
name: page
match: {severity: [high]}
steps:
  - open_incident
  - email:
      level: current
      subject: "{{title}} | {{group}}"
  - wait_ack
  - escalate
EOF2
# The sink (aiosmtpd) stops when its stdin closes: a fifo this shell holds open.
mkfifo "$work/smtp.in"
exec 3<>"$work/smtp.in"
python3 tests/support/smtp_sink.py --dir "$work/mail" <"$work/smtp.in" >"$work/smtp.out" &
smtp_pid=$!
bench_track "$smtp_pid"
for _ in $(seq 1 100); do grep -q PORT "$work/smtp.out" 2>/dev/null && break; sleep 0.05; done
smtp_port=$(awk '{print $2}' "$work/smtp.out")
{
    serve_base_config
    cat <<EOF2
[rules]
dir = "$work/rules"
allowed_lateness = "200ms"
[smtp]
host = "127.0.0.1"
port = $smtp_port
starttls = "never"
[response]
enabled = ${RESPONSE:-true}
group_wait = "0s"
group_interval = "5m"
[[oncall.levels]]
name = "primary"
emails = ["oncall@clinic.example"]
ack_timeout = "1h"
EOF2
} >"$work/config.toml"
serve_start
python3 - "$port" "$seconds" "$storm" "$users" "$pid" "$work/mail" "${RESPONSE:-true}" <<'PY'
import datetime, glob, json, os, sys, time, urllib.parse, urllib.request
port, seconds, storm, users, pid, mail = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
response = sys.argv[7] == "true"
url = f"http://127.0.0.1:{port}"
def rss():
    with open(f"/proc/{pid}/status") as f:
        d = dict(l.split(":", 1) for l in f)
    return int(d["VmRSS"].split()[0]) // 1024, int(d["VmHWM"].split()[0]) // 1024
def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
def post(events):
    body = "\n".join(json.dumps(e) for e in events).encode()
    urllib.request.urlopen(urllib.request.Request(url + "/v1/events", body, {"content-type": "application/x-ndjson"})).read()
def get(path, **q):
    return json.load(urllib.request.urlopen(url + path + "?" + urllib.parse.urlencode(q)))
before = rss()
tick = 0.25
ticks = int(seconds / tick)
start = time.monotonic()
sent_storm = sent_users = 0
for t in range(ticks):
    t0 = time.monotonic()
    want_storm = storm * (t + 1) // ticks
    want_users = users * (t + 1) // ticks
    events = [{"time": now(), "category": "access", "action": "view", "outcome": "success", "reason": "break_glass",
               "actor": {"user": f"u{i % 100:04d}"}, "patient": {"id": f"MRN-{i:07d}"}}
              for i in range(sent_storm, want_storm)]
    events += [{"time": now(), "category": "auth", "action": "login", "outcome": "failure",
                "actor": {"user": f"acct{i:05d}", "ip": "10.0.0.1"}} for i in range(sent_users, want_users)]
    sent_storm, sent_users = want_storm, want_users
    if events:
        post(events)
    time.sleep(max(0.0, tick - (time.monotonic() - t0)))
sent_for = time.monotonic() - start
# Wait for every per-account email (and the storm's one).
deadline = time.monotonic() + (120 if response else 0)
while time.monotonic() < deadline and len(glob.glob(mail + "/*.json")) < users + 1:
    time.sleep(0.2)
time.sleep(2)  # let stragglers (there should be none) arrive before counting
after = rss()
msgs = [json.load(open(f)) for f in sorted(glob.glob(mail + "/*.json"))]
storm_mails = [m for m in msgs if m["subject"].startswith("Break-glass")]
acct_mails = {}
for f in sorted(glob.glob(mail + "/*.json")):
    m = json.load(open(f))
    if "actor.user=" in m["subject"]:
        # The sink writes then renames each message: mtime = acceptance.
        acct_mails[m["subject"].split("actor.user=")[1].strip()] = os.path.getmtime(f)
alerts = {}
cursor = None
while True:
    q = {"q": "action:alert AND resource.id:per-account", "limit": 1000}
    if cursor: q["cursor"] = cursor
    r = get("/v1/search", **q)
    for h in r["hits"]:
        e = h["event"]
        t = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
        alerts[e["attrs"]["group"]["actor.user"]] = t
    cursor = r.get("cursor")
    if not cursor or not r["hits"]:
        break
storm_alerts = get("/v1/alerts", rule="break-glass", limit=1)["total"]
lat = sorted(acct_mails[u] - alerts[u] for u in acct_mails if u in alerts)
inc = get("/v1/incidents", limit=1000)["incidents"] if response else []
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print(f"sent {storm} break-glass + {users} failed logins in {sent_for:.1f} s")
print(f"alerts: break-glass {storm_alerts}, per-account {len(alerts)}; incidents listed {len(inc)}")
print(f"emails: {len(msgs)} total, {len(storm_mails)} for the break-glass storm, {len(acct_mails)} per-account")
print(f"rss MiB: before {before[0]}, after {after[0]} (peak {after[1]})")
print(f"alert -> email accepted (s): p50 {pct(0.5):.3f}  p99 {pct(0.99):.3f}  max {lat[-1] if lat else float('nan'):.3f}  (n={len(lat)})")
PY
