#!/usr/bin/env python3
"""Measuring half of bench/soak.sh (the shell starts and stops processes).

  soak.py --pid PID --port PORT --log SERVE.LOG --minutes M --out OUT.md
          [--ndjson FILE --http-rate R] --load CMD ...
      Runs the load command (a paced `loggen`) and, beside it, posts the
      practice's NDJSON events at R events/s in total; every 10 s samples the
      service: RSS (VmRSS), appended / indexed / evaluated positions (lag in
      events), ERROR lines in its log. At the end waits for the index and
      detection to catch up and writes the samples and a verdict:
      lag bounded (never above 2 s of load), no
      errors, every event searchable and evaluated. RSS flat = the median of
      the last third within 10% + 32 MiB of the middle third's; the peak is
      reported beside it.

Only the standard library is used; pipeline.py supplies metrics and the
HTTP sender.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from pipeline import HttpSender, histogram_quantiles, median, metrics  # noqa: E402


def vm_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class ErrorLines:
    """ERROR lines in a growing log, reading only what was appended."""

    def __init__(self, path):
        self.f = open(path, errors="replace")
        self.count = 0
        self.partial = ""  # a line the service is still writing

    def __call__(self):
        for line in self.f:
            line, self.partial = self.partial + line, ""
            if not line.endswith("\n"):
                self.partial = line
            elif " ERROR " in line:
                self.count += 1
        return self.count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--rate", type=float, required=True, help="the syslog load's events/s")
    p.add_argument("--out", required=True)
    p.add_argument("--ndjson")
    p.add_argument("--http-rate", type=float, default=0.0)
    p.add_argument("--load", nargs=argparse.REMAINDER, required=True)
    a = p.parse_args()
    token = os.environ.get("SEALTRAIL_TOKEN", "")

    sender = None
    if a.ndjson and a.http_rate:
        sender = HttpSender(a.port, token, a.ndjson, 1, 100, a.http_rate)
    load = subprocess.Popen(a.load, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if sender:
        sender.start()
    start = time.monotonic()
    samples = []
    error_lines = ErrorLines(a.log)
    while True:
        time.sleep(10)
        m = metrics(a.port, token)
        appended = m.get("sealtrail_appended_events", 0)
        samples.append({
            "t": time.monotonic() - start,
            "rss": vm_rss_mib(a.pid),
            "appended": appended,
            "index_lag": appended - m.get("sealtrail_indexed_events", 0),
            "detect_lag": appended - m.get("sealtrail_detection_position", 0),
            "errors": error_lines(),
        })
        if load.poll() is not None and (sender is None or not any(t.is_alive() for t in sender.threads)):
            break
        if time.monotonic() - start > a.minutes * 60 + 300:
            load.kill()
            break
    ran = time.monotonic() - start
    if sender:
        sender.wait()
    # Catch-up after the load: how long until everything is searchable and
    # evaluated.
    t0 = time.monotonic()
    caught_up = None
    while time.monotonic() - t0 < 120:
        m = metrics(a.port, token)
        ap = m.get("sealtrail_appended_events", 0)
        if m.get("sealtrail_indexed_events") == ap and m.get("sealtrail_detection_position") == ap:
            caught_up = time.monotonic() - t0
            break
        time.sleep(0.2)
    alerts = histogram_quantiles(m, "sealtrail_alert_latency_seconds")

    # Flat: the median of the last third is within 10% + 32 MiB of the
    # middle third's (medians, so that merge peaks do not decide it).
    third = max(1, len(samples) // 3)
    middle = median([s["rss"] for s in samples[third:2 * third]] or [samples[0]["rss"]])
    last = median([s["rss"] for s in samples[2 * third:]] or [samples[-1]["rss"]])
    peak = max(s["rss"] for s in samples)
    rss_flat = last <= middle * 1.10 + 32
    bound = 2 * a.rate
    max_ilag = max(s["index_lag"] for s in samples)
    max_dlag = max(s["detect_lag"] for s in samples)
    lag_bounded = max_ilag <= bound and max_dlag <= bound
    errors = samples[-1]["errors"]
    http_errors = sender.errors if sender else []
    ok = rss_flat and lag_bounded and errors == 0 and not http_errors and caught_up is not None

    with open(a.out, "w") as f:
        f.write(f"Soak: {ran / 60:.1f} min of load; syslog at {a.rate:,.0f} events/s"
                f"{f', HTTP practice events at {a.http_rate:,.0f}/s' if sender else ''}.\n\n")
        f.write("| minute | RSS MiB | appended | index lag (events) | detection lag (events) | ERROR lines |\n")
        f.write("| ---: | ---: | ---: | ---: | ---: | ---: |\n")
        for s in samples:
            if int(s["t"]) % 60 < 10 or s is samples[-1]:
                f.write(f"| {s['t'] / 60:.1f} | {s['rss']:.0f} | {s['appended']:,.0f} | "
                        f"{s['index_lag']:,.0f} | {s['detect_lag']:,.0f} | {s['errors']} |\n")
        f.write(f"\n- RSS: median {middle:.0f} MiB in the middle third, {last:.0f} MiB in the last: "
                f"{'flat' if rss_flat else 'GROWING'}; peak {peak:.0f} MiB\n")
        f.write(f"- lag: index max {max_ilag:,.0f} events, detection max {max_dlag:,.0f} "
                f"(bound: 2 s of load = {bound:,.0f}): {'bounded' if lag_bounded else 'UNBOUNDED'}\n")
        f.write(f"- ERROR lines in the service log: {errors}; HTTP errors: {len(http_errors)}"
                f"{'; 503 retries: ' + str(sender.busy) if sender else ''}\n")
        f.write(f"- caught up {'in %.1f s' % caught_up if caught_up is not None else 'NOT within 120 s'}"
                f" after the load; alerts: {alerts}\n")
        f.write(f"- verdict: {'PASS' if ok else 'FAIL'}\n")
    print(open(a.out).read())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
