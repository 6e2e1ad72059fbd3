#!/usr/bin/env python3
"""`make bench`: Envoy with the meshroute filter against Envoy's own router on the same routes.

For each route set, three Envoys run side by side, each with one worker and pinned to CPU 0:
  filter  the meshroute filter and its table (`meshroute sync`),
  native  Envoy's own RouteConfiguration for the same manifests (`meshroute sync --mode native`),
  floor   the same Services without routes: every request passes straight to one cluster.
The load client (`meshroute-bench load`) and the upstream echo server run on CPU 1.

CPU per request is Envoy's process CPU time (the sum of its threads' run time in
/proc/PID/task/*/schedstat, nanoseconds) over a fixed number of requests. Runs are short and
alternate between the three Envoys, in a rotating order, many times; the Envoys are restarted
along the way (not in the Services sets of more than 2,000 Services: --services-pairs rounds). Each round gives a ratio filter/native and filter/floor; the report gives the
median of those ratios and their spread (quartiles, min, max).

The Services sets (--services, default 1,000 and 10,000 Services of 2 rules each) add each
Envoy's start time (started alone, exec to ready), its memory, and publish-to-visible with
many Services, where native mode has one listener per Service port and the filter one in all.

Usage: bench/bench.py [--smoke] (make bench / make bench-smoke set the binaries' paths).
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESHROUTE = os.environ.get("MESHROUTE_BIN", str(ROOT / "target/release/meshroute"))
WASM = os.environ.get("MESHROUTE_WASM", str(ROOT / "target/wasm32-wasip1/release/meshroute_filter.wasm"))
ECHO = os.environ.get("MESHROUTE_ECHO_BIN", str(ROOT / "target/release/meshroute-echo"))
BENCH = os.environ.get("MESHROUTE_BENCH_BIN", str(ROOT / "target/release/meshroute-bench"))
ENVOY = os.environ.get("ENVOY_BIN", "")

VARIANTS = ["filter", "native", "floor"]
# Each Envoy gets its own loopback network (Envoy binds with SO_REUSEPORT: two Envoys on one
# address would share its connections) and admin port.
NETS = {"filter": "127.51", "native": "127.52", "floor": "127.53"}
ADMIN = {"filter": 19951, "native": 19952, "floor": 19953}
GEN_NET = "127.77"
UPSTREAM = "127.0.0.1:19950"

# A Services set of more Services than this runs --services-pairs rounds and no restarts.
BIG_SERVICES = 2000

# The targets.
TARGETS = {
    "ratio_10": 1.20,
    "ratio_1000": 1.0,
    "ratio_10000": 0.5,
    "growth": 1.2,
    "core_ns": 200.0,
    "compile_s": 1.0,
    "visible_ms": 500.0,
    "services_rss": 0.75,
    "services_start": 1.0,
    "services_visible_s": 2.0,
}


def log(*args):
    print("bench:", *args, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def quartiles(xs):
    if len(xs) < 2:
        return (xs[0], xs[0]) if xs else (float("nan"), float("nan"))
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


class Envoy:
    def __init__(self, variant, config_dir, listeners):
        self.variant = variant
        self.dir = Path(config_dir)
        self.listeners = listeners
        self.proc = None

    def start(self):
        """Starts Envoy and waits until it is ready: LIVE, every listener active and, for the
        filter, the route table loaded on the worker (its `route table loaded` log line from a
        thread other than the main one). Returns the seconds from exec to ready."""
        self.log_path = self.dir / "envoy.log"
        self.log_file = open(self.log_path, "a")
        log_from = self.log_file.tell()
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", ENVOY, "-c", str(self.dir / "envoy.yaml"), "--concurrency", "1",
             "--disable-hot-restart", "--log-level", "warn", "--component-log-level", "wasm:info"],
            stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 900
        active, live, told = 0, False, started
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"Envoy ({self.variant}) exited:\n{self.log_path.read_text()[-3000:]}")
            # Only cheap admin calls while Envoy starts: a filtered /stats scans every stat on the
            # main thread (a second or more with 10,000 clusters), which would slow the start it
            # times. /ready first; once LIVE, the active listeners.
            try:
                live = admin_get(ADMIN[self.variant], "/ready").strip() == "LIVE"
                if live:
                    listeners = json.loads(admin_get(ADMIN[self.variant], "/listeners?format=json"))
                    active = len(listeners.get("listener_statuses", []))
                    if active >= self.listeners and (self.variant != "filter" or self.table_on_worker(log_from)):
                        return time.perf_counter() - started
            except (OSError, ValueError):
                live = False
            if time.perf_counter() - told > 15:
                told = time.perf_counter()
                log(f"  {self.variant}: starting, {told - started:.0f} s, "
                    + (f"{active:,} of {self.listeners:,} listeners active" if live else "not live yet"))
            time.sleep(0.05)
        raise SystemExit(f"Envoy ({self.variant}) not ready:\n{self.log_path.read_text()[-3000:]}")

    def table_on_worker(self, log_from):
        with open(self.log_path, errors="replace") as f:
            f.seek(log_from)
            for line in f:
                m = TABLE_LOADED.match(line)
                if m and int(m.group(1)) != self.proc.pid:
                    return True
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if getattr(self, "log_file", None):
            self.log_file.close()

    def envoy_pid(self):
        # taskset execs Envoy, so the child is Envoy itself.
        return self.proc.pid

    def cpu_ns(self):
        total = 0
        for task in Path(f"/proc/{self.envoy_pid()}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total

    def rss_mib(self):
        for line in Path(f"/proc/{self.envoy_pid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def start_upstream():
    """The echo server every route set's backends point at, on CPU 1, once it accepts connections."""
    host, port = UPSTREAM.split(":")
    upstream = subprocess.Popen(["taskset", "-c", "1", ECHO, "--name", "upstream", "--listen", UPSTREAM],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(100):
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return upstream


def admin_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
        return r.read().decode()


def load(requests, variant, count, connections=8, rate=None):
    cmd = ["taskset", "-c", "1", BENCH, "load", "--requests", str(requests), "--net", NETS[variant],
           "--count", str(count), "--connections", str(connections)]
    if rate:
        cmd += ["--rate", str(rate)]
    return json.loads(run(cmd).stdout)


def localize(src, dst, variant):
    """The generated manifests with this variant's network."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        (dst / f.name).write_text(f.read_text().replace(GEN_NET + ".", NETS[variant] + "."))


def sync(manifests, out, variant, mode, extra=()):
    cmd = [MESHROUTE, "sync", str(manifests), "--out", str(out), "--once", "--admin-port", str(ADMIN[variant])]
    cmd += ["--wasm", WASM] if mode == "filter" else ["--mode", "native"]
    cmd += list(extra)
    started = time.perf_counter()
    run(cmd)
    return time.perf_counter() - started


def timed(cmd, times=3):
    walls = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - started)
    return median(walls)


LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\].*route table loaded(.*)$")
ELAPSED = re.compile(r"in ([0-9.]+) ?(ms|µs|us|s)\b")


# The filter's `route table loaded` line and the thread that wrote it (Envoy's main thread's id is
# its process id; taskset execs Envoy, so that is the child's pid).
TABLE_LOADED = re.compile(r"^\[[^]]*\]\[(\d+)\].*route table loaded")


def configure_lines(log_path):
    """(wall time, elapsed seconds the filter reports or None) of each 'route table loaded'."""
    found = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        m = LOG_TIME.match(line)
        if not m:
            continue
        at = datetime.strptime(m.group(1)[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
        e = ELAPSED.search(m.group(2))
        elapsed = None
        if e:
            elapsed = float(e.group(1)) * {"ms": 1e-3, "µs": 1e-6, "us": 1e-6, "s": 1.0}[e.group(2)]
        found.append((at, elapsed))
    return found


def visible(envoy, manifests, out, variant, mode, frontend, k, extra=(), cap=30.0):
    """Adds a route for a new path, publishes, and times until Envoy routes it (at most `cap`
    seconds: then `capped` is set and `visible_s` is the cap)."""
    path = f"/visible-{variant}-{k}"
    route = (f"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: visible\n"
             f"  namespace: bench\nspec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: {frontend[0]}\n"
             f"    port: 80\n  rules:\n  - matches:\n    - path:\n        type: Exact\n        value: {path}\n"
             f"    backendRefs:\n    - name: b1\n      port: 80\n")
    (manifests / "visible.yaml").write_text(route)
    lines_before = len(configure_lines(envoy.log_path)) if mode == "filter" else 0
    sync_s = sync(manifests, out, variant, mode, extra)
    published = time.time()
    host, port = frontend[1], 80
    deadline = published + cap
    capped = True
    while time.time() < deadline:
        try:
            c = socket.create_connection((host, port), timeout=2)
            c.sendall(f"GET {path} HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n\r\n".encode())
            status = c.recv(64).split(b" ")[1]
            c.close()
            if status == b"200":
                capped = False
                break
        except (OSError, IndexError):
            pass
        time.sleep(0.002)
    seen = time.time()
    configure = None
    if mode == "filter":
        time.sleep(0.05)
        after = configure_lines(envoy.log_path)[lines_before:]
        if after:
            at, elapsed = after[-1]
            configure = elapsed if elapsed is not None else max(0.0, at - published)
    return {"sync_s": sync_s, "visible_s": min(seen - published, cap), "capped": capped, "configure_s": configure,
            "configure_reported": mode == "filter" and configure is not None and after[-1][1] is not None}


def bench_set(name, gen_args, args, work, sync_args=()):
    """`sync_args`: more `meshroute sync` arguments for the filter's and native Envoys (`--no-metrics`)."""
    log(f"--- {name}")
    setdir = work / name
    run([BENCH, "gen", *gen_args, "--upstream", UPSTREAM, "--out", str(setdir / "gen")])
    run([BENCH, "gen", *gen_args, "--no-routes", "--upstream", UPSTREAM, "--out", str(setdir / "gen-floor")])
    requests = setdir / "gen" / "requests.tsv"
    result = {"name": name}
    result["compile_s"] = timed([MESHROUTE, "compile", str(setdir / "gen" / "manifests")], 1 if args.smoke else 3)
    result["compile_rds_s"] = timed(
        [MESHROUTE, "compile", str(setdir / "gen" / "manifests"), "--format", "envoy-rds"], 1 if args.smoke else 3)
    envoys = {}
    for variant in VARIANTS:
        manifests = setdir / variant / "manifests"
        src = setdir / ("gen-floor" if variant == "floor" else "gen") / "manifests"
        localize(src, manifests, variant)
        out = setdir / variant / "envoy"
        sync(manifests, out, variant, "filter" if variant == "filter" else "native",
             sync_args if variant != "floor" else ())
        # The filter's local mode binds every Service address through one listener; native mode
        # (and so the floor) has one per address.
        addresses = len(re.findall(r"clusterIP:", (manifests / "services.yaml").read_text()))
        listeners = 1 if variant == "filter" else addresses
        envoys[variant] = Envoy(variant, out, listeners)
    # Big Services sets: fewer rounds and no restarts (native's and the floor's Envoys take a
    # minute or more to start there).
    big = "--services" in gen_args and int(gen_args[gen_args.index("--services") + 1]) > BIG_SERVICES
    pairs = args.services_pairs if big else args.pairs
    restart_every = 0 if big else args.restart_every
    result["pairs"], result["restart_every"] = pairs, restart_every
    # One Envoy at a time, each timed from exec to ready (they share CPU 0, so starting them
    # together takes as long in all and says nothing about each).
    result["start_s"], result["rss_ready_mib"] = {}, {}
    try:
        for variant in VARIANTS:
            log(f"{name}: starting {variant} ({envoys[variant].listeners:,} listeners)")
            result["start_s"][variant] = envoys[variant].start()
            result["rss_ready_mib"][variant] = envoys[variant].rss_mib()
            log(f"{name}: {variant} ready in {result['start_s'][variant]:.1f} s, RSS {result['rss_ready_mib'][variant]:.0f} MiB")
        # Routing answers 2xx on every variant before anything is measured.
        for variant in VARIANTS:
            check = load(requests, variant, min(2000, args.requests))
            if check["ok"] != check["requests"]:
                raise SystemExit(f"{name}/{variant}: not every request answered 2xx: {check}")
        cpu = {v: [] for v in VARIANTS}
        ratios = {"filter/native": [], "filter/floor": [], "native/floor": []}
        for round_ in range(pairs):
            if round_ and restart_every and round_ % restart_every == 0:
                log(f"{name}: restarting the Envoys")
                for e in envoys.values():
                    e.stop()
                    e.start()
            order = VARIANTS[round_ % 3:] + VARIANTS[:round_ % 3]
            per = {}
            for variant in order:
                load(requests, variant, args.warm)
                before = envoys[variant].cpu_ns()
                r = load(requests, variant, args.requests)
                after = envoys[variant].cpu_ns()
                if r["ok"] != r["requests"]:
                    raise SystemExit(f"{name}/{variant}: not every request answered 2xx: {r}")
                per[variant] = (after - before) / 1e3 / r["requests"]
                cpu[variant].append(per[variant])
            ratios["filter/native"].append(per["filter"] / per["native"])
            ratios["filter/floor"].append(per["filter"] / per["floor"])
            ratios["native/floor"].append(per["native"] / per["floor"])
            log(f"{name} round {round_ + 1}: " + ", ".join(f"{v} {per[v]:.1f} µs" for v in VARIANTS)
                + f", filter/native {ratios['filter/native'][-1]:.3f}")
        result["cpu_us"] = cpu
        result["ratios"] = ratios
        result["rss_mib"] = {v: envoys[v].rss_mib() for v in VARIANTS}
        log(f"{name}: RSS " + ", ".join(f"{v} {result['rss_mib'][v]:.0f} MiB" for v in VARIANTS)
            + "; latency at a fixed rate")
        result["latency"] = {}
        for variant in VARIANTS:
            r = load(requests, variant, int(args.rate * args.rate_seconds), connections=16, rate=args.rate)
            result["latency"][variant] = r
        log(f"{name}: throughput")
        result["throughput"] = {v: [] for v in VARIANTS}
        for _ in range(1 if args.smoke else 3):
            for variant in VARIANTS:
                r = load(requests, variant, args.requests * 2, connections=32)
                result["throughput"][variant].append(r["rps"])
        # Publish to visible, and the filter's on_configure.
        frontend = ("svc", NETS["filter"] + ".0.1") if "--rules" in gen_args else ("s00000", None)
        result["visible"] = {}
        for variant, mode in (("filter", "filter"), ("native", "native")):
            ip = NETS[variant] + (".0.1" if "--rules" in gen_args else ".1.1")
            trials = []
            for k in range(1 if args.smoke else 3):
                t = visible(envoys[variant], setdir / variant / "manifests", setdir / variant / "envoy", variant, mode,
                            (frontend[0], ip), k, sync_args, args.visible_cap)
                trials.append(t)
                log(f"{name}: {variant} publish to visible {'> ' if t['capped'] else ''}{t['visible_s']:.2f} s "
                    f"(sync --once {t['sync_s']:.2f} s)")
                if t["capped"]:
                    break  # the next change would land on one Envoy has not finished
            result["visible"][variant] = trials
    finally:
        for e in envoys.values():
            e.stop()
    return result


def criterion(smoke):
    cmd = ["cargo", "bench", "-p", "meshroute-filter", "--bench", "match", "--", "--noplot"]
    if smoke:
        cmd += ["--warm-up-time", "0.1", "--measurement-time", "0.2", "route/spread/10$"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    figures = {}
    unit = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
    for m in re.finditer(r"^(\S+)\s+time:\s+\[\S+ \S+ ([0-9.]+) (\S+) \S+ \S+\]", out, re.M):
        figures[m.group(1)] = float(m.group(2)) * unit[m.group(3)]
    return figures


def machine():
    model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("model name")), platform.processor() or "unknown")
    envoy_version = run([ENVOY, "--version"]).stdout.strip().split("version:")[-1].strip()
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "envoy": envoy_version}


def plots(results, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in results]
    x = range(len(names))
    colors = {"filter": "tab:blue", "native": "tab:orange", "floor": "tab:gray"}
    written = []

    def bars(fname, title, ylabel, value, log_scale=False):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.27
        for i, v in enumerate(VARIANTS):
            ax.bar([p + (i - 1) * width for p in x], [value(r, v) for r in results], width, label=v, color=colors[v])
        ax.set_xticks(list(x), names)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if log_scale:
            ax.set_yscale("log")
        ax.legend()
        fig.tight_layout()
        fig.savefig(outdir / fname, dpi=110)
        plt.close(fig)
        written.append(fname)

    bars("cpu-per-request.png", "Envoy CPU per request (median of runs)", "µs per request",
         lambda r, v: median(r["cpu_us"][v]), log_scale=True)
    bars("latency-p50.png", "p50 latency at a fixed request rate", "µs", lambda r, v: r["latency"][v]["p50_us"])
    bars("latency-p99.png", "p99 latency at a fixed request rate", "µs", lambda r, v: r["latency"][v]["p99_us"])
    bars("throughput.png", "Highest throughput (one Envoy worker)", "requests per second",
         lambda r, v: median(r["throughput"][v]))
    bars("memory.png", "Envoy resident memory with the table loaded", "MiB", lambda r, v: r["rss_mib"][v])

    fig, ax = plt.subplots(figsize=(8, 4.5))
    meds = [median(r["ratios"]["filter/native"]) for r in results]
    lo = [m - min(r["ratios"]["filter/native"]) for m, r in zip(meds, results)]
    hi = [max(r["ratios"]["filter/native"]) - m for m, r in zip(meds, results)]
    ax.errorbar(list(x), meds, yerr=[lo, hi], fmt="o", capsize=5, label="filter / native (median, min–max)")
    for size, key in (("10 rules", "ratio_10"), ("1,000 rules", "ratio_1000"), ("10,000 rules", "ratio_10000")):
        if size in names:
            ax.plot([names.index(size)], [TARGETS[key]], "r_", markersize=30, label=None)
    ax.axhline(1.0, color="gray", linewidth=0.8)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("CPU per request, filter / native")
    ax.set_title("Filter against Envoy's own router (red: target)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "cpu-ratio.png", dpi=110)
    plt.close(fig)
    written.append("cpu-ratio.png")

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.bar([p - 0.2 for p in x], [r["compile_s"] * 1e3 for r in results], 0.4, label="meshroute compile")
    ax.bar([p + 0.2 for p in x], [median([t["visible_s"] for t in r["visible"]["filter"]]) * 1e3 for r in results], 0.4,
           label="publish to visible (filter)")
    ax.set_yscale("log")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("ms")
    ax.set_title("Configuration: compile time and publish-to-visible time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "config-times.png", dpi=110)
    plt.close(fig)
    written.append("config-times.png")
    return written


def visible_text(trials, cap, ms=False):
    """Median publish-to-visible time; '> cap' when the median change was not visible within the cap."""
    if not trials:
        return "n/a"
    m = median([t["visible_s"] for t in trials])
    over = m >= cap and any(t.get("capped") for t in trials)
    if ms:
        return f"{'> ' if over else ''}{m * 1e3:.0f}"
    return f"> {cap:.0f} s" if over else seconds(m)


def seconds(s):
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.1f} s"


def verdict(value, target, lower_is_better=True):
    if value != value:  # NaN
        return "not measured"
    ok = value <= target if lower_is_better else value >= target
    return "met" if ok else f"missed by {value / target:.2f}× the target"


# What the profile of the misses shows; kept with the code that measures them.
MISSED = [
    "- **CPU at 10 rules.** Judged with counting off in both data planes (`sync --no-metrics`): native mode's "
    "counting (Envoy's stats access loggers) costs it more than the filter's costs the filter, so with counting on "
    "the ratio looks better than the routing is. Measured step by step (wasm variants interleaved with native, "
    "medians of per-round differences): a wasm filter that does nothing costs +0.10 to +0.16 × native (Envoy enters "
    "the VM for every stream event; the Rust SDK exports every callback); `get_property(destination.address)` "
    "+0.08 to +0.10 (a CEL activation per call, and a call back into the VM for the result); reading every header "
    "in one call +0.05 to +0.10; writing the selection header +0.03 to +0.06 (the route is matched again); the "
    "core and the rest of the glue about +0.03. The listeners meshroute writes now name the destination in a "
    "header (`x-meshroute-destination`, written by Envoy's `early_header_mutation` over any client's copy), which "
    "the filter reads with the other headers in that one call: the property lookup is gone. What remains is the "
    "floor, one header read and the selection header.",
    "- **Core match at 10,000 rules.** A request that no rule takes costs the same at every size: the index (one "
    "hash map of every frontend's exact paths and path prefixes, regexes by their literal segments) keeps the work "
    "constant. Requests spread over 10,000 rules cost more because each touches a different part of the table, so "
    "the time is cache misses, not comparisons: an index slot carries what its match asks beyond the path (the "
    "first condition inline, the others in one array of the table, their text in one string), so a candidate "
    "costs a cache line or two. The requests are copied outside the timing, 16 at a time, so that each is hot in "
    "cache when routed, as a request Envoy has just parsed is.",
    "- **Many Services.** Envoy keeps the filter's configuration (the whole table) once per listener it is used "
    "in, so local mode binds every Service address through one listener (before, with one listener per port, "
    "10,000 Services × 2 rules went past 24 GiB). Envoy watches each of meshroute's files by its path, so a table "
    "change reloads the table alone, not the 10,000 clusters.",
]


def report(results, crit, info, args, written, path):
    by = {r["name"]: r for r in results}
    lines = ["# meshroute benchmark", ""]
    lines += ["Written by `make bench` (bench/bench.py); the plots are beside this file." if not args.smoke
              else "**Smoke run** (`make bench-smoke`): one small size, two rounds; the figures mean nothing.", ""]
    lines += ["## Machine", "",
              f"- CPUs (`nproc`): {info['nproc']}", f"- CPU: {info['cpu']}", f"- kernel: {info['kernel']}",
              f"- Envoy: {info['envoy']}",
              f"- run: {args.pairs} rounds of {args.requests} requests per Envoy, restart every {args.restart_every} rounds, "
              f"fixed rate {args.rate}/s for {args.rate_seconds} s; Services sets of more than {BIG_SERVICES:,} Services: "
              f"{args.services_pairs} rounds, no restarts; publish to visible waited for at most {args.visible_cap:.0f} s", ""]

    def ratio(name):
        r = by.get(name)
        return median(r["ratios"]["filter/native"]) if r else float("nan")

    def spread(name):
        r = by.get(name)
        if not r:
            return ""
        xs = r["ratios"]["filter/native"]
        q1, q3 = quartiles(xs)
        return f"quartiles {q1:.3f}–{q3:.3f}, min {min(xs):.3f}, max {max(xs):.3f}, {len(xs)} rounds"

    growth = float("nan")
    if "10 rules" in by and "10,000 rules" in by:
        growth = median(by["10,000 rules"]["cpu_us"]["filter"]) / median(by["10 rules"]["cpu_us"]["filter"])
    core = crit.get("route/spread/10000", float("nan"))
    ten = "10 rules, no metrics" if "10 rules, no metrics" in by else "10 rules"
    big = by.get("10,000 rules")
    compile_s = big["compile_s"] if big else float("nan")
    visible_ms = median([t["visible_s"] for t in big["visible"]["filter"]]) * 1e3 if big else float("nan")
    rows = [
        # Like for like: counting off in both when the set was run (native mode's counting costs it
        # more than the filter's costs the filter).
        ("filter / native CPU per request, 10 rules" + (", counting off in both" if "10 rules, no metrics" in by else ""),
         f"{ratio(ten):.3f}", "≤ 1.20", verdict(ratio(ten), 1.20), spread(ten)),
        ("filter / native CPU per request, 1,000 rules", f"{ratio('1,000 rules'):.3f}", "≤ 1.0", verdict(ratio("1,000 rules"), 1.0), spread("1,000 rules")),
        ("filter / native CPU per request, 10,000 rules", f"{ratio('10,000 rules'):.3f}", "≤ 0.5", verdict(ratio("10,000 rules"), 0.5), spread("10,000 rules")),
        ("filter CPU at 10,000 rules / at 10 rules", f"{growth:.3f}", "≤ 1.2", verdict(growth, 1.2), "medians of separate sets"),
        ("core match at 10,000 rules (criterion)", f"{core:.0f} ns", "≤ 200 ns", verdict(core, 200.0), "requests spread over every rule"),
        ("`meshroute compile`, 10,000 rules", f"{compile_s * 1e3:.0f} ms", "< 1 s", verdict(compile_s, 1.0), "wall time, whole command"),
        ("publish to visible, 10,000 rules (filter)", f"{visible_ms:.0f} ms", "< 500 ms", verdict(visible_ms, 500.0), "files written → new route answers"),
    ]
    services = [r for r in results if r["name"].endswith(" Services × 2")]
    if services:
        # The biggest Services set against the targets for many Services.
        r = max(services, key=lambda r: int(r["name"].split()[0].replace(",", "")))
        n = r["name"]
        rss = {v: r["rss_mib"][v] for v in VARIANTS}
        rss_ratio = rss["filter"] / rss["native"]
        start = r["start_s"]
        start_ratio = start["filter"] / start["native"]
        vis = median([t["visible_s"] for t in r["visible"]["filter"]])
        rows += [
            (f"Envoy RSS, {n}: filter / native", f"{rss_ratio:.2f} ({rss['filter']:.0f} / {rss['native']:.0f} MiB)",
             f"≤ {TARGETS['services_rss']}", verdict(rss_ratio, TARGETS["services_rss"]),
             f"after the measured runs; floor {rss['floor']:.0f} MiB; at ready: filter {r['rss_ready_mib']['filter']:.0f}, "
             f"native {r['rss_ready_mib']['native']:.0f}, floor {r['rss_ready_mib']['floor']:.0f} MiB"),
            (f"Envoy start, {n}: filter / native", f"{start_ratio:.2f} ({start['filter']:.1f} / {start['native']:.1f} s)",
             "≤ 1.0 (filter no slower)", verdict(start_ratio, TARGETS["services_start"]),
             f"each Envoy alone, exec → every listener active (and the filter's table loaded); floor {start['floor']:.1f} s"),
            (f"publish to visible, {n} (filter)", visible_text(r["visible"]["filter"], args.visible_cap),
             f"≤ {TARGETS['services_visible_s']:.0f} s", verdict(vis, TARGETS["services_visible_s"]),
             f"filter max {seconds(max(t['visible_s'] for t in r['visible']['filter']))}; native: "
             f"{visible_text(r['visible']['native'], args.visible_cap)}, max "
             f"{seconds(max(t['visible_s'] for t in r['visible']['native']))}; `sync --once`: filter "
             f"{seconds(median([t['sync_s'] for t in r['visible']['filter']]))}, native "
             f"{seconds(median([t['sync_s'] for t in r['visible']['native']]))}; medians of "
             f"{len(r['visible']['filter'])} / {len(r['visible']['native'])} changes"),
            (f"filter / native CPU per request, {n}", f"{ratio(n):.3f}", "(report)",
             f"filter {median(r['cpu_us']['filter']):.1f} µs, native {median(r['cpu_us']['native']):.1f} µs, "
             f"floor {median(r['cpu_us']['floor']):.1f} µs", spread(n)),
        ]
    modified = next((r for r in results if r["name"].endswith(", header modifier")), None)
    if modified:
        # What a RequestHeaderModifier on the matched rule adds: the ratio to native with it,
        # less the ratio without (both native runs route the same rules, with and without it).
        plain = modified["name"].removesuffix(", header modifier")
        added = ratio(modified["name"]) - ratio(plain)
        base = next((r for r in results if r["name"] == plain), None)
        added_us = (median(modified["cpu_us"]["filter"]) - median(base["cpu_us"]["filter"])) if base else float("nan")
        rows.append(("filter / native CPU per request, a header modifier on every rule of "
                     + plain, f"{ratio(modified['name']):.3f}", "(report)",
                     f"{added:+.3f} × native, {added_us:+.1f} µs filter CPU over " + plain, spread(modified["name"])))
    uncounted = next((r for r in results if r["name"].endswith(", no metrics")), None)
    counted = by.get(uncounted["name"].removesuffix(", no metrics")) if uncounted else None
    if uncounted and counted:
        # What counting costs each data plane: the same set with and without it (the filter's
        # proxy-wasm counter; native mode's stats access loggers), in µs and in native-without units.
        def cost(variant):
            return median(counted["cpu_us"][variant]) - median(uncounted["cpu_us"][variant])
        native_without = median(uncounted["cpu_us"]["native"])
        rows.append(("filter / native CPU per request, counting on in both, " + counted["name"],
                     f"{ratio(counted['name']):.3f}", "(report)",
                     f"counting costs the filter {cost('filter'):+.1f} µs ({cost('filter') / native_without:+.3f} × native), "
                     f"native mode {cost('native'):+.1f} µs ({cost('native') / native_without:+.3f} × native)",
                     spread(counted["name"])))
    lines += ["## Summary against the targets", "", "| figure | measured | target | verdict | spread / note |",
              "| --- | --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    lines += ["", "![filter / native](cpu-ratio.png)", ""]
    lines += ["## Where targets are missed", "", *MISSED, ""]

    lines += ["## Envoy CPU per request", "",
              "Median µs of Envoy CPU per request over the rounds; ratios are medians of per-round ratios.", "",
              "| route set | filter µs | native µs | floor µs | filter/native | filter/floor | native/floor |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        c, q = r["cpu_us"], r["ratios"]
        lines.append(f"| {r['name']} | {median(c['filter']):.1f} | {median(c['native']):.1f} | {median(c['floor']):.1f} | "
                     f"{median(q['filter/native']):.3f} | {median(q['filter/floor']):.3f} | {median(q['native/floor']):.3f} |")
    lines += ["", "![CPU per request](cpu-per-request.png)", ""]

    lines += ["## Latency, throughput, memory", "",
              f"Latency at a fixed {args.rate} requests/s over 16 connections, counted from when each request was due. "
              "Throughput: 32 connections as fast as they go, median of runs (the client and the upstream share one core, "
              "so at the highest rates they may be the limit, not Envoy). RSS after the measured runs.", "",
              "| route set | variant | p50 µs | p99 µs | highest rps | RSS MiB | RSS at ready MiB |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for v in VARIANTS:
            lines.append(f"| {r['name']} | {v} | {r['latency'][v]['p50_us']} | {r['latency'][v]['p99_us']} | "
                         f"{median(r['throughput'][v]):.0f} | {r['rss_mib'][v]:.1f} | {r['rss_ready_mib'][v]:.1f} |")
    lines += ["", "![p50](latency-p50.png) ![p99](latency-p99.png)", "", "![throughput](throughput.png) ![memory](memory.png)", ""]

    lines += ["## Configuration times", "",
              "`meshroute compile` (route table, JSON) and `--format envoy-rds`: wall time of the whole command, median of 3. "
              "`sync`: `meshroute sync --once` wall time. Visible: from the moment `sync` has written its files until a request "
              "for the newly added path is answered by its backend (polled every 2 ms). on_configure: from the filter's own "
              "log line when it reports the elapsed time, else from publishing to the filter's `route table loaded` log line "
              "(Envoy's millisecond timestamps), an upper bound that includes Envoy reading and decoding the file. "
              f"Visible is waited for at most {args.visible_cap:.0f} s ('>' when that was hit). Start: each Envoy started "
              "alone, from exec until it is live with every listener active and, for the filter, the route table loaded "
              "on its worker.", "",
              "| route set | compile ms | compile envoy-rds ms | sync ms (filter) | visible ms (filter) | on_configure ms | sync ms (native) | visible ms (native) | start s filter | start s native | start s floor |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        f, n = r["visible"]["filter"], r["visible"]["native"]
        conf = [t["configure_s"] for t in f if t["configure_s"] is not None]
        conf_text = f"{median(conf) * 1e3:.1f}" + ("" if any(t["configure_reported"] for t in f) else " (≤)") if conf else "n/a"
        lines.append(f"| {r['name']} | {r['compile_s'] * 1e3:.0f} | {r['compile_rds_s'] * 1e3:.0f} | "
                     f"{median([t['sync_s'] for t in f]) * 1e3:.0f} | {visible_text(f, args.visible_cap, ms=True)} | {conf_text} | "
                     f"{median([t['sync_s'] for t in n]) * 1e3:.0f} | {visible_text(n, args.visible_cap, ms=True)} | "
                     + " | ".join(f"{r['start_s'][v]:.1f}" for v in VARIANTS) + " |")
    lines += ["", "![configuration times](config-times.png)", ""]

    lines += ["## Core matcher (criterion)", "", "`cargo bench -p meshroute-filter` (filter/benches/match.rs), natively: "
              "`spread` routes requests spread over every rule, `miss` one that no rule takes, `configure` decodes and "
              "compiles the table JSON as `on_configure` does.", "", "| benchmark | time |", "| --- | --- |"]
    for k, v in crit.items():
        lines.append(f"| {k} | {v / 1e3:.3f} µs |" if v >= 1e3 else f"| {k} | {v:.1f} ns |")
    lines += [""]

    lines += ["## Method", "",
              "- Route sets (`meshroute-bench gen`, bench/src/routeset.rs): N rules on one Service in HTTPRoutes of 10 rules: "
              "Exact paths, segment prefixes, prefix + header, prefix + query parameter, Exact + method, one regex in 50, one rule "
              "in 10 split 1:1 over two backends. The request list holds one request per rule, shuffled, so requests spread over "
              "every rule including the one Envoy's scan reaches last. "
              + (f"The Services sets have {' and '.join(f'{n:,}' for n in services_counts(args))} Services with 2 rules "
                 "each; requests come 20 at a time per Service over one connection. The filter's Envoy binds every "
                 "Service address through one listener; native mode and the floor have one listener per Service port."
                 if services_counts(args) else "No Services sets in this run."),
              "- Three Envoys per set, each `--concurrency 1`, pinned to CPU 0 with taskset; the load client "
              "(`meshroute-bench load`, Rust, HTTP/1.1 keep-alive, 8 connections) and the echo upstream on CPU 1.",
              "- CPU: the sum of Envoy's threads' run time (/proc/PID/task/*/schedstat) across a fixed number of requests, "
              "after a warm-up burst, in rounds that rotate the order of the three Envoys; every Envoy is restarted every "
              f"{args.restart_every} rounds (Services sets of more than {BIG_SERVICES:,} Services: {args.services_pairs} "
              "rounds, no restarts). Every request must answer 2xx or the run fails.",
              "- The three Envoys of a set are started one after another, each timed alone from exec to ready.",
              "- Floor: `meshroute sync --mode native` of the same Services without routes: one pass-through route per listener.",
              "- Native: `meshroute sync --mode native`: one RouteConfiguration, a virtual host per listener picked by a header "
              "the listener sets (early header mutation + `vhost_header`), routes in the filter's precedence order.", ""]
    path.write_text("\n".join(lines) + "\n")


def services_counts(args):
    return [int(n) for n in str(args.services).split(",") if n.strip() and int(n)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="one small set, two rounds: checks that everything runs")
    p.add_argument("--sizes", default="10,100,1000,10000")
    p.add_argument("--services", default="1000,10000",
                   help="Services sets: Services of 2 rules each, one set per number (empty or 0: none)")
    p.add_argument("--pairs", type=int, default=30, help="rounds per set")
    p.add_argument("--services-pairs", type=int, default=6,
                   help=f"rounds for a Services set of more than {BIG_SERVICES:,} Services, with no restarts "
                        "(native's and the floor's Envoys, one listener per Service port, take a minute or more to start there)")
    p.add_argument("--header-modifier", action=argparse.BooleanOptionalAction, default=True,
                   help="add the smallest set again with a RequestHeaderModifier on every rule: what such a rule costs (not in --smoke)")
    p.add_argument("--no-metrics-set", action=argparse.BooleanOptionalAction, default=True,
                   help="add the smallest set again with counting off in the filter and native mode (sync --no-metrics): what counting costs each (not in --smoke)")
    p.add_argument("--visible-cap", type=float, default=60.0,
                   help="seconds to wait for a published route to answer before reporting '> cap'")
    p.add_argument("--requests", type=int, default=20000, help="requests per measured run")
    p.add_argument("--warm", type=int, default=2000, help="requests before each measured run")
    p.add_argument("--restart-every", type=int, default=10)
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--rate-seconds", type=float, default=5)
    p.add_argument("--out", default=str(ROOT / "bench"))
    p.add_argument("--report", action="store_true",
                   help="measure nothing: write OUT/report.md and the plots again from OUT/results.json (give the options of its run)")
    args = p.parse_args()
    if args.smoke:
        args.sizes, args.services, args.pairs, args.requests, args.warm = "10", "", 2, 1000, 200
        args.restart_every, args.rate, args.rate_seconds = 1, 500, 1
    if not ENVOY:
        raise SystemExit("set ENVOY_BIN (make bench does)")
    for tool in ("taskset",):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed")
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    if args.report:
        saved = json.loads((outdir / "results.json").read_text())
        written = plots(saved["sets"], outdir)
        report(saved["sets"], saved["criterion"], saved["machine"], args, written, outdir / "report.md")
        log(f"wrote {outdir / 'report.md'} and {', '.join(written)} from {outdir / 'results.json'}")
        return
    work = Path(tempfile.mkdtemp(prefix="meshroute-bench-"))
    upstream = start_upstream()
    try:
        info = machine()
        sets = [(f"{int(n):,} rules", ["--rules", n], ()) for n in args.sizes.split(",") if n]
        if sets and not args.smoke:
            name, gen, _ = sets[0]
            if args.no_metrics_set:
                sets.insert(1, (f"{name}, no metrics", gen, ("--no-metrics",)))
            if args.header_modifier:
                sets.insert(1, (f"{name}, header modifier", [*gen, "--header-modifier"], ()))
        for n in services_counts(args):
            sets.append((f"{n:,} Services × 2", ["--services", str(n)], ()))
        results = [bench_set(name, gen, args, work, sync_args) for name, gen, sync_args in sets]
        log("criterion")
        crit = criterion(args.smoke)
        written = plots(results, outdir)
        report(results, crit, info, args, written, outdir / "report.md")
        (outdir / "results.json").write_text(json.dumps({"machine": info, "sets": results, "criterion": crit}, indent=1))
        log(f"wrote {outdir / 'report.md'} and {', '.join(written)}")
    finally:
        os.killpg(upstream.pid, signal.SIGTERM)
        upstream.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
