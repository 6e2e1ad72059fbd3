#!/usr/bin/env python3
"""What proxyless gRPC support costs and how fast it is: `meshroute serve` measured with a real
grpcio client and with many simulated ones; writes bench/xds-report.md (and xds-results.json).

    .venv/bin/python bench/xds_bench.py [--changes 120] [--clients 1000] [--services 1000] [--build]
        [--only latency|scale|build ...] [--report]

Run from the repository root, after `make build` and `cargo build --release -p meshroute-bench`
(`make bench-xds` does all of it). It needs grpcio (installed by `make setup`) and nothing else
beyond the standard library.

- latency: `serve` on a directory with one GRPCRoute; one long-lived grpcio channel dialling
  `xds:///echo-service.default.svc.cluster.local:8080` (bootstrap from `meshroute
  grpc-bootstrap`) calls the route, one call after another, while the route's backend is flipped
  `--changes` times, each change a new manifest renamed into the directory. Measured: from the
  rename to the first call answered by the new backend, and the part of it until serve logs the
  new version (its 50 ms debounce, then the build).
- scale: `--services` Services with a GRPCRoute each (`meshroute-bench gen --grpc`), `serve`, and
  `--clients` simulated proxyless clients (`meshroute-bench ads`: one ADS stream and one HTTP/2
  connection each, LDS -> RDS -> CDS -> EDS, every response ACKed). Measured from /proc: serve's
  resident memory idle and with the clients, CPU time to bring every client up, and CPU and wall
  time to push one change to all of them (every GRPCRoute's backends swapped) and one that only
  one client's routes see.
- build (`--build`, slow): a clean `cargo build --release -p meshroute` of this commit and of the
  commit before the xDS dependencies, each in its own worktree and target directory, timed, and
  the binary sizes. Deleted afterwards.

Other processes compete for the CPU: the report gives the load average and the busiest other
processes at the start of each part, and medians with their spread rather than single runs.
"""

import argparse
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESHROUTE = os.environ.get("MESHROUTE_BIN", str(ROOT / "target/release/meshroute"))
GRPC_ECHO = os.environ.get("MESHROUTE_GRPC_ECHO_BIN", str(ROOT / "target/release/meshroute-grpc-echo"))
BENCH = os.environ.get("MESHROUTE_BENCH_BIN", str(ROOT / "target/release/meshroute-bench"))
RUN = ROOT / ".run" / "xds-bench"
METHOD = "/echo_basic.grpcecho.GrpcEcho/Echo"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- processes and /proc ---------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU of every thread of `pid`, from /proc/PID/task/*/schedstat (ns), else
    /proc/PID/stat (clock ticks)."""
    total, found = 0, False
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
                    found = True
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    if found:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mib(pid):
    """(VmRSS, VmHWM) of `pid` in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def machine_state():
    """Load average and the busiest processes right now (by CPU over the last second)."""
    def ticks():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, tail = f.read().rsplit(")", 1)
                fields = tail.split()
                out[pid] = (head.split("(", 1)[1], int(fields[11]) + int(fields[12]))
            except (OSError, IndexError, ValueError):
                pass
        return out
    before = ticks()
    time.sleep(1.0)
    after = ticks()
    busy = {}
    for pid, (name, t) in after.items():
        if pid in before and pid != str(os.getpid()):
            used = (t - before[pid][1]) / CLK_TCK
            if used > 0.02:
                busy[name] = busy.get(name, 0.0) + used
    top = sorted(busy.items(), key=lambda item: -item[1])[:6]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"loadavg": [float(x) for x in load], "cores": os.cpu_count(),
            "busy": [{"name": name, "cores": round(used, 2)} for name, used in top]}


class Serve:
    """`meshroute serve DIR --xds 127.0.0.1:PORT`, its stderr read line by line with the time
    each line arrived (monotonic and wall clock)."""

    def __init__(self, directory, log_path):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.lines = []
        self.cond = threading.Condition()
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([MESHROUTE, "serve", str(directory), "--xds", self.addr],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda line: line.startswith("meshroute serve: ADS on"), 60)

    def _read(self):
        for line in self.proc.stderr:
            stamp = (time.monotonic(), time.time(), line.rstrip("\n"))
            self.log.write(line)
            with self.cond:
                self.lines.append(stamp)
                self.cond.notify_all()

    def wait_for(self, test, timeout, since=0):
        """The first line at index >= `since` that passes `test`: (index, monotonic, wall, text)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(since, len(self.lines)):
                    if test(self.lines[i][2]):
                        return (i, *self.lines[i])
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"meshroute serve: no such log line; see {self.log.name}")
                self.cond.wait(left)

    def version(self):
        """The version serve last logged."""
        with self.cond:
            for _, _, text in reversed(self.lines):
                if text.startswith("meshroute serve: version ") or ", version " in text:
                    return int(text.rsplit(" ", 1)[1])
        raise RuntimeError("meshroute serve logged no version")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def is_version(n):
    return lambda text: text == f"meshroute serve: version {n}"


def replace_file(directory, name, text):
    """Writes `text` beside `directory` (same file system) and renames it to `directory/name`:
    one atomic change, as a ConfigMap update is. Returns (monotonic, wall) right after."""
    tmp = directory.parent / f".{name}.tmp"
    tmp.write_text(text)
    os.rename(tmp, directory / name)
    return time.monotonic(), time.time()


# --- latency ---------------------------------------------------------------------------------

SERVICES = """apiVersion: v1
kind: Service
metadata: {name: echo-service, namespace: default}
spec:
  ports: [{name: grpc, port: 8080}]
"""
BACKEND = """---
apiVersion: v1
kind: Service
metadata: {name: NAME, namespace: default}
spec:
  ports: [{name: grpc, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: NAME-a
  namespace: default
  labels: {kubernetes.io/service-name: NAME}
addressType: IPv4
ports: [{name: grpc, port: PORT}]
endpoints: [{addresses: ["127.0.0.1"]}]
"""
ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo-route, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: echo-service, port: 8080}]
  rules:
  - matches: [{method: {service: echo_basic.grpcecho.GrpcEcho}}]
    backendRefs: [{name: BACKEND, port: 8080}]
"""


def measure_latency(changes, work):
    sys.path.insert(0, str(ROOT / "tests" / "proxyless"))
    directory = work / "latency" / "manifests"
    directory.mkdir(parents=True)
    backends, procs = ["backend-v1", "backend-v2"], []
    try:
        manifests = SERVICES
        for name in backends:
            port = free_port()
            procs.append(subprocess.Popen([GRPC_ECHO, "serve", "--name", name, "--listen", f"127.0.0.1:{port}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            manifests += BACKEND.replace("NAME", name).replace("PORT", str(port))
        (directory / "services.yaml").write_text(manifests)
        (directory / "route.yaml").write_text(ROUTE.replace("BACKEND", backends[0]))
        serve = Serve(directory, work / "latency" / "serve.log")
        try:
            bootstrap = work / "latency" / "bootstrap.json"
            bootstrap.write_text(subprocess.run([MESHROUTE, "grpc-bootstrap", "--xds", serve.addr, "--namespace", "default",
                                                 "--node-id", "xds-bench"], check=True, capture_output=True, text=True).stdout)
            os.environ["GRPC_XDS_BOOTSTRAP"] = str(bootstrap)
            import grpc
            from client import Client  # tests/proxyless/client.py: the end-to-end tests' client
            client = Client("xds:///echo-service.default.svc.cluster.local:8080")
            probe = {"method": METHOD, "message": "x", "timeout_s": 10}
            deadline = time.monotonic() + 30
            while client.call(probe).get("backend") != backends[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the proxyless client never reached backend-v1")
                time.sleep(0.01)
            state = machine_state()
            samples, failed, calls, call_times = [], 0, 0, []
            for i in range(changes):
                new = backends[(i + 1) % 2]
                since = len(serve.lines)
                version = serve.version() + 1
                time.sleep(random.uniform(0.15, 0.3))
                t0, _ = replace_file(directory, "route.yaml", ROUTE.replace("BACKEND", new))
                while True:
                    started = time.monotonic()
                    result = client.call(probe)
                    now = time.monotonic()
                    calls += 1
                    call_times.append(now - started)
                    if result["code"] != "OK":
                        failed += 1
                    elif result["backend"] == new:
                        break
                    if now - t0 > 10:
                        raise RuntimeError(f"change {i}: the client still routes to the old backend after 10 s")
                _, built, _, _ = serve.wait_for(is_version(version), 10, since)
                samples.append({"total_ms": (now - t0) * 1e3, "to_version_ms": (built - t0) * 1e3,
                                "last_call_ms": (now - started) * 1e3})
            client.channel.close()
            return {"changes": changes, "samples": samples, "calls": calls, "failed_calls": failed,
                    "call_ms_median": statistics.median(call_times) * 1e3, "grpcio": grpc.__version__,
                    "machine": state}
        finally:
            serve.stop()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


# --- scale -----------------------------------------------------------------------------------

def documents(text):
    return [doc for doc in text.split("---\n") if doc.strip()]


def measure_scale(clients, services, repeats, work):
    base = work / "scale"
    for variant, extra in (("a", []), ("b", ["--swap-backends"])):
        subprocess.run([BENCH, "gen", "--services", str(services), "--grpc", *extra, "--upstream", "127.0.0.1:9",
                        "--out", str(base / variant)], check=True)
    directory = base / "manifests"
    directory.mkdir()
    shutil.copy(base / "a" / "manifests" / "services.yaml", directory / "services.yaml")
    routes_a = (base / "a" / "manifests" / "routes.yaml").read_text()
    routes_b = (base / "b" / "manifests" / "routes.yaml").read_text()
    (directory / "routes.yaml").write_text(routes_a)
    # The same set with only the first Service's GRPCRoute changed.
    one_changed = "---\n".join([documents(routes_b)[0], *documents(routes_a)[1:]]) + "---\n"
    state = machine_state()
    serve = Serve(directory, base / "serve.log")
    load = None
    try:
        pid = serve.proc.pid
        time.sleep(2)
        idle_rss, _ = memory_mib(pid)
        cpu_start = cpu_seconds(pid)
        time.sleep(2)
        idle_cpu_per_s = (cpu_seconds(pid) - cpu_start) / 2
        # The same change before any client is connected: the rebuild alone.
        rebuild = []
        for text in (routes_b, routes_a) * 2:
            since, version = len(serve.lines), serve.version() + 1
            cpu_before = cpu_seconds(pid)
            _, wall0 = replace_file(directory, "routes.yaml", text)
            _, _, built_wall, _ = serve.wait_for(is_version(version), 10, since)
            time.sleep(1.0)
            rebuild.append({"cpu_s": cpu_seconds(pid) - cpu_before, "to_version_ms": (built_wall - wall0) * 1e3})
        idle_after_rebuilds_rss, _ = memory_mib(pid)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        load = subprocess.Popen([BENCH, "ads", "--xds", serve.addr, "--listeners", str(base / "a" / "listeners.txt"),
                                 "--clients", str(clients), "--namespace", "bench"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = json.loads(load.stdout.readline())
        ready_wall = time.monotonic() - t0
        if ready["ready"] != clients:
            raise RuntimeError(f"only {ready['ready']} of {clients} simulated clients got their endpoints: {ready}")
        time.sleep(0.5)
        initial_cpu = cpu_seconds(pid) - cpu0
        rss_clients, _ = memory_mib(pid)
        load_cpu_initial = cpu_seconds(load.pid)
        pushes = {"all": [], "one": []}
        # Each round: every route changed and back, then one route changed and back.
        plan = [("all", routes_b), ("all", routes_a), ("one", one_changed), ("one", routes_a)] * repeats
        rss_trend = []
        for kind, text in plan:
            since = len(serve.lines)
            version = serve.version() + 1
            time.sleep(1.0)
            cpu_before = cpu_seconds(pid)
            load.stdin.write(f"await {version} {clients if kind == 'all' else 1}\n")
            load.stdin.flush()
            _, wall0 = replace_file(directory, "routes.yaml", text)
            answer = json.loads(load.stdout.readline())
            cpu_after = cpu_seconds(pid)
            _, _, built_wall, _ = serve.wait_for(is_version(version), 10, since)
            pushes[kind].append({
                "version": version, "clients": answer["clients"], "responses": answer["responses"],
                "cpu_s": cpu_after - cpu_before,
                "wall_to_last_ms": (answer.get("last_at", wall0) - wall0) * 1e3,
                "wall_to_first_ms": (answer.get("first_at", wall0) - wall0) * 1e3,
                "to_version_ms": (built_wall - wall0) * 1e3,
                "errors": answer["error_count"],
                "rss_mib": memory_mib(pid)[0],
            })
            rss_trend.append(pushes[kind][-1]["rss_mib"])
        rss_after, hwm = memory_mib(pid)
        load_cpu = cpu_seconds(load.pid)
        return {"clients": clients, "services": services, "ready": ready, "ready_wall_s": ready_wall,
                "idle_rss_mib": idle_rss, "idle_cpu_per_s": idle_cpu_per_s, "rebuild": rebuild,
                "idle_after_rebuilds_rss_mib": idle_after_rebuilds_rss, "clients_rss_mib": rss_clients,
                "after_pushes_rss_mib": rss_after, "peak_rss_mib": hwm, "initial_cpu_s": initial_cpu,
                "load_cpu_initial_s": load_cpu_initial, "rss_trend_mib": rss_trend, "load_cpu_s": load_cpu, "pushes": pushes,
                "machine": state}
    finally:
        if load is not None:
            load.stdin.close()
            load.terminate()
            load.wait()
        serve.stop()


# --- build -----------------------------------------------------------------------------------

def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def measure_build(work):
    added = git("log", "--format=%H", "--grep", "^meshroute: the xDS dependencies", "--", "controller-stub/Cargo.toml")
    if not added:
        raise RuntimeError("no commit 'meshroute: the xDS dependencies' in the history")
    added = added.splitlines()[-1]
    commits = {"before": git("rev-parse", f"{added}^"), "now": git("rev-parse", "HEAD")}
    results = {"xds_dependencies_commit": added[:12]}
    base = Path(tempfile.mkdtemp(prefix="meshroute-build-"))
    try:
        for label in ("before", "now"):
            tree, target = base / f"{label}-src", base / f"{label}-target"
            git("worktree", "add", "--detach", str(tree), commits[label])
            try:
                state = machine_state()
                env = dict(os.environ, CARGO_TARGET_DIR=str(target))
                started, children = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
                build = subprocess.run(["cargo", "build", "--release", "--locked", "-p", "meshroute"], cwd=tree, env=env,
                                       capture_output=True, text=True)
                wall = time.monotonic() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
                if build.returncode != 0:
                    raise RuntimeError(f"build of {label} failed:\n{build.stderr[-3000:]}")
                crates = sum(1 for line in build.stderr.splitlines() if line.strip().startswith("Compiling "))
                results[label] = {"commit": commits[label][:12], "wall_s": wall, "cpu_s": cpu, "crates": crates,
                                  "binary_bytes": (target / "release" / "meshroute").stat().st_size, "machine": state}
            finally:
                git("worktree", "remove", "--force", str(tree))
                shutil.rmtree(target, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results


# --- report ----------------------------------------------------------------------------------

def spread(values, unit="", digits=0):
    values = sorted(values)
    fmt = f"{{:.{digits}f}}{unit}"
    return (f"median {fmt.format(statistics.median(values))}, "
            f"range {fmt.format(values[0])}–{fmt.format(values[-1])}")


def machine_line(state):
    busy = ", ".join(f"{b['name']} {b['cores']:.2f}" for b in state["busy"]) or "nothing measurable"
    return (f"load average {state['loadavg'][0]:.2f} on {state['cores']} cores; busiest processes "
            f"(cores over 1 s): {busy}")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(p * (len(values) - 1)))))]


def report(results):
    out = ["# Proxyless gRPC: `meshroute serve` measured", "",
           "Written by `bench/xds_bench.py` (`make bench-xds`); the raw figures are in `xds-results.json`.",
           "Each part ran once; other processes may have competed for the CPU, so each part gives the load "
           "average and the busiest other processes when it started. Repeated figures are medians with their range within the run. CPU "
           "time is the steadier figure: wall times stretch with whatever else runs.", ""]
    lat = results.get("latency")
    if lat:
        totals = [s["total_ms"] for s in lat["samples"]]
        versions = [s["to_version_ms"] for s in lat["samples"]]
        after = [s["total_ms"] - s["to_version_ms"] for s in lat["samples"]]
        out += ["## From a manifest change to a connected client routing by it", "",
                f"One grpcio {lat['grpcio']} channel dialling `xds:///echo-service.default.svc.cluster.local:8080`, "
                "calling `Echo` one call after another; its GRPCRoute's backend flipped "
                f"{lat['changes']} times, each a new `route.yaml` renamed into the watched directory "
                "0.15–0.3 s after the previous change was seen. Time from the rename to the first call answered by the new backend:", "",
                "| | median | p90 | worst |", "| --- | --- | --- | --- |",
                f"| rename → call answered by the new backend | {statistics.median(totals):.1f} ms | "
                f"{percentile(totals, 0.9):.1f} ms | {max(totals):.1f} ms |",
                f"| rename → `serve` logs the new version (50 ms debounce, then the build) | "
                f"{statistics.median(versions):.1f} ms | {percentile(versions, 0.9):.1f} ms | {max(versions):.1f} ms |",
                f"| new version → the client routes by it (push, grpcio applies it, one call) | "
                f"{statistics.median(after):.1f} ms | {percentile(after, 0.9):.1f} ms | {max(after):.1f} ms |", "",
                f"{lat['calls']} calls, {lat['failed_calls']} failed; a call took {lat['call_ms_median']:.2f} ms "
                "(median), the resolution of the measurement. "
                f"Machine: {machine_line(lat['machine'])}.", ""]
    sc = results.get("scale")
    if sc:
        ready = sc["ready"]
        every, one = sc["pushes"]["all"], sc["pushes"]["one"]
        out += [f"## `serve` with {sc['clients']:,} clients and {sc['services']:,} Services", "",
                f"{sc['services']:,} Services (one gRPC port, an EndpointSlice and a GRPCRoute of two rules each, one "
                "of them a 9:1 split; `meshroute-bench gen --grpc`) and 2 backend Services. "
                f"{sc['clients']:,} simulated proxyless clients (`meshroute-bench ads`), each on its own HTTP/2 connection "
                "with one ADS stream, dialling a different Service, all in one namespace: LDS for its listener, "
                "then RDS, CDS and EDS for what that names, every response ACKed, as grpcio does. The simulator "
                "runs on one thread, so `serve` keeps the other core. Memory is `VmRSS` from /proc; CPU is "
                "user + system time of all of serve's threads (/proc/PID/task/*/schedstat).", "",
                "| | |", "| --- | --- |",
                f"| resident memory, idle (manifests loaded, no client) | {sc['idle_rss_mib']:.1f} MiB |",
                f"| resident memory, idle after those 4 rebuilds | {sc['idle_after_rebuilds_rss_mib']:.1f} MiB |",
                f"| resident memory, {sc['clients']:,} clients connected | {sc['clients_rss_mib']:.1f} MiB |",
                f"| resident memory after each push below, in order | "
                f"{', '.join(f'{x:.0f}' for x in sc['rss_trend_mib'])} MiB (peak {sc['peak_rss_mib']:.1f} MiB) |",
                f"| CPU to bring all {sc['clients']:,} clients to their endpoints | {sc['initial_cpu_s']:.2f} s "
                f"(wall {ready['seconds']:.2f} s, of which {ready['connect_seconds']:.2f} s opening connections) |",
                f"| the same change with no client connected, {len(sc['rebuild'])} times: CPU (the rebuild alone) | "
                f"{spread([p['cpu_s'] * 1e3 for p in sc['rebuild']], ' ms')} |",
                f"| the same: wall, rename → `serve` logs the new version | "
                f"{spread([p['to_version_ms'] for p in sc['rebuild']], ' ms')} |",
                f"| one change every client sees (all {sc['services']:,} GRPCRoutes' backends swapped), "
                f"{len(every)} times: CPU | {spread([p['cpu_s'] * 1e3 for p in every], ' ms')} |",
                f"| the same: wall, rename → the last client has the new routes | "
                f"{spread([p['wall_to_last_ms'] for p in every], ' ms')} |",
                f"| the same: wall, rename → `serve` logs the new version (debounce, build) | "
                f"{spread([p['to_version_ms'] for p in every], ' ms')} |",
                f"| one GRPCRoute changed (one client's routes), {len(one)} times: CPU | "
                f"{spread([p['cpu_s'] * 1e3 for p in one], ' ms')} |",
                f"| the same: wall, rename → that client has the new routes | "
                f"{spread([p['wall_to_last_ms'] for p in one], ' ms')} |", "",
                f"Each full push reached {min(p['clients'] for p in every):,}–{max(p['clients'] for p in every):,} "
                f"clients ({statistics.median([p['responses'] for p in every]):.0f} responses, the RDS of each); a "
                f"one-route change reached {max(p['clients'] for p in one)} client. Streams that failed: "
                f"{max([ready['error_count']] + [p['errors'] for p in every + one])}. Idle serve used "
                f"{sc['idle_cpu_per_s'] * 1e3:.1f} ms of CPU per second. The change CPU counts from just before "
                "the rename to 300 ms after the last response (the ACKs included). The simulator itself used "
                f"{sc['load_cpu_s']:.1f} s of CPU in all. Machine: {machine_line(sc['machine'])}.", ""]
    build = results.get("build")
    if build:
        before, now = build["before"], build["now"]
        out += ["## What the xDS dependencies cost", "",
                "`cargo build --release -p meshroute` from an empty target directory (release profile: LTO, one "
                f"codegen unit), at the commit before `{build['xds_dependencies_commit']}` "
                "(\"meshroute: the xDS dependencies\": envoy-types, tonic, prost, tokio) and now, one after the "
                "other, once each. Wall time moves with whatever else runs; CPU time much less so.", "",
                "| | before | now | difference |", "| --- | --- | --- | --- |",
                f"| `meshroute` binary (stripped) | {before['binary_bytes'] / 2**20:.2f} MiB | "
                f"{now['binary_bytes'] / 2**20:.2f} MiB | +{(now['binary_bytes'] - before['binary_bytes']) / 2**20:.2f} MiB |",
                f"| clean release build, wall | {before['wall_s']:.0f} s | {now['wall_s']:.0f} s | "
                f"+{now['wall_s'] - before['wall_s']:.0f} s |",
                f"| the same, CPU (user + system of cargo and every rustc) | {before['cpu_s']:.0f} s | "
                f"{now['cpu_s']:.0f} s | +{now['cpu_s'] - before['cpu_s']:.0f} s |",
                f"| crates compiled | {before['crates']} | {now['crates']} | +{now['crates'] - before['crates']} |", "",
                f"Machine, before: {machine_line(before['machine'])}. Now: {machine_line(now['machine'])}.", ""]
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=120, help="route changes for the latency part")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of pushes in the scale part (each: 2 full, 2 one-route)")
    parser.add_argument("--only", choices=["latency", "scale", "build"], action="append",
                        help="run only these parts (repeatable); the others keep their last results")
    parser.add_argument("--build", action="store_true", help="also the two clean release builds (slow)")
    parser.add_argument("--report", action="store_true", help="only write the report from xds-results.json")
    parser.add_argument("--out", default=str(ROOT / "bench"))
    args = parser.parse_args()
    parts = [] if args.report else args.only or ["latency", "scale"] + (["build"] if args.build else [])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "xds-results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if parts:
        shutil.rmtree(RUN, ignore_errors=True)
        RUN.mkdir(parents=True)
        work = Path(tempfile.mkdtemp(prefix="xds-bench-", dir=RUN))
    random.seed(1)
    for part in parts:
        print(f"xds_bench: {part}", file=sys.stderr)
        if part == "latency":
            results["latency"] = measure_latency(args.changes, work)
        elif part == "scale":
            results["scale"] = measure_scale(args.clients, args.services, args.repeats, work)
        else:
            results["build"] = measure_build(work)
        results_path.write_text(json.dumps(results, indent=1) + "\n")
    (out / "xds-report.md").write_text(report(results))
    print((out / "xds-report.md").read_text())


if __name__ == "__main__":
    main()
