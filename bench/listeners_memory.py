#!/usr/bin/env python3
"""`make bench-listeners`: Envoy's memory per listener in the Istio layout, at 10,000 rules.

In Istio the filter sits on every outbound HTTP listener (one per port), configured by ECDS, and
Envoy keeps the filter's plugin configuration per listener. This runs Envoy with N such
listeners (127.0.0.1, one port each, each its own HTTP connection manager with the filter by
`config_discovery` of one ECDS resource read from a file, then the router; `--concurrency 2`),
for N = 1, 10, 50, 100, in three layouts:

  table    every listener's filter configured with the route table (the naive layout),
  shared   every listener's filter configured `{"table":"shared"}`, plus one holder listener
           bound to no port whose filter (its own ECDS resource) carries the table: the layout of
           envoy-config/istio-envoyfilter.yaml,
  1-rule   as `table`, with a table of one rule: what a listener costs without the table.

The tables come from the project's own tools (`meshroute-bench gen`, `meshroute compile`,
compact JSON). One listener's address and port are the frontend Service's ClusterIP and port,
so that requests sent there are routed by the table: after each measurement a request to it must
reach the table's backend (an echo server that names itself), and one to another listener the
default route's backend. Envoy's heap (admin `/memory` `allocated`) and RSS (`VmRSS`) are read
once every listener is active, the server LIVE and the heap stable; the per-listener cost is the
least-squares slope over N. Writes bench/listeners-report.md and bench/listeners-results.json.

Usage: bench/listeners_memory.py [--rules N] [--listeners N ...] [--out DIR]
(make bench-listeners sets the binaries).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import bench
from bench import BENCH, ECHO, ENVOY, MESHROUTE, WASM, admin_get, log, run

ADMIN_PORT = 24090
ECHO_BASE = 24091  # the default route's backend, then one per cluster of the table
LISTENER_BASE = 24100  # listener i on 127.0.0.1:LISTENER_BASE+i; listener 0 is the frontend
SERVICE = "svc"  # the generated set's frontend Service
PROBE_PATH = "/e0/item"  # its first rule (Exact)
FALLBACK = "fallback"

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
TEC_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
STRING_TYPE = "type.googleapis.com/google.protobuf.StringValue"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}

LAYOUTS = {
    "table": "every listener's filter configured with the table",
    "shared": "every listener `{\"table\":\"shared\"}`, one holder listener with the table",
    "1-rule": "every listener's filter configured with a 1-rule table",
}
MiB = 1024 * 1024


# --- the tables -------------------------------------------------------------------------------

def frontend_manifests(src, dst):
    """The generated manifests with the frontend Service at 127.0.0.1:LISTENER_BASE (ClusterIP
    and port, and the routes' parentRef port), the address of listener 0."""
    dst.mkdir(parents=True, exist_ok=True)
    docs = (src / "services.yaml").read_text().split("---\n")
    moved = 0
    for i, doc in enumerate(docs):
        if "kind: Service\n" in doc and f"\n  name: {SERVICE}\n" in doc:
            if "    port: 80\n" not in doc or "clusterIP: " not in doc:
                raise SystemExit(f"unexpected Service {SERVICE} in the generated set:\n{doc}")
            lines = [f"  clusterIP: 127.0.0.1" if line.startswith("  clusterIP: ") else line
                     for line in doc.split("\n")]
            docs[i] = "\n".join(lines).replace("    port: 80\n", f"    port: {LISTENER_BASE}\n")
            moved += 1
    if moved != 1:
        raise SystemExit(f"{moved} Services named {SERVICE} in the generated set")
    (dst / "services.yaml").write_text("---\n".join(docs))
    parent = f"    name: {SERVICE}\n    port: 80\n"
    routes = (src / "routes.yaml").read_text()
    (dst / "routes.yaml").write_text(routes.replace(parent, f"    name: {SERVICE}\n    port: {LISTENER_BASE}\n"))


def make_table(work, name, rules):
    """Generate, compile and compact a table of `rules` rules; what a request to the frontend on
    PROBE_PATH should reach, from `meshroute explain`."""
    gen = work / name / "gen"
    run([BENCH, "gen", "--rules", str(rules), "--upstream", f"127.0.0.1:{ECHO_BASE}", "--out", str(gen)])
    manifests = work / name / "manifests"
    frontend_manifests(gen / "manifests", manifests)
    table = json.loads(run([MESHROUTE, "compile", str(manifests)]).stdout)
    fronts = [(f["addresses"], f["port"]) for f in table["frontends"]]
    if fronts != [(["127.0.0.1"], LISTENER_BASE)]:
        raise SystemExit(f"{name}: frontends {fronts}, expected 127.0.0.1:{LISTENER_BASE} only")
    explained = json.loads(run([MESHROUTE, "explain", str(manifests), "--to", f"127.0.0.1:{LISTENER_BASE}",
                                "--path", PROBE_PATH]).stdout)
    backends = explained.get("backends", [])
    if explained.get("status") != 200 or len(backends) != 1:
        raise SystemExit(f"{name}: {PROBE_PATH} is not routed to one backend: {explained}")
    clusters = {}
    for route in table["routes"]:
        for rule in route["rules"]:
            for b in rule["backends"]:
                clusters[b["cluster"]] = b["name"]
    text = json.dumps(table, separators=(",", ":"))
    return {"name": name, "rules": rules, "text": text, "bytes": len(text.encode()),
            "routes": len(table["routes"]), "clusters": clusters, "expected": backends[0]["name"]}


# --- Envoy's configuration --------------------------------------------------------------------

def plugin(configuration, wasm):
    return {"@type": WASM_TYPE, "config": {
        "name": "meshroute", "root_id": "meshroute",
        "vm_config": {"vm_id": "meshroute", "runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": wasm}}},
        "configuration": {"@type": STRING_TYPE, "value": configuration},
        "failure_policy": "FAIL_RELOAD"}}


def ecds_filter(name, path):
    return {"name": name, "config_discovery": {
        "config_source": {"path_config_source": {"path": str(path)}, "initial_fetch_timeout": "0s"},
        "type_urls": [WASM_TYPE]}}


def listener(name, port, http_filters, routes, bind=True):
    hcm = {"@type": HCM_TYPE, "stat_prefix": name, "codec_type": "AUTO",
           "http_filters": http_filters + [ROUTER],
           "route_config": {"name": name, "virtual_hosts": routes}}
    out = {"@type": LISTENER_TYPE, "name": name,
           "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                           "typed_config": hcm}]}]}
    if not bind:
        out["bind_to_port"] = False
    return out


def virtual_hosts():
    """Istio's outbound virtual host with the EnvoyFilter's first route: the cluster the filter
    chose, else the default route."""
    return [{"name": "all", "domains": ["*"], "routes": [
        {"name": "meshroute-selected",
         "match": {"prefix": "/", "headers": [{"name": "x-meshroute-cluster", "present_match": True}]},
         "route": {"cluster_header": "x-meshroute-cluster", "timeout": "0s"},
         "request_headers_to_remove": ["x-meshroute-cluster", "x-meshroute-mirror"]},
        {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": FALLBACK}}]}]


def cluster(name, port):
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def write_config(out, layout, table, n, echo_ports):
    """envoy.yaml (admin, static clusters, listeners from lds.json), lds.json and the ECDS files.
    Returns the number of listeners Envoy should report active."""
    out.mkdir(parents=True, exist_ok=True)
    ecds = out / "ecds.json"

    def resource(path, name, configuration):
        path.write_text(json.dumps({"resources": [{"@type": TEC_TYPE, "name": name,
                                                   "typed_config": plugin(configuration, WASM)}]},
                                   separators=(",", ":")))

    resource(ecds, "meshroute", '{"table":"shared"}' if layout == "shared" else table["text"])
    listeners = [listener(f"outbound_{LISTENER_BASE + i}", LISTENER_BASE + i, [ecds_filter("meshroute", ecds)],
                          virtual_hosts()) for i in range(n)]
    if layout == "shared":
        holder = out / "ecds-table.json"
        resource(holder, "meshroute-table", table["text"])
        # Takes no traffic: it exists so that one filter instance brings the table to the VM.
        listeners.append(listener("meshroute-table", LISTENER_BASE + n, [ecds_filter("meshroute-table", holder)],
                                  [], bind=False))
    (out / "lds.json").write_text(json.dumps({"resources": listeners}, separators=(",", ":")))
    clusters = [cluster(FALLBACK, echo_ports[FALLBACK])]
    clusters += [cluster(name, echo_ports[backend]) for name, backend in sorted(table["clusters"].items())]
    boot = {"node": {"id": "bench-listeners", "cluster": "bench-listeners"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT}}},
            "static_resources": {"clusters": clusters},
            "dynamic_resources": {"lds_config": {"path_config_source": {"path": str(out / "lds.json")}}}}
    (out / "envoy.yaml").write_text(json.dumps(boot, indent=1))
    return len(listeners)


# --- one run ----------------------------------------------------------------------------------

def stat(name):
    for line in admin_get(ADMIN_PORT, f"/stats?filter=^{name}$").splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return None


def vm_rss(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS")


def get(port, path):
    """(status, x-echo-backend) of a GET through a listener."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers.get("x-echo-backend")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-echo-backend")


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(work, layout, table, n, echo_ports, settle, timeout):
    out = work / f"{layout}-{n}"
    expected_active = write_config(out, layout, table, n, echo_ports)
    log_path = out / "envoy.log"
    with open(log_path, "w") as log_file:
        started = time.monotonic()
        proc = subprocess.Popen([ENVOY, "-c", str(out / "envoy.yaml"), "--concurrency", "2", "--disable-hot-restart",
                                 "--log-level", "warn", "--component-log-level", "wasm:info"],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            # Ready: the server LIVE and every listener (the holder too) active.
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"{layout} N={n}: Envoy exited:\n{log_path.read_text()[-3000:]}")
                if time.monotonic() - started > timeout:
                    raise SystemExit(f"{layout} N={n}: not ready after {timeout} s:\n{log_path.read_text()[-3000:]}")
                try:
                    if (admin_get(ADMIN_PORT, "/ready").strip() == "LIVE"
                            and stat("listener_manager.total_listeners_active") == expected_active):
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)
            ready_s = time.monotonic() - started
            # Then the heap stable for `settle` seconds in a row (the workers' VMs configured).
            last, stable = None, 0
            while stable < settle:
                if time.monotonic() - started > timeout:
                    raise SystemExit(f"{layout} N={n}: heap not stable after {timeout} s")
                cur = stat("server.memory_allocated")
                stable = stable + 1 if last is not None and abs(cur - last) < 0.002 * last + 64 * 1024 else 0
                last = cur
                time.sleep(1)
            memory = json.loads(admin_get(ADMIN_PORT, "/memory"))
            rss = vm_rss(proc.pid)
            # Routing, after the measurement: the frontend listener by the table, another listener
            # (no frontend at its address) by the default route.
            probes = {"frontend": get(LISTENER_BASE, PROBE_PATH)}
            if n > 1:
                probes["other"] = get(LISTENER_BASE + 1, PROBE_PATH)
            routed = probes["frontend"] == (200, table["expected"]) and probes.get("other", (200, FALLBACK)) == (200, FALLBACK)
            text = log_path.read_text()
        finally:
            stop(proc)
    record = {"layout": layout, "listeners": n, "table_rules": table["rules"], "table_bytes": table["bytes"],
              "active_listeners": expected_active, "ready_s": round(ready_s, 2),
              "heap_allocated": int(memory["allocated"]), "heap_size": int(memory["heap_size"]), "rss": rss,
              "probes": {k: {"status": s, "backend": b} for k, (s, b) in probes.items()},
              "expected_backend": table["expected"], "routed": routed,
              "table_loaded_lines": text.count("route table loaded"),
              "error_lines": sum(1 for line in text.splitlines() if "[error]" in line or "[critical]" in line)}
    log(f"{layout:7} N={n:3}: ready {ready_s:4.1f} s, heap {record['heap_allocated'] / MiB:6.1f} MiB, "
        f"RSS {rss / MiB:6.1f} MiB; {PROBE_PATH} → {probes}" + ("" if routed else "  NOT ROUTED"))
    if not routed:
        raise SystemExit(f"{layout} N={n}: requests not routed as the table says (expected {table['expected']}, "
                         f"other listeners {FALLBACK}): {probes}\n{text[-3000:]}")
    return record


# --- the report -------------------------------------------------------------------------------

def slope(points):
    """Least-squares slope of (x, y) points."""
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else float("nan")


def report(results, tables, counts, info, elapsed, out):
    by = {(r["layout"], r["listeners"]): r for r in results}
    layouts = [layout for layout in LAYOUTS if any(r["layout"] == layout for r in results)]
    slopes = {layout: {key: slope([(n, by[(layout, n)][key]) for n in counts])
                       for key in ("heap_allocated", "rss")} for layout in layouts}
    big = tables["big"]
    lines = ["# Envoy's memory per listener, Istio layout", "",
             f"Written by `make bench-listeners` (bench/listeners_memory.py) on {datetime.now():%Y-%m-%d}: "
             f"{info['cpu']}, {info['nproc']} CPUs, Linux {info['kernel']}, Envoy {info['envoy']}. "
             f"The whole run took {elapsed / 60:.1f} minutes.", "",
             "## Method", "",
             f"In Istio the filter sits on every outbound HTTP listener (one per port) through ECDS, and Envoy keeps "
             f"the filter's plugin configuration per listener. Here one Envoy (`--concurrency 2`) runs N listeners "
             f"on 127.0.0.1, one port each, each its own HTTP connection manager with the filter by "
             f"`config_discovery` of one ECDS resource read from a file, then the router; the route configuration "
             f"is Istio's outbound virtual host with the EnvoyFilter's first route (the cluster the filter chose), "
             f"else a default route. The route table is `meshroute-bench gen --rules {big['rules']}` compiled by "
             f"`meshroute compile`, compact: {big['routes']:,} HTTPRoutes on one Service, "
             f"{big['bytes'] / MiB:.2f} MiB of JSON. Layouts:", ""]
    for layout in layouts:
        lines.append(f"- **{layout}**: {LAYOUTS[layout]}"
                     + (f" ({tables['small']['bytes']:,} bytes)" if layout == "1-rule" else "") + ".")
    lines += ["",
              "`shared` is the layout of `envoy-config/istio-envoyfilter.yaml`: the holder is a listener bound to no "
              "port whose filter, with the same vm_id, module and VM configuration and so the same wasm VM, is "
              "configured with the table; the others route by the table their VM holds.", "",
              "Each run starts Envoy, waits until the server is LIVE with every listener active (the start-to-ready "
              "time below), then until Envoy's heap has been stable for a few seconds, and reads the heap "
              "(admin `/memory`, `allocated`: Envoy's own allocations, where the configuration copies live; the wasm "
              "VMs' memory is not part of it) and the resident memory (`VmRSS`, which is). One listener's address "
              "and port are the frontend Service's ClusterIP and port (the filter finds the frontend by the "
              "destination address); after the reading, a request to it must reach the backend the table names "
              f"(`meshroute explain`: `GET {PROBE_PATH}` → `{big['expected']}`, an echo server that names itself), "
              f"and one to another listener the default route's backend (`{FALLBACK}`). Every run below passed both.",
              "", "## Results", "",
              "| layout | listeners | ready s | heap MiB | RSS MiB | routed |", "| --- | --- | --- | --- | --- | --- |"]
    for layout in layouts:
        for n in counts:
            r = by[(layout, n)]
            probes = ", ".join(f"{k} → {v['backend']}" for k, v in r["probes"].items())
            lines.append(f"| {layout} | {n} | {r['ready_s']:.1f} | {r['heap_allocated'] / MiB:.1f} | "
                         f"{r['rss'] / MiB:.1f} | {probes} |")
    lines += ["", f"Per listener, least-squares slope over N = {', '.join(map(str, counts))}:", "",
              "| layout | heap KiB per listener | RSS KiB per listener |", "| --- | --- | --- |"]
    for layout in layouts:
        s = slopes[layout]
        lines.append(f"| {layout} | {s['heap_allocated'] / 1024:,.0f} | {s['rss'] / 1024:,.0f} |")
    lines += ["", "## What it means", ""]
    top, low = max(counts), min(counts)
    if "table" in slopes and "shared" in slopes:
        a, b = by[("table", top)], by[("shared", top)]
        lines.append(f"- With the table in every listener's configuration, each listener costs "
                     f"{slopes['table']['heap_allocated'] / MiB:.2f} MiB of heap: at {top} listeners Envoy's heap is "
                     f"{a['heap_allocated'] / MiB:.0f} MiB and its RSS {a['rss'] / MiB:.0f} MiB. With the shared "
                     f"configuration and one holder, a listener costs {slopes['shared']['heap_allocated'] / 1024:.0f} KiB "
                     f"and {top} listeners {b['heap_allocated'] / MiB:.1f} MiB of heap, {b['rss'] / MiB:.0f} MiB "
                     f"of RSS; the table is held once, whatever the number of listeners.")
    if "table" in slopes and "1-rule" in slopes:
        share = slopes["table"]["heap_allocated"] - slopes["1-rule"]["heap_allocated"]
        lines.append(f"- A listener with the filter and a 1-rule table costs "
                     f"{slopes['1-rule']['heap_allocated'] / 1024:.0f} KiB of heap; the {big['rules']:,}-rule "
                     f"table's share of each listener is therefore {share / MiB:.2f} MiB, "
                     f"{share / big['bytes']:.1f} times its {big['bytes'] / MiB:.2f} MiB of JSON, as Envoy keeps two "
                     f"copies of the configuration per listener (each listener's ECDS provider makes its own filter "
                     f"factory, and each plugin holds the configuration string and a copy of the PluginConfig proto).")
    if "shared" in slopes and "1-rule" in slopes:
        lines.append(f"- The shared layout's per-listener cost ({slopes['shared']['heap_allocated'] / 1024:.0f} KiB of heap) "
                     f"is a listener's own ({slopes['1-rule']['heap_allocated'] / 1024:.0f} KiB with a 1-rule table): "
                     f"the table is not copied per listener.")
    if "table" in slopes and "shared" in slopes:
        a, b = by[("table", low)], by[("shared", low)]
        lines.append(f"- At N = {low}, the shared layout ({'one listener' if low == 1 else f'{low} listeners'} and the holder) holds "
                     f"{b['heap_allocated'] / MiB:.1f} MiB of heap against {a['heap_allocated'] / MiB:.1f} MiB with the "
                     f"table in the listener: the holder is the one listener that carries the table.")
    loaded = {layout: sorted({by[(layout, n)]["table_loaded_lines"] for n in counts}) for layout in layouts}
    if all(len(v) == 1 for v in loaded.values()):
        lines.append("- The filter compiled its table the same number of times whatever the number of listeners "
                     "(`route table loaded` lines in Envoy's log: "
                     + ", ".join(f"{v[0]} ({k})" for k, v in loaded.items())
                     + "): a VM keeps the last table it compiled and reuses it for a configuration of the same bytes, "
                     "so the per-listener cost is Envoy's copies of the configuration, not the compiled table.")
    else:
        lines.append("- `route table loaded` lines in Envoy's log, per run: "
                     + ", ".join(f"{k} {'/'.join(str(by[(k, n)]['table_loaded_lines']) for n in counts)}" for k in layouts)
                     + ".")
    ready = {layout: [by[(layout, n)]["ready_s"] for n in counts] for layout in layouts}
    lines.append("- Start-to-ready (LIVE, every listener active) from N = " + f"{low} to {top}: "
                 + ", ".join(f"{v[0]:.1f} → {v[-1]:.1f} s ({k})" for k, v in ready.items())
                 + ". These are wall-clock times and move with the machine's load; memory figures do not.")
    lines.append("- RSS also holds the wasm VMs (one per thread, each with its compiled table) and the module's "
                 "compiled code, which the heap figure leaves out; per listener it grows by "
                 + ", ".join(f"{slopes[k]['rss'] / 1024:,.0f} KiB ({k})" for k in layouts) + ".")
    lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    (out / "listeners-report.md").write_text("\n".join(lines))
    (out / "listeners-results.json").write_text(json.dumps({
        "machine": info, "listener_counts": counts,
        "tables": {k: {kk: v for kk, v in t.items() if kk != "text"} for k, t in tables.items()},
        "slopes_bytes_per_listener": slopes, "runs": results}, indent=1))


# --- main -------------------------------------------------------------------------------------

def free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def start_echo(name, port):
    proc = subprocess.Popen([ECHO, "--name", name, "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"echo server {name} not listening on {port}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", type=int, default=10000)
    p.add_argument("--listeners", type=int, nargs="+", default=[1, 10, 50, 100])
    p.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    p.add_argument("--settle", type=int, default=3, help="seconds of stable heap before reading it")
    p.add_argument("--timeout", type=float, default=300, help="seconds for one Envoy to get ready and stable")
    p.add_argument("--out", default=str(bench.ROOT / "bench"))
    args = p.parse_args()
    if not ENVOY:
        raise SystemExit("set ENVOY_BIN (make bench-listeners does)")
    counts = sorted(set(args.listeners))
    if len(counts) < 2:
        raise SystemExit("--listeners needs at least two counts (the slope)")
    begun = time.monotonic()
    info = bench.machine()
    work = Path(tempfile.mkdtemp(prefix="meshroute-listeners-"))
    echoes = []
    try:
        tables = {"big": make_table(work, "big", args.rules)}
        if "1-rule" in args.layouts:
            tables["small"] = make_table(work, "small", 1)
        log(f"table: {args.rules:,} rules, {tables['big']['bytes']:,} bytes of JSON; "
            f"{PROBE_PATH} on 127.0.0.1:{LISTENER_BASE} → {tables['big']['expected']}")
        backends = sorted({b for t in tables.values() for b in t["clusters"].values()})
        echo_ports = {name: ECHO_BASE + i for i, name in enumerate([FALLBACK] + backends)}
        if max(echo_ports.values()) >= LISTENER_BASE:
            raise SystemExit("too many backends for the ports kept for them")
        busy = [port for port in [ADMIN_PORT, *echo_ports.values(), *range(LISTENER_BASE, LISTENER_BASE + max(counts))]
                if not free(port)]
        if busy:
            raise SystemExit(f"ports in use: {busy}")
        echoes = [start_echo(name, port) for name, port in echo_ports.items()]
        results = []
        for layout in args.layouts:
            table = tables["small" if layout == "1-rule" else "big"]
            for n in counts:
                results.append(measure(work, layout, table, n, echo_ports, args.settle, args.timeout))
    finally:
        for proc in echoes:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    report(results, tables, counts, info, time.monotonic() - begun, Path(args.out))
    log(f"wrote {Path(args.out) / 'listeners-report.md'}")


if __name__ == "__main__":
    main()
