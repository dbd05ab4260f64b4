#!/usr/bin/env python3
"""Measuring half of bench/pipeline.sh (the shell starts and stops processes).

  pipeline.py run --name NAME --pid PID --events N --out RESULTS.ndjson
                  [--load CMD ... | --http PORT --ndjson FILE --conns C]
                  [--done file:PATH | sealtrail:PORT | exit] [--disk PATH]
      Starts the load (a command, or this script's own HTTP NDJSON sender),
      waits until the receiver holds all N events, and appends one JSON line:
      events/s (first byte sent -> all held), CPU seconds (user+sys) of PID
      and its descendants, peak RSS (VmHWM) of PID, bytes on disk per event,
      acknowledgement p50/p99 (HTTP), CPU per thread name (sealtrail).
  pipeline.py table RESULTS.ndjson OUT.md
      Prints the ratio table (sealtrail / peer) and writes it, with every raw
      number, as a markdown snippet.

Only the standard library is used.
"""

import argparse
import http.client
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """user+sys seconds of one process (all its threads) and of its children
    that have exited and been waited for (PostgreSQL's COPY backends)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in rest[11:15]) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree_cpu(pid, seen):
    """CPU of PID and its descendants; `seen` keeps the last value of each
    process so that a backend that exited during the run still counts."""
    stack = [pid]
    while stack:
        p = stack.pop()
        c = proc_cpu(p)
        if c or p not in seen:
            seen[p] = max(c, seen.get(p, 0.0))
        stack += children(p)
    return sum(seen.values())


def thread_cpu(pid):
    """{tid: (name, cpu seconds)} from /proc/PID/task/*/stat."""
    out = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                s = f.read()
            name = s[s.index("(") + 1:s.rindex(")")]
            rest = s.rsplit(")", 1)[1].split()
            out[t] = (name, (int(rest[11]) + int(rest[12])) / CLK)
        except (OSError, ValueError, IndexError):
            pass
    return out


def vm_hwm_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def du_bytes(path):
    if os.path.isfile(path):
        return os.stat(path).st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for n in files:
            try:
                total += os.lstat(os.path.join(root, n)).st_blocks * 512
            except OSError:
                pass
    return total


def count_lines(path):
    try:
        with open(path, "rb") as f:
            n = 0
            while True:
                b = f.read(1 << 20)
                if not b:
                    return n
                n += b.count(b"\n")
    except OSError:
        return 0


def metrics(port, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Authorization": f"Bearer {token}"})
    text = urllib.request.urlopen(req, timeout=10).read().decode()
    out = {}
    for m in re.finditer(r"^(sealtrail_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", text, re.M):
        key = m.group(1) + (m.group(2) or "")
        out[key] = float(m.group(3))
    return out


def search_total(port, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/search?q=*&limit=1",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        return json.load(urllib.request.urlopen(req, timeout=30)).get("total")
    except Exception as e:  # reported, not fatal: the metric is the measure
        return f"error: {e}"


def histogram_quantiles(m, name, qs=(0.5, 0.99)):
    """Quantiles (bucket upper bounds) of a Prometheus histogram."""
    buckets = []
    for k, v in m.items():
        mm = re.match(re.escape(name) + r'_bucket\{(?:.*,)?le="([^"]+)"', k)
        if mm:
            le = float("inf") if mm.group(1) == "+Inf" else float(mm.group(1))
            buckets.append((le, v))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return {}
    count = buckets[-1][1]
    out = {}
    for q in qs:
        out[f"p{int(q * 100)}"] = next((le for le, c in buckets if c >= q * count), None)
    out["count"] = int(count)
    return out


class HttpSender:
    """C keep-alive connections, each posting its share of the NDJSON bodies
    (batches of --batch events) and timing each acknowledgement."""

    def __init__(self, port, token, path, conns, batch, rate=0.0):
        with open(path, "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l.strip()]
        self.events = len(lines)
        bodies = [b"\n".join(lines[i:i + batch]) for i in range(0, len(lines), batch)]
        self.shares = [bodies[i::conns] for i in range(conns)]
        # Paced: each connection posts one body every `interval` seconds.
        self.interval = batch * conns / rate if rate else 0.0
        self.port, self.token = port, token
        self.latencies = []
        self.busy = 0
        self.errors = []
        self.lock = threading.Lock()

    def _run(self, bodies):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/x-ndjson",
                   "Authorization": f"Bearer {self.token}"}
        lat = []
        start = time.perf_counter()
        for n, body in enumerate(bodies):
            if self.interval:
                wait = start + n * self.interval - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            while True:
                t0 = time.perf_counter()
                c.request("POST", "/v1/events", body, headers)
                r = c.getresponse()
                r.read()
                if r.status == 503:
                    with self.lock:
                        self.busy += 1
                    time.sleep(0.05)
                    continue
                if r.status != 200:
                    with self.lock:
                        self.errors.append(f"HTTP {r.status}")
                    return
                lat.append(time.perf_counter() - t0)
                break
        c.close()
        with self.lock:
            self.latencies += lat

    def start(self):
        self.threads = [threading.Thread(target=self._run, args=(s,)) for s in self.shares]
        for t in self.threads:
            t.start()

    def wait(self):
        for t in self.threads:
            t.join()


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def run(a):
    token = os.environ.get("SEALTRAIL_TOKEN", "")
    seen = {}
    sender = None
    if a.http:
        sender = HttpSender(a.http, token, a.ndjson, a.conns, a.batch, a.rate)
        a.events = sender.events
    cpu0 = tree_cpu(a.pid, seen)
    threads0 = thread_cpu(a.pid)
    base = metrics(a.done.split(":", 1)[1], token) if a.done.startswith("sealtrail:") else {}
    appended0 = base.get("sealtrail_appended_events", 0)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    load = None
    if sender:
        sender.start()
    elif a.load:
        load = subprocess.Popen(a.load, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    load_seconds = None
    deadline = t0 + a.timeout
    status = "ok"
    extra = {}
    samples = []  # (t, per-thread cpu) for the busiest-thread attribution
    series = []  # (t, appended, indexed, detection position) every poll
    while True:
        now = time.monotonic()
        if load_seconds is None:
            if sender and not any(t.is_alive() for t in sender.threads):
                load_seconds = now - t0
            elif load and load.poll() is not None:
                load_seconds = now - t0
        if a.done.startswith("file:"):
            n = count_lines(a.done[5:])
            if n >= a.events:
                break
            extra["held"] = n
        elif a.done.startswith("sealtrail:"):
            m = metrics(a.done.split(":", 1)[1], token)
            appended = m.get("sealtrail_appended_events", 0)
            indexed = m.get("sealtrail_indexed_events", 0)
            position = m.get("sealtrail_detection_position", 0)
            received = sum(v for k, v in m.items() if k.startswith("sealtrail_events_received_total"))
            queued = sum(v for k, v in m.items() if k.startswith("sealtrail_queue_depth"))
            extra.update(appended=appended - appended0, indexed=indexed, position=position)
            series.append((now, appended, indexed, position))
            # Received counts only what the sources took in; appended also
            # holds the service's own entries (alerts), hence both.
            # HTTP: also every request answered (durable), not only received.
            acked = not sender or not any(t.is_alive() for t in sender.threads)
            if (acked and received >= a.events and appended - appended0 >= a.events and queued == 0
                    and indexed >= appended and position >= appended):
                break
        elif load_seconds is not None:  # exit: the load's end is the end
            break
        if now > deadline:
            status = f"timeout after {a.timeout} s"
            break
        if a.done.startswith("file:") or a.done.startswith("sealtrail:"):
            time.sleep(0.05)
        else:
            time.sleep(0.01)
        if a.done.startswith("sealtrail:") and (not samples or now - samples[-1][0] >= 1.0):
            samples.append((now, thread_cpu(a.pid)))
    t1 = time.monotonic()
    cpu1 = tree_cpu(a.pid, seen)
    threads1 = thread_cpu(a.pid)
    if sender:
        sender.wait()
        if load_seconds is None:
            load_seconds = time.monotonic() - t0
    load_out = ""
    if load:
        try:
            load_out = load.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            load.kill()
            load_out = load.communicate()[0].decode(errors="replace")
        if load.returncode != 0:
            status = f"load exited {load.returncode}: {load_out[-300:]}"
    seconds = t1 - t0
    # The load generator's CPU: loggen/psql (children, reaped above), or this
    # process (the HTTP sender's threads, plus the polling).
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    which = 1 if sender else 0
    client_cpu = (ru1[which].ru_utime + ru1[which].ru_stime) - (ru0[which].ru_utime + ru0[which].ru_stime)
    r = {
        "name": a.name, "round": a.round, "system": a.system, "transport": a.transport, "conns": a.conns,
        "events": a.events, "status": status, "seconds": round(seconds, 3),
        "events_per_s": round(a.events / seconds, 1),
        "load_seconds": round(load_seconds, 3) if load_seconds else None,
        "cpu_s": round(cpu1 - cpu0, 2),
        "cores": round((cpu1 - cpu0) / seconds, 2),
        "events_per_cpu_s": round(a.events / max(cpu1 - cpu0, 1e-9), 1),
        "peak_rss_mib": round(vm_hwm_mib(a.pid), 1),
        "client_cpu_s": round(client_cpu, 2),
        "paced_rate": a.rate or None,
    }
    if a.disk or a.disk_cmd:
        b = du_bytes(a.disk) if a.disk else int(subprocess.check_output(a.disk_cmd, shell=True).split()[-1])
        r["disk_bytes"] = b
        r["bytes_per_event"] = round(b / a.events, 1)
    if sender:
        lat = sorted(sender.latencies)
        r["ack_p50_ms"] = round(pct(lat, 0.5) * 1000, 1) if lat else None
        r["ack_p99_ms"] = round(pct(lat, 0.99) * 1000, 1) if lat else None
        r["requests"] = len(lat)
        r["busy_retries"] = sender.busy
        if sender.errors:
            r["status"] = "errors: " + ", ".join(sorted(set(sender.errors)))
    if a.done.startswith("sealtrail:"):
        port = a.done.split(":", 1)[1]
        m = metrics(port, token)
        r["searchable_total"] = search_total(port, token)
        r["appended"] = int(m.get("sealtrail_appended_events", 0) - appended0)
        r["alerts"] = int(m.get("sealtrail_alerts_total", 0))
        r["alert_latency_s"] = histogram_quantiles(m, "sealtrail_alert_latency_seconds")
        # CPU by thread name over the whole run, and the busiest thread's
        # share in the busiest one-second sample (what saturates first).
        by = {}
        for tid, (name, c) in threads1.items():
            by[name] = by.get(name, 0.0) + c - threads0.get(tid, (name, 0.0))[1]
        r["threads_cpu_s"] = {k: round(v, 2) for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v >= 0.05}
        peak = {}
        for (ta, sa), (tb, sb) in zip(samples, samples[1:]):
            for tid, (name, c) in sb.items():
                share = (c - sa.get(tid, (name, c))[1]) / max(tb - ta, 1e-9)
                if share > peak.get(name, 0.0):
                    peak[name] = share
        # Lag from durable (appended) to searchable (indexed) and to
        # evaluated (detection position), from the polled series: for each
        # poll, how long ago the ledger held what the consumer holds now.
        for key, col in (("append_to_searchable_s", 2), ("append_to_evaluated_s", 3)):
            lags, j = [], 0
            for t, *vals in series:
                target = vals[col - 1]
                if target <= appended0:
                    continue
                while j < len(series) and series[j][1] < target:
                    j += 1
                if j < len(series):
                    lags.append(max(0.0, t - series[j][0]))
            lags.sort()
            r[key] = {"p50": round(pct(lags, 0.5), 2), "p99": round(pct(lags, 0.99), 2),
                      "max": round(lags[-1], 2)} if lags else None
        r["thread_peak_cores"] = {k: round(v, 2) for k, v in sorted(peak.items(), key=lambda kv: -kv[1])[:6]}
    r.update({k: v for k, v in extra.items() if k not in r})
    if load_out:
        r["load_report"] = load_out.strip().splitlines()[-1][:300] if load_out.strip() else ""
    with open(a.out, "a") as f:
        f.write(json.dumps(r) + "\n")
    print(f"  {a.name}: {r['events_per_s']:,.0f} events/s ({a.events} in {seconds:.2f} s), "
          f"{r['cores']} cores, peak RSS {r['peak_rss_mib']} MiB"
          + (f", {r['bytes_per_event']} B/event" if 'bytes_per_event' in r else "")
          + (f", ack p50 {r['ack_p50_ms']} ms p99 {r['ack_p99_ms']} ms" if sender else "")
          + ("" if status == "ok" else f" [{r['status']}]"), flush=True)


def fmt(v, unit=""):
    if v is None:
        return "n/m"
    if isinstance(v, float) and v >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:,}{unit}" if isinstance(v, int) else f"{v:,.2f}{unit}"


def alert_cell(al):
    if not al:
        return "n/a"
    return f"{al.get('p50')} / {al.get('p99')} (n={al.get('count')})"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if n == 0 else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)


def table(a):
    rs = [json.loads(l) for l in open(a.results) if l.strip()]
    by = {}  # (system, transport, conns) -> {round: result}
    for r in rs:
        if r["status"] == "ok":
            by.setdefault((r["system"], r["transport"], r["conns"]), {})[r.get("round", 1)] = r
    pairs = []
    for conns in sorted({r["conns"] for r in rs}):
        st = by.get(("sealtrail", "syslog", conns), {})
        for peer in ("syslog-ng", "rsyslog", "syslog-ng-slog"):
            pairs.append((f"syslog TCP, {conns} conn", st, by.get((peer, "syslog", conns), {}), peer,
                          {"syslog-ng": ">= 1.0x", "syslog-ng-slog": ">= 10x"}.get(peer, "report")))
        pairs.append((f"HTTP NDJSON vs COPY, {conns} conn", by.get(("sealtrail", "http", conns), {}),
                      by.get(("postgres-copy", "copy", conns), {}), "postgres-copy", ">= 2x"))
    rounds = len({r.get("round", 1) for r in rs})
    lines = [f"Medians over {rounds} round(s); the range is the lowest and highest per-round ratio "
             "(sealtrail and peer of the same round, run one after the other).", "",
             "| case | peer | sealtrail events/s | peer events/s | ratio | per-round range | target | "
             "CPU per event, peer / sealtrail |",
             "| --- | --- | ---: | ---: | ---: | --- | --- | ---: |"]
    for case, s, p, peer, target in pairs:
        if not s and not p:
            continue
        se = median([r["events_per_s"] for r in s.values()])
        pe = median([r["events_per_s"] for r in p.values()])
        ratio = se / pe if se and pe else None
        per_round = sorted(s[k]["events_per_s"] / p[k]["events_per_s"] for k in s if k in p)
        rng = f"{per_round[0]:.2f}-{per_round[-1]:.2f}" if per_round else "n/m"
        sc = median([r["cpu_s"] / r["events"] for r in s.values()])
        pc = median([r["cpu_s"] / r["events"] for r in p.values()])
        eff = pc / sc if sc and pc else None
        lines.append(f"| {case} | {peer} | {fmt(se) if se else 'n/m'} | {fmt(pe) if pe else 'n/m'} | "
                     f"{f'**{ratio:.2f}x**' if ratio is not None else 'n/m'} | {rng} | {target} | "
                     f"{f'{eff:.2f}' if eff is not None else 'n/m'} |")
    raw = ["| run | events | status | seconds | events/s | cores | events/CPU-s | client CPU-s | peak RSS MiB | B/event | ack p50/p99 ms | alert p50/p99 s |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rs:
        al = r.get("alert_latency_s") or {}
        raw.append(f"| {r.get('round', 1)}: {r['name']} | {r['events']:,} | {r['status']} | {r['seconds']} | {fmt(r['events_per_s'])} | "
                   f"{r['cores']} | {fmt(r['events_per_cpu_s'])} | {r.get('client_cpu_s', 'n/m')} | {r['peak_rss_mib']} | "
                   f"{r.get('bytes_per_event', 'n/m')} | "
                   f"{(str(r['ack_p50_ms']) + ' / ' + str(r['ack_p99_ms'])) if 'ack_p50_ms' in r else 'n/a'} | "
                   f"{alert_cell(al)} |")
    paced = [r for r in rs if r["transport"].endswith("-paced")]
    if paced:
        raw += ["", "### sealtrail at half its maximum rate (paced)", "",
                "| run | paced at events/s | achieved events/s | cores | peak RSS MiB | ack p50/p99 ms | "
                "newest searchable entry age p50/p99 s | newest evaluated entry age p50/p99 s | "
                "ingest-to-alert p50/p99 s (service histogram) |",
                "| --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- |"]
        for r in paced:
            sa, ev = r.get("append_to_searchable_s") or {}, r.get("append_to_evaluated_s") or {}
            raw.append(f"| {r.get('round', 1)}: {r['name']} | {fmt(r['paced_rate'])} | {fmt(r['events_per_s'])} | "
                       f"{r['cores']} | {r['peak_rss_mib']} | "
                       f"{(str(r['ack_p50_ms']) + ' / ' + str(r['ack_p99_ms'])) if 'ack_p50_ms' in r else 'n/a'} | "
                       f"{sa.get('p50')} / {sa.get('p99')} | {ev.get('p50')} / {ev.get('p99')} | "
                       f"{alert_cell(r.get('alert_latency_s'))} |")
    threads = []
    for r in rs:
        if r["system"] == "sealtrail":
            threads.append(f"- round {r.get('round', 1)}, {r['name']}: CPU-s by thread {r.get('threads_cpu_s')}; "
                           f"busiest 1-s sample (cores) {r.get('thread_peak_cores')}; "
                           f"searchable total {r.get('searchable_total')}, alerts {r.get('alerts')}; "
                           f"age of the newest searchable entry at each poll (s) {r.get('append_to_searchable_s')}, "
                           f"of the newest evaluated one {r.get('append_to_evaluated_s')}")
    out = "\n".join(["### Ratios (sealtrail / peer, events/s until all held)", "", *lines, "",
                     "### Raw numbers", "", *raw, "", "### sealtrail threads", "", *threads, ""])
    print(out)
    with open(a.md, "w") as f:
        f.write(out)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--name", required=True)
    r.add_argument("--round", type=int, default=1)
    r.add_argument("--system", required=True)
    r.add_argument("--transport", required=True)
    r.add_argument("--conns", type=int, required=True)
    r.add_argument("--pid", type=int, required=True)
    r.add_argument("--events", type=int, default=0)
    r.add_argument("--out", required=True)
    r.add_argument("--done", default="exit")
    r.add_argument("--disk")
    r.add_argument("--disk-cmd", help="shell command printing the bytes on disk")
    r.add_argument("--timeout", type=float, default=600)
    r.add_argument("--http", type=int)
    r.add_argument("--ndjson")
    r.add_argument("--batch", type=int, default=1000)
    r.add_argument("--rate", type=float, default=0.0, help="HTTP: pace to this many events/s in total")
    r.add_argument("--load", nargs=argparse.REMAINDER)
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("md")
    a = p.parse_args()
    run(a) if a.cmd == "run" else table(a)


if __name__ == "__main__":
    main()
