#!/usr/bin/env python3
"""The fault campaign's driver (issue #16 part 5); bench/faults.sh prepares
the work folder, keys, lookups and mounts, and cleans up.

  faults.py kills     --work W --bin B --port P --out R.ndjson [--kills 50] [--seed S]
  faults.py diskfull  --work W --bin B --port P --out R.ndjson --mount M
  faults.py stall     --work W --bin B --port P --out R.ndjson --mount M
  faults.py smtp      --work W --bin B --port P --out R.ndjson [--down SECONDS]
  faults.py clock     --work W --bin B --port P --out R.ndjson --faketime LIB
  faults.py table     R.ndjson OUT.md

Each fault starts `sealtrail serve` (release) on a fresh data directory,
drives HTTP NDJSON senders whose events carry client ids (`id`; a retry
sends the same ids again), injects its fault, and checks afterwards from
the ledger itself (the segment files, read here per docs/LEDGER.md §4),
from `sealtrail verify --json`, from the search index and from /metrics.
Each result is one JSON line: the fault, every check with pass/fail and
its numbers. Every process started here is written to W/pids (the shell
kills what is left on exit) and stopped here in `finally`.

Standard library only (zstandard, already needed by the independent
verifier, only if the lead's compactor rewrote a segment as version 2).
"""

import argparse
import datetime
import errno
import http.client
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

SEAL_MARKER = 0xFFFFFFFF
MAX_ENTRY_LEN = 1 << 20
SEGMENT_NAME = re.compile(r"^([0-9]{12})\.(seg|open)$")


# --- reading the ledger (docs/LEDGER.md §2, §4) ------------------------------
def ledger_entries(data_dir):
    """Every entry of the ledger in global order: sealed segments, then the
    open one (its frames up to the first torn or missing one)."""
    segdir = os.path.join(data_dir, "ledger", "segments")
    files = []
    for name in os.listdir(segdir):
        m = SEGMENT_NAME.match(name)
        if m:
            files.append((int(m.group(1)), m.group(2), os.path.join(segdir, name)))
    files.sort()
    dict_cache = {}
    for number, kind, path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            if kind != "open":
                raise
            # Sealed (renamed to .seg) since the listing: a writer is running.
            with open(path[:-len(".open")] + ".seg", "rb") as f:
                data = f.read()
        version, olen = struct.unpack_from(">HH", data, 8)
        if version not in (1, 2):
            raise SystemExit(f"{path}: segment version {version} is not readable here")
        hlen = 64 + olen + (32 if version == 2 else 0)
        decompress = None
        if version == 2:
            decompress = zstd_decompressor(data[60 + olen:92 + olen], data_dir, dict_cache)
        pos = hlen
        while pos + 8 <= len(data):
            length, _crc = struct.unpack_from(">II", data, pos)
            if length == SEAL_MARKER or not 1 <= length <= MAX_ENTRY_LEN or pos + 8 + length > len(data):
                break  # footer, or the torn tail of the open segment
            payload = data[pos + 8:pos + 8 + length]
            if decompress:
                payload = decompress(payload)
            yield json.loads(payload)
            pos += 8 + length


def zstd_decompressor(digest, data_dir, cache):
    import zstandard  # only for compacted (version 2) segments
    if digest not in cache:
        if digest == bytes(32):
            d = zstandard.ZstdDecompressor()
        else:
            with open(os.path.join(data_dir, "ledger", "dicts", digest.hex() + ".zdict"), "rb") as f:
                d = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(f.read()))
        cache[digest] = lambda b, d=d: d.decompress(b, max_output_size=MAX_ENTRY_LEN)
    return cache[digest]


def sealed_segments(data_dir):
    segdir = os.path.join(data_dir, "ledger", "segments")
    try:
        return sum(1 for n in os.listdir(segdir) if n.endswith(".seg"))
    except OSError:
        return 0


# --- processes -----------------------------------------------------------------
T0 = time.monotonic()


def say(msg):
    print(f"  [{time.monotonic() - T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


class Ctx:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        self.bin = a.bin
        self.port = a.port
        self.token = os.environ["SEALTRAIL_TOKEN"]
        self.procs = []

    def track(self, p):
        self.procs.append(p)
        with open(os.path.join(self.work, "pids"), "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, timeout=30):
        req = urllib.request.Request(self.url(path), headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metrics(self):
        status, body = self.get("/metrics", timeout=10)
        out = {}
        if status != 200:
            return out
        for m in re.finditer(r"^(sealtrail_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", body.decode(), re.M):
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return out

    def search_total(self, q):
        status, body = self.get("/v1/search?" + urllib.parse.urlencode({"q": q, "limit": 1}), timeout=60)
        if status != 200:
            return f"HTTP {status}: {body[:200]!r}"
        return json.loads(body)["total"]


import urllib.parse  # noqa: E402  (after urllib.request, which does not import it everywhere)


class Serve:
    """One `sealtrail serve`: started, waited for, killed, restarted."""

    def __init__(self, ctx, config, env=None, log="serve.log"):
        self.ctx, self.config, self.env = ctx, config, env
        self.log = os.path.join(ctx.work, log)
        self.p = None
        self.starts = 0

    def start(self, timeout=120):
        logf = open(self.log, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        self.p = self.ctx.track(subprocess.Popen([self.ctx.bin, "serve", "--config", self.config],
                                                 stdout=logf, stderr=subprocess.STDOUT, env=env))
        logf.close()
        self.starts += 1
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.p.poll() is not None:
                raise SystemExit(f"sealtrail serve exited {self.p.returncode} at start; see {self.log}:\n"
                                 + tail(self.log))
            try:
                # Any answer (200, or 503 while the ledger cannot write) means it listens.
                self.ctx.get("/healthz", timeout=2)
                return time.monotonic() - t0
            except (urllib.error.URLError, ConnectionError, socket.timeout, http.client.HTTPException):
                time.sleep(0.05)
        raise SystemExit(f"sealtrail serve did not listen within {timeout} s; see {self.log}")

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self, timeout=120):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return "killed after SIGTERM timeout"

    def rss_mib(self):
        try:
            with open(f"/proc/{self.p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# --- senders ---------------------------------------------------------------------
def now_text(offset_s=0.0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(eid, conn, seq):
    return {"id": eid, "time": now_text(), "category": "access", "action": "view", "outcome": "success",
            "actor": {"user": f"u{seq % 50:04d}", "role": "nurse", "ip": f"10.20.1.{seq % 200 + 1}"},
            "patient": {"id": f"MRN-{seq % 5000:07d}"}, "resource": {"type": "chart", "id": f"enc-{seq}"},
            "source": {"system": "faults", "host": f"conn-{conn}"}, "reason": "treatment",
            "message": "fault campaign"}


class Sender:
    """One keep-alive HTTP connection posting NDJSON batches with client ids
    `c<conn>-<seq>`. A batch is retried, same ids, until acknowledged: after
    a 503 (honouring Retry-After, at most 1 s), a refused connection or a
    connection the server dropped (it was killed). Everything else (500, 4xx,
    a request that hangs past `timeout`) is counted as an error and retried
    too, so the run goes on and the check fails."""

    def __init__(self, ctx, conn, batch, pause=0.0, timeout=30.0):
        self.ctx, self.conn, self.batch, self.pause, self.timeout = ctx, conn, batch, pause, timeout
        self.seq = 0
        self.acked = []  # ids in acknowledgement order
        self.sent = set()
        self.status = {}  # "200", "503", "500", "refused", "dropped", "timeout", ...
        self.ack_times = []  # monotonic time of each acknowledgement
        self.slowest = {}  # status -> longest time to that answer (s)
        self.answers = []  # (sent at, seconds to the answer, status), the newest 4000
        self.last_error = ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.lock = threading.Lock()

    def count(self, k):
        with self.lock:
            self.status[k] = self.status.get(k, 0) + 1

    def run(self):
        c = None
        pending = None
        while True:
            if pending is None:
                if self.stop.is_set():
                    break
                ids = [f"c{self.conn}-{self.seq + i:07d}" for i in range(self.batch)]
                body = "\n".join(json.dumps(event(i, self.conn, self.seq + k)) for k, i in enumerate(ids))
                self.seq += self.batch
                pending = (ids, body.encode())
                self.sent.update(ids)
            ids, body = pending
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", self.ctx.port, timeout=self.timeout)
                t_req = time.monotonic()
                c.request("POST", "/v1/events", body, {"Content-Type": "application/x-ndjson",
                                                       "Authorization": f"Bearer {self.ctx.token}"})
                r = c.getresponse()
                data = r.read()
                took = time.monotonic() - t_req
                with self.lock:
                    k = str(r.status)
                    self.slowest[k] = max(self.slowest.get(k, 0.0), took)
                    self.answers.append((t_req, took, r.status))
                    del self.answers[:-4000]
            except ConnectionRefusedError:
                self.count("refused")
                c = None
                time.sleep(0.05)
                continue
            except socket.timeout:
                self.count("timeout")
                self.last_error = "request timed out"
                c.close()
                c = None
                continue
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                self.count("dropped")
                self.last_error = repr(e)
                if c:
                    c.close()
                c = None
                time.sleep(0.02)
                continue
            self.count(str(r.status))
            if r.status == 200:
                with self.lock:
                    self.acked.extend(ids)
                    self.ack_times.append(time.monotonic())
                pending = None
                if self.pause:
                    self.stop.wait(self.pause)
            elif r.status == 503:
                ra = r.getheader("Retry-After")
                try:
                    wait = min(1.0, float(ra)) if ra else 0.1
                except ValueError:
                    wait = 0.1
                time.sleep(max(0.05, wait))
            else:
                self.last_error = f"HTTP {r.status}: {data[:200]!r}"
                time.sleep(0.1)
        if c:
            c.close()

    def acked_count(self):
        with self.lock:
            return len(self.acked)


class Senders:
    def __init__(self, ctx, conns, batch, pause=0.0):
        self.list = [Sender(ctx, i, batch, pause) for i in range(conns)]

    def start(self):
        for s in self.list:
            s.thread.start()

    def finish(self, timeout=300):
        """Stops making new batches; each sender delivers what it holds."""
        for s in self.list:
            s.stop.set()
        deadline = time.monotonic() + timeout
        for s in self.list:
            s.thread.join(max(0.1, deadline - time.monotonic()))
        return all(not s.thread.is_alive() for s in self.list)

    def acked(self):
        return [i for s in self.list for i in s.acked]

    def sent(self):
        out = set()
        for s in self.list:
            out |= s.sent
        return out

    def status(self):
        out = {}
        for s in self.list:
            with s.lock:
                for k, v in s.status.items():
                    out[k] = out.get(k, 0) + v
        return out

    def acked_count(self):
        return sum(s.acked_count() for s in self.list)

    def slowest(self):
        """Longest wait for an answer, per status, over all senders (s)."""
        out = {}
        for s in self.list:
            with s.lock:
                for k, v in s.slowest.items():
                    out[k] = round(max(out.get(k, 0.0), v), 2)
        return out


# --- checks --------------------------------------------------------------------------
class Result:
    def __init__(self, fault):
        self.r = {"fault": fault, "checks": [], "numbers": {}}

    def check(self, what, ok, detail=""):
        self.r["checks"].append({"check": what, "pass": bool(ok), "detail": str(detail)})
        print(f"  [{'pass' if ok else 'FAIL'}] {what}: {detail}", flush=True)

    def num(self, **kw):
        self.r["numbers"].update(kw)

    def write(self, path):
        self.r["pass"] = all(c["pass"] for c in self.r["checks"]) and bool(self.r["checks"])
        with open(path, "a") as f:
            f.write(json.dumps(self.r) + "\n")


def wait_caught_up(ctx, timeout=300):
    """Until indexed_events and detection_position reach appended_events;
    returns (seconds, last metrics) or (None, last metrics)."""
    t0 = time.monotonic()
    m = {}
    while time.monotonic() - t0 < timeout:
        try:
            m = ctx.metrics()
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            m = {}
        a = m.get("sealtrail_appended_events")
        if a is not None and m.get("sealtrail_indexed_events", -1) >= a and m.get("sealtrail_detection_position", -1) >= a:
            return time.monotonic() - t0, m
        time.sleep(0.1)
    return None, m


def verify(ctx, data):
    p = subprocess.run([ctx.bin, "verify", "--data", data, "--vkey", os.path.join(ctx.work, "keys", "signing.vkey"),
                        "--json"], capture_output=True, text=True)
    try:
        v = json.loads(p.stdout)
    except json.JSONDecodeError:
        v = {"ok": False, "errors": [p.stderr.strip()[-300:]]}
    return p.returncode, v


def check_ids(res, data, senders, label=""):
    """Every acknowledged id stored exactly once; no id stored twice."""
    counts = {}
    order = {}  # conn -> seqs in ledger order
    for e in ledger_entries(data):
        ev = e.get("event") or {}
        i = ev.get("id")
        if isinstance(i, str) and (ev.get("source") or {}).get("system") == "faults":
            counts[i] = counts.get(i, 0) + 1
            conn, seq = i[1:].split("-")
            order.setdefault(int(conn), []).append(int(seq))
    acked = senders.acked()
    lost = [i for i in acked if counts.get(i, 0) == 0]
    dups = {i: n for i, n in counts.items() if n > 1}
    unacked_stored = len(set(counts) - set(acked))
    res.num(**{f"{label}acked_events": len(acked), f"{label}stored_ids": len(counts),
               f"{label}stored_not_acked": unacked_stored})
    res.check("acknowledged events lost (ledger)", not lost, f"{len(lost)} of {len(acked)} acknowledged"
              + (f", e.g. {lost[:3]}" if lost else ""))
    res.check("ids stored more than once (ledger)", not dups, f"{len(dups)}"
              + (f", e.g. {list(dups.items())[:3]}" if dups else ""))
    return counts, order


def check_verify(res, ctx, data):
    say("sealtrail verify")
    rc, v = verify(ctx, data)
    res.num(verify_events=v.get("events"), verify_segments=v.get("segments"))
    res.check("sealtrail verify", rc == 0 and v.get("ok") is True,
              f"exit {rc}, {v.get('events')} events in {v.get('segments')} segments"
              + (f", errors {v.get('errors')[:3]}" if v.get("errors") else ""))


def check_search(res, total, counts):
    res.num(search_total=total)
    res.check("search holds every stored event once", total == len(counts),
              f"search total {total}, distinct ids in the ledger {len(counts)}")


def config_text(ctx, data, extra=""):
    return f"""data_dir = "{data}"
[ledger]
key_file = "{ctx.work}/keys/signing.key"
[http]
listen = "127.0.0.1:{ctx.port}"
[syslog]
listen = "127.0.0.1:{ctx.port + 1}"
[lookups]
dir = "{ctx.work}/practice"
[rules]
dir = "{ctx.a.rules}"
{extra}"""


def fresh(ctx, name, data=None, extra=""):
    """A data directory with the bench token, and its config file."""
    data = data or os.path.join(ctx.work, name, "data")
    os.makedirs(os.path.dirname(data), exist_ok=True)
    token = subprocess.run([ctx.bin, "token", "create", "--data", data, "--name", "faults",
                            "--role", "ingest,analyst,responder,auditor,metrics"],
                           capture_output=True, text=True, check=True).stdout.strip()
    ctx.token = token
    cfg = os.path.join(ctx.work, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(config_text(ctx, data, extra))
    return data, cfg


# --- fault 1: SIGKILL under load ---------------------------------------------------------
def fault_kills(ctx, a):
    res = Result("1. SIGKILL x%d under load" % a.kills)
    data, cfg = fresh(ctx, "kills")
    rng = random.Random(a.seed)
    srv = Serve(ctx, cfg, log="kills-serve.log")
    senders = Senders(ctx, conns=a.conns, batch=a.batch)
    start_s = [srv.start()]
    senders.start()
    t0 = time.monotonic()
    moments = []
    acked_at_kill = []
    say(f"{a.kills} kills under load")
    for k in range(a.kills):
        # The moment: 20 ms .. 2.5 s after the service answers (seeded), so some
        # kills land in start-up replay, most under full load, some in seals.
        d = rng.uniform(0.02, 2.5)
        moments.append(round(d, 3))
        time.sleep(d)
        srv.kill()
        acked_at_kill.append(senders.acked_count())
        start_s.append(srv.start())
    # After the last restart: run a little, then every sender delivers what it holds.
    time.sleep(2)
    say("last restart done; finishing the senders")
    finished = senders.finish()
    load_s = time.monotonic() - t0
    say("waiting for the index and detection")
    caught, m = wait_caught_up(ctx)
    res.num(kills=a.kills, seed=a.seed, connections=a.conns, batch=a.batch, load_seconds=round(load_s, 1),
            restart_s_median=round(sorted(start_s)[len(start_s) // 2], 2), restart_s_max=round(max(start_s), 2),
            statuses=senders.status(), catch_up_s=round(caught, 2) if caught is not None else None,
            kill_moments_s=moments[:10])
    res.check("senders delivered everything they held", finished, f"{senders.acked_count()} acknowledged")
    st = senders.status()
    bad = {k: v for k, v in st.items() if k not in ("200", "503", "refused", "dropped")}
    res.check("no HTTP error other than 503 / a dropped connection", not bad, f"{st}")
    res.check("index and detection caught up after the last restart", caught is not None,
              f"{caught and round(caught, 2)} s; appended {m.get('sealtrail_appended_events')}, indexed "
              f"{m.get('sealtrail_indexed_events')}, detection {m.get('sealtrail_detection_position')}")
    total = ctx.search_total("source.system:faults")
    res.num(clean_stop_exit=srv.stop())
    counts, _ = check_ids(res, data, senders)
    if caught is not None:
        check_search(res, total, counts)
    check_verify(res, ctx, data)
    res.write(a.out)


# --- fault 2: disk full ---------------------------------------------------------------
def fill(path, chunk=1 << 20):
    """Writes `path` until the file system is full; returns bytes written."""
    n = 0
    buf = b"\0" * chunk
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(buf)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # Smaller pieces, so nothing at all is left.
        for size in (65536, 4096, 512):
            while True:
                try:
                    n += f.write(b"\0" * size)
                except OSError:
                    break
    return n


def probe_status(ctx, path):
    try:
        return ctx.get(path, timeout=10)[0]
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        return repr(e)


def fault_diskfull(ctx, a):
    res = Result("2. disk full (data directory on a %s tmpfs)" % a.size)
    data, cfg = fresh(ctx, "diskfull", data=os.path.join(a.mount, "data"))
    srv = Serve(ctx, cfg, log="diskfull-serve.log")
    srv.start()
    senders = Senders(ctx, conns=2, batch=100, pause=0.05)
    senders.start()
    time.sleep(3)
    before = senders.acked_count()
    filler = os.path.join(a.mount, "filler")
    t_fill = time.monotonic()
    filled = fill(filler)
    # Full: the senders keep sending. Watch what they get, and readiness.
    # Appends go on into space the open segment already holds (durable,
    # acknowledged) until it is used up; the fault is held `full_seconds`
    # after the first refusal (at most 120 s waiting for it).
    st0 = senders.status()
    ready_full = []
    acked_full0 = senders.acked_count()
    first_503 = None
    while time.monotonic() - t_fill < 120 and first_503 is None:
        if senders.status().get("503", 0) > st0.get("503", 0):
            first_503 = time.monotonic() - t_fill
        ready_full.append(probe_status(ctx, "/readyz"))
        time.sleep(0.1)
    acked_until_refused = senders.acked_count() - acked_full0
    say(f"disk full ({filled >> 20} MiB filler); first 503 after {first_503} s; holding {a.full_seconds} s")
    t_hold = time.monotonic()
    while time.monotonic() - t_hold < a.full_seconds:
        ready_full.append(probe_status(ctx, "/readyz"))
        time.sleep(0.5)
    st1 = senders.status()
    acked_full = senders.acked_count() - acked_full0
    during = {k: st1.get(k, 0) - st0.get(k, 0) for k in st1 if st1.get(k, 0) - st0.get(k, 0)}
    m_full = ctx.metrics()
    t_remove = time.monotonic()
    os.remove(filler)
    say("filler deleted")
    t_free = time.monotonic()
    acked_free0 = senders.acked_count()
    recovered = None
    while time.monotonic() - t_free < 120:
        if senders.acked_count() > acked_free0 + 200:
            recovered = time.monotonic() - t_free
            break
        time.sleep(0.05)
    time.sleep(3)
    ready_after = probe_status(ctx, "/readyz")
    finished = senders.finish()
    caught, m = wait_caught_up(ctx)
    alive = srv.alive()
    res.num(filler_mib=round(filled / 2**20, 1), full_seconds=a.full_seconds, acked_before_full=before,
            first_503_s=round(first_503, 2) if first_503 is not None else None,
            acked_full_before_first_503=acked_until_refused,
            statuses_while_full=during, acked_while_full=acked_full,
            write_errors={k: v for k, v in m_full.items() if k.startswith("sealtrail_ledger_write_errors_total")},
            recovered_s=round(recovered, 2) if recovered is not None else None,
            catch_up_s=round(caught, 2) if caught is not None else None, statuses=senders.status())
    slow = senders.slowest()
    # Every answer to a request sent while full: (conn, sent s after the
    # filler, seconds to the answer, status).
    while_full = sorted((s.conn, round(t - t_fill, 2), round(d, 2), st) for s in senders.list
                        for t, d, st in s.answers if t_fill <= t < t_remove)
    res.num(slowest_answer_s=slow, answers_while_full=while_full[:60])
    res.check("new events refused with 503 while full", first_503 is not None and during.get("503", 0) > 0,
              f"{during.get('503', 0)} answers 503 while full (the first {first_503 and round(first_503, 2)} s "
              f"after the filler, {acked_until_refused} events acknowledged before it, then "
              f"{a.full_seconds} s held); slowest answer per status (s): {slow}")
    bad = {k: v for k, v in senders.status().items() if k not in ("200", "503")}
    res.check("no 500, no request past 30 s, no dropped connection", not bad, f"{bad or 'none'}"
              + (f"; last error {[s.last_error for s in senders.list if s.last_error][:1]}" if bad else ""))
    held = [x for x in while_full if x[2] > 5.0]
    res.check("no request held while full (every answer within 5 s)", not held,
              f"{len(held)} held: (connection, sent s after the filler, s to the answer, status) {held[:4]}")
    res.check("/readyz 503 while full", any(r == 503 for r in ready_full[2:]) and all(r == 503 for r in ready_full[-3:]),
              f"readyz answers while full: {sorted(set(map(str, ready_full)))}")
    res.check("recovers by itself when space returns", recovered is not None and alive and ready_after == 200,
              f"accepting again {recovered and round(recovered, 2)} s after the filler was deleted; "
              f"/readyz {ready_after}; same process: {alive}")
    res.check("index and detection caught up", caught is not None,
              f"appended {m.get('sealtrail_appended_events')}, indexed {m.get('sealtrail_indexed_events')}, "
              f"detection {m.get('sealtrail_detection_position')}")
    res.check("senders delivered everything they held", finished, f"{senders.acked_count()} acknowledged")
    total = ctx.search_total("source.system:faults")
    res.num(clean_stop_exit=srv.stop())
    counts, _ = check_ids(res, data, senders)
    if caught is not None:
        check_search(res, total, counts)
    check_verify(res, ctx, data)
    res.write(a.out)


# --- fault 3: index consumer stalled ------------------------------------------------------
class RssSampler:
    def __init__(self, srv, every=0.25):
        self.srv, self.every = srv, every
        self.samples = []  # (t, rss MiB)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), self.srv.rss_mib()))
            self.stop.wait(self.every)

    def between(self, t0, t1):
        return [r for t, r in self.samples if t0 <= t < t1]


def fault_stall(ctx, a):
    res = Result("3. index consumer stalled (index directory on a %s tmpfs, filled)" % a.size)
    data, cfg = fresh(ctx, "stall")
    # The index lives in DATA/index: its own file system, which the campaign
    # fills. The service removes and recreates DATA/index when it creates an
    # index (a mount point cannot be removed: EBUSY), so the index is created
    # on disk by a first start, then copied onto the tmpfs mounted there.
    idx = os.path.join(data, "index")
    srv = Serve(ctx, cfg, log="stall-serve.log")
    srv.start()
    srv.stop()
    os.rename(idx, idx + ".created")
    os.makedirs(idx)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={a.size}", "tmpfs", idx], check=True)
    with open(os.path.join(ctx.work, "mounts"), "a") as f:
        f.write(idx + "\n")
    subprocess.run(["cp", "-a", idx + ".created/.", idx], check=True)
    srv.start()
    rss = RssSampler(srv)
    rss.thread.start()
    senders = Senders(ctx, conns=2, batch=500)
    senders.start()
    time.sleep(3)
    filler = os.path.join(idx, "filler")
    t_fill = time.monotonic()
    filled = fill(filler)
    say(f"index file system full ({filled >> 20} MiB filler); stalled for {a.stall_seconds} s")
    m0 = ctx.metrics()
    series = []
    while time.monotonic() - t_fill < a.stall_seconds:
        m = ctx.metrics()
        series.append((time.monotonic() - t_fill, m.get("sealtrail_appended_events", 0),
                       m.get("sealtrail_indexed_events", 0), m.get("sealtrail_detection_position", 0)))
        time.sleep(1)
    m1 = ctx.metrics()
    t_end = time.monotonic()
    os.remove(filler)
    st_stall = senders.status()
    acked_stall = senders.acked_count()
    time.sleep(2)
    finished = senders.finish()
    caught, m = wait_caught_up(ctx, timeout=600)
    rss.stop.set()
    rss.thread.join()
    stall = rss.between(t_fill, t_end)
    third = (t_end - t_fill) / 3
    first = rss.between(t_fill, t_fill + third)
    last = rss.between(t_end - third, t_end)
    peak = max(r for _, r in rss.samples)
    lag0 = m0.get("sealtrail_appended_events", 0) - m0.get("sealtrail_indexed_events", 0)
    lag1 = m1.get("sealtrail_appended_events", 0) - m1.get("sealtrail_indexed_events", 0)
    ingested = m1.get("sealtrail_appended_events", 0) - m0.get("sealtrail_appended_events", 0)
    res.num(filler_mib=round(filled / 2**20, 1), stall_seconds=a.stall_seconds,
            appended_during_stall=int(ingested), index_lag_start=int(lag0), index_lag_end=int(lag1),
            detection_lag_end=int(m1.get("sealtrail_appended_events", 0) - m1.get("sealtrail_detection_position", 0)),
            rss_mib_first_third_max=round(max(first or [0]), 1), rss_mib_last_third_max=round(max(last or [0]), 1),
            rss_mib_peak=round(peak, 1), rss_mib_stall_samples=len(stall),
            catch_up_s=round(caught, 2) if caught is not None else None,
            ingest_events_per_s_during_stall=round(ingested / max(a.stall_seconds, 1), 0),
            statuses=st_stall, series_every_5s=[(round(t), int(x), int(y), int(z)) for t, x, y, z in series[::5]])
    res.check("the index stalled (lag grew while full)", lag1 > lag0 + 1000,
              f"index lag {int(lag0)} -> {int(lag1)} events over {a.stall_seconds} s")
    bad = {k: v for k, v in st_stall.items() if k not in ("200", "503")}
    res.check("ingest continued or was backpressured (200/503 only)", not bad and acked_stall > 0,
              f"statuses {st_stall}; {int(ingested)} events appended during the stall")
    res.check("RSS bounded during the stall", peak < 1024 and max(last or [0]) <= max(first or [0]) + 64,
              f"first third max {max(first or [0]):.0f} MiB, last third max {max(last or [0]):.0f} MiB, "
              f"peak {peak:.0f} MiB (limits: < 1024, last <= first + 64)")
    res.check("index and detection caught up after the stall", caught is not None,
              f"{caught and round(caught, 1)} s after the load ended; appended {m.get('sealtrail_appended_events')}, "
              f"indexed {m.get('sealtrail_indexed_events')}, detection {m.get('sealtrail_detection_position')}")
    res.check("senders delivered everything they held", finished, f"{senders.acked_count()} acknowledged")
    total = ctx.search_total("source.system:faults")
    res.num(clean_stop_exit=srv.stop())
    counts, _ = check_ids(res, data, senders)
    if caught is not None:
        check_search(res, total, counts)
    check_verify(res, ctx, data)
    res.write(a.out)


# --- fault 4: SMTP server down ----------------------------------------------------------------
class Sink:
    def __init__(self, ctx, port, mail):
        self.ctx, self.port, self.mail = ctx, port, mail
        self.p = None

    def start(self):
        # A folder per run of the sink: it numbers its messages from 1 again.
        d = os.path.join(self.mail, f"run{len(os.listdir(self.mail)) + 1}")
        os.makedirs(d)
        self.p = self.ctx.track(subprocess.Popen(
            [sys.executable, self.ctx.a.sink, "--dir", d, "--port", str(self.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        line = self.p.stdout.readline().decode()
        if not line.startswith("PORT"):
            raise SystemExit(f"SMTP sink did not start: {line!r}")

    def stop(self):
        self.p.kill()
        self.p.wait()

    def messages(self):
        out = []
        for d in os.listdir(self.mail):
            for n in os.listdir(os.path.join(self.mail, d)):
                if n.endswith(".json"):
                    with open(os.path.join(self.mail, d, n)) as f:
                        out.append(json.load(f))
        return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def post_events(ctx, events):
    body = "\n".join(json.dumps(e) for e in events).encode()
    for _ in range(100):
        req = urllib.request.Request(ctx.url("/v1/events"), body, {"Content-Type": "application/x-ndjson",
                                                                   "Authorization": f"Bearer {ctx.token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as e:
            if e.code != 503:
                raise
        time.sleep(0.1)
    raise SystemExit("could not deliver a burst")


def burst(ctx, k):
    """8 failed logins of a fresh account from its own address: one
    `failed_login_burst` alert, one incident (brute-force-page)."""
    user = f"smtpfault{k:03d}"
    post_events(ctx, [{"id": f"burst-{k}-{i}", "time": now_text(), "category": "auth", "action": "login",
                       "outcome": "failure", "actor": {"user": user, "ip": f"203.0.113.{k % 250 + 1}"},
                       "source": {"system": "sso"}, "message": "Sign-in failed"} for i in range(8)])
    return user


def notified(data):
    """incident -> list of (round, attempt, outcome) of email attempts, from the ledger."""
    out = {}
    for e in ledger_entries(data):
        ev = e.get("event") or {}
        at = ev.get("attrs") or {}
        if ev.get("action") == "incident_update" and at.get("kind") == "notified" and at.get("channel") == "email":
            out.setdefault(at["incident"], []).append((at["round"], at["attempt"], at["outcome"]))
    return out


def fault_smtp(ctx, a):
    res = Result("4. SMTP server down %d s" % a.down
                 + (f" ([smtp] retry_for = {a.smtp_retry_for})" if a.smtp_retry_for else ""))
    mail = os.path.join(ctx.work, "smtp-mail")
    os.makedirs(mail, exist_ok=True)
    sport = free_port()
    sink = Sink(ctx, sport, mail)
    sink.start()
    data, cfg = fresh(ctx, "smtp", extra=f"""[smtp]
host = "127.0.0.1"
port = {sport}
starttls = "never"
{f'retry_for = "{a.smtp_retry_for}"' if a.smtp_retry_for else ""}
[response]
enabled = true
[[oncall.levels]]
name = "primary"
emails = ["oncall@clinic.example"]
ack_timeout = "6h"
""")
    srv = Serve(ctx, cfg, log="smtp-serve.log")
    srv.start()
    users = [burst(ctx, k) for k in range(2)]  # with the server up: delivery works
    t = time.monotonic()
    while len(sink.messages()) < 2 and time.monotonic() - t < 120:
        time.sleep(0.2)
    before = len(sink.messages())
    sink.stop()
    say(f"SMTP server down for {a.down:.0f} s")
    t_down = time.monotonic()
    during = max(1, a.bursts)
    for k in range(during):
        # Spread over the first 80% of the outage.
        at = t_down + (k + 0.5) * 0.8 * a.down / during
        time.sleep(max(0.0, at - time.monotonic()))
        users.append(burst(ctx, 2 + k))
    time.sleep(max(0.0, t_down + a.down - time.monotonic()))
    # Alerts were raised meanwhile?
    status, body = ctx.get("/v1/incidents?limit=100")
    incidents = json.loads(body).get("incidents", []) if status == 200 else []
    ours = {i["id"] for i in incidents if any(u in json.dumps(i.get("group", {})) for u in users)}
    failed_during = notified(os.path.join(data))  # the ledger while down (read-only, safe beside the writer)
    attempts_during = sum(len(v) for v in failed_during.values())
    sink.start()
    say("SMTP server back")
    t_up = time.monotonic()
    expected = len(users)
    delivered_at = None
    while time.monotonic() - t_up < a.after:
        if len(sink.messages()) >= expected:
            delivered_at = time.monotonic() - t_up
            break
        time.sleep(0.5)
    # Give a duplicate the chance to show.
    time.sleep(5)
    msgs = sink.messages()
    srv.stop()
    sink.stop()
    rec = notified(data)
    subjects = [m["subject"] for m in msgs]
    per_incident = {}
    for s in subjects:
        mm = re.search(r"\((inc-[^)]+)\)", s)
        per_incident[mm.group(1) if mm else s] = per_incident.get(mm.group(1) if mm else s, 0) + 1
    delivered_rec = sum(1 for v in rec.values() for r in v if r[2] == "delivered")
    failed_rec = [(i, r) for i, v in rec.items() for r in v if r[2] == "failed"]
    rounds_undelivered = [i for i, v in rec.items()
                          if any(not any(x[0] == rd and x[2] == "delivered" for x in v) for rd in {x[0] for x in v})]
    res.num(down_seconds=a.down, bursts_before=2, bursts_during=during, emails_before_outage=before,
            incidents_for_our_users=len(ours), email_attempts_recorded_while_down=attempts_during,
            emails_at_sink=len(msgs), delivered_in_ledger=delivered_rec, failed_in_ledger=len(failed_rec),
            delivered_s_after_return=round(delivered_at, 1) if delivered_at is not None else None)
    res.check("alerts raised while SMTP was down", len(ours) == expected,
              f"{len(ours)} incidents for the {expected} burst accounts")
    res.check("notifications delivered after it returned (count at the sink)", len(msgs) >= expected,
              f"{len(msgs)} emails at the sink, {expected} expected"
              + (f", the last {delivered_at:.1f} s after it returned" if delivered_at is not None else ""))
    res.check("none lost: every started round has a delivered attempt", not rounds_undelivered and not failed_rec,
              f"{len(rounds_undelivered)} incidents with an undelivered round, {len(failed_rec)} attempts "
              f"recorded as failed" + (f", e.g. {failed_rec[:2]}" if failed_rec else ""))
    dup = {k: v for k, v in per_incident.items() if v > 1}
    res.check("none duplicated (sink = delivered attempts in the ledger, one per incident)",
              not dup and len(msgs) == delivered_rec, f"sink {len(msgs)}, ledger delivered {delivered_rec}, "
              f"incidents with more than one email: {len(dup)}")
    check_verify(res, ctx, data)
    res.write(a.out)


# --- fault 5: clock steps --------------------------------------------------------------------------
def fault_clock(ctx, a):
    res = Result("5. clock stepped back and forward by an hour (libfaketime)")
    data, cfg = fresh(ctx, "clock")
    tsfile = os.path.join(ctx.work, "faketime.offset")
    with open(tsfile, "w") as f:
        f.write("+0\n")
    env = {"LD_PRELOAD": a.faketime, "FAKETIME_TIMESTAMP_FILE": tsfile, "FAKETIME_NO_CACHE": "1",
           "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_RESET": "1"}
    srv = Serve(ctx, cfg, env=env, log="clock-serve.log")
    srv.start()
    senders = Senders(ctx, conns=2, batch=100, pause=0.02)
    senders.start()
    steps = ["-3600", "+0", "+3600", "+0"]  # back an hour, forward again, forward an hour, back again
    step_log = []
    seals_continue = []
    time.sleep(a.step_seconds)
    for s in steps:
        seg0 = sealed_segments(data)
        with open(tsfile + ".tmp", "w") as f:
            f.write(s + "\n")
        os.rename(tsfile + ".tmp", tsfile)
        say(f"wall clock offset {s} s")
        acked0 = senders.acked_count()
        time.sleep(a.step_seconds)
        seg1 = sealed_segments(data)
        acked1 = senders.acked_count()
        step_log.append({"offset": s, "sealed_segments": seg1 - seg0, "acked": acked1 - acked0})
        seals_continue.append(seg1 > seg0 and acked1 > acked0)
    say("clock steps done; finishing the senders")
    finished = senders.finish()
    say("waiting for the index and detection")
    caught, m = wait_caught_up(ctx)
    say("stopping the service")
    rc = srv.stop()
    say("reading the ledger")
    counts, order = check_ids(res, data, senders)
    # Ledger order = acknowledgement order, per connection.
    misordered = {}
    for s in senders.list:
        acked_seqs = [int(i.split("-")[1]) for i in s.acked]
        acked_set = set(acked_seqs)
        stored = [q for q in order.get(s.conn, []) if q in acked_set]
        if stored != acked_seqs:
            misordered[s.conn] = len(acked_seqs)
    # Received times as stored: how the wall clock stepped in the ledger.
    received = []
    for e in ledger_entries(data):
        if ((e.get("event") or {}).get("source") or {}).get("system") == "faults":
            received.append(e.get("received"))
    back_steps = 0
    prev = None
    for r in received:
        t = datetime.datetime.fromisoformat(r.replace("Z", "+00:00")) if isinstance(r, str) else None
        if prev and t and t < prev - datetime.timedelta(minutes=30):
            back_steps += 1
        prev = t or prev
    res.num(steps=step_log, step_seconds=a.step_seconds, received_steps_back_over_30min=back_steps,
            statuses=senders.status(), catch_up_s=round(caught, 2) if caught is not None else None, clean_stop_exit=rc)
    res.check("ledger order = acknowledgement order per connection", not misordered,
              f"{len(misordered)} connections out of order")
    res.check("the clock did step in the service (received times jump back)", back_steps >= 1,
              f"{back_steps} backward jumps of more than 30 min in `received`")
    res.check("seals and acknowledgements continued after every step", all(seals_continue),
              f"{step_log}")
    bad = {k: v for k, v in senders.status().items() if k not in ("200",)}
    res.check("no error answers", not bad, f"{bad or 'none'}")
    res.check("index and detection caught up", caught is not None,
              f"appended {m.get('sealtrail_appended_events')}, indexed {m.get('sealtrail_indexed_events')}, "
              f"detection {m.get('sealtrail_detection_position')}")
    res.check("senders delivered everything they held", finished, f"{senders.acked_count()} acknowledged")
    check_verify(res, ctx, data)
    res.write(a.out)


# --- the table ----------------------------------------------------------------------------------------
def table(a):
    rs = [json.loads(l) for l in open(a.results) if l.strip()]
    lines = ["| fault | check | result | numbers |", "| --- | --- | --- | --- |"]
    for r in rs:
        for k, c in enumerate(r["checks"]):
            nums = ""
            if k == 0:
                nums = "; ".join(f"{n}={json.dumps(v)}" for n, v in r["numbers"].items()
                                 if not isinstance(v, (list, dict)) or n in ("statuses", "statuses_while_full"))
            lines.append(f"| {r['fault'] if k == 0 else ''} | {c['check']} | "
                         f"{'pass' if c['pass'] else '**FAIL**'} | {c['detail'].replace('|', '/')} "
                         f"{('<br>' + nums.replace('|', '/')) if nums else ''} |")
    out = "\n".join(lines) + "\n"
    print(out)
    with open(a.md, "w") as f:
        f.write(out)
    return 0 if all(r.get("pass") for r in rs) else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("kills", "diskfull", "stall", "smtp", "clock"):
        s = sub.add_parser(name)
        s.add_argument("--work", required=True)
        s.add_argument("--bin", required=True)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--out", required=True)
        s.add_argument("--rules", required=True)
        s.add_argument("--sink", default="tests/support/smtp_sink.py")
        s.add_argument("--kills", type=int, default=50)
        s.add_argument("--seed", type=int, default=16)
        s.add_argument("--conns", type=int, default=4)
        s.add_argument("--batch", type=int, default=200)
        s.add_argument("--mount")
        s.add_argument("--size", default="64m")
        s.add_argument("--full-seconds", type=float, default=15)
        s.add_argument("--stall-seconds", type=float, default=40)
        s.add_argument("--down", type=float, default=600)
        s.add_argument("--bursts", type=int, default=5)
        s.add_argument("--after", type=float, default=300, help="seconds to wait for delivery after SMTP returns")
        s.add_argument("--smtp-retry-for", help="[smtp] retry_for (default: the service's)")
        s.add_argument("--faketime")
        s.add_argument("--step-seconds", type=float, default=5)
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("md")
    a = p.parse_args()
    if a.cmd == "table":
        sys.exit(table(a))
    ctx = Ctx(a)
    try:
        {"kills": fault_kills, "diskfull": fault_diskfull, "stall": fault_stall, "smtp": fault_smtp,
         "clock": fault_clock}[a.cmd](ctx, a)
    finally:
        ctx.cleanup()


if __name__ == "__main__":
    main()
