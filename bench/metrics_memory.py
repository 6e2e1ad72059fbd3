#!/usr/bin/env python3
"""`make bench-metrics`: what counting costs Envoy's memory at 10,000 rules.

One route set of N rules (default 10,000) on one Service, as `make bench` generates it. For the
filter and for native mode, with counting on and off (`meshroute sync --no-metrics`), one Envoy
at a time: its resident memory once ready, and again after every rule has taken requests (each
rule's series then exists: one per rule and backend), with the number of
`envoy_meshroute_requests_total` series Envoy exposes. Writes bench/metrics-report.md.

Usage: bench/metrics_memory.py [--rules N] [--out DIR] (make bench-metrics sets the binaries).
"""

import argparse
import json
import os
import shutil
import signal
import tempfile
import time
from datetime import datetime
from pathlib import Path

import bench
from bench import ADMIN, BENCH, ENVOY, UPSTREAM, Envoy, admin_get, load, localize, run, start_upstream, sync

FAMILY = "envoy_meshroute_requests_total"


def series(variant):
    """The number of series of the family, and their total count."""
    text = admin_get(ADMIN[variant], "/stats/prometheus")
    lines = [line for line in text.splitlines() if line.startswith(FAMILY + "{")]
    return len(lines), sum(int(line.rsplit(" ", 1)[1]) for line in lines)


def allocated_mib(variant):
    """Envoy's own heap in use (`server.memory_allocated`): unlike RSS, it does not hide what
    the allocator reuses from freed memory."""
    stats = admin_get(ADMIN[variant], "/stats?filter=^server\\.memory_allocated$")
    return int(stats.split(":")[1]) / 1024 / 1024


def measure(setdir, variant, counted, rules):
    mode = "filter" if variant == "filter" else "native"
    name = f"{variant}-{'counted' if counted else 'uncounted'}"
    manifests = setdir / name / "manifests"
    localize(setdir / "gen" / "manifests", manifests, variant)
    out = setdir / name / "envoy"
    sync(manifests, out, variant, mode, () if counted else ("--no-metrics",))
    envoy = Envoy(variant, out, 1 if variant == "filter" else 3)
    envoy.start()
    try:
        time.sleep(2)
        ready, ready_heap = envoy.rss_mib(), allocated_mib(variant)
        # Every rule at least once (the requests file holds one request per rule, shuffled).
        result = load(setdir / "gen" / "requests.tsv", variant, rules * 2)
        if result["ok"] != result["requests"]:
            raise SystemExit(f"{name}: not every request answered 2xx: {result}")
        time.sleep(2)
        after, after_heap = envoy.rss_mib(), allocated_mib(variant)
        count, total = series(variant)
        bench.log(f"{name}: RSS {ready:.1f} MiB ready, {after:.1f} MiB after {result['requests']} requests; "
                  f"heap {ready_heap:.1f} → {after_heap:.1f} MiB; {count} series counting {total}")
        return {"variant": variant, "counted": counted, "ready_mib": ready, "after_mib": after,
                "ready_heap_mib": ready_heap, "after_heap_mib": after_heap,
                "requests": result["requests"], "series": count, "series_total": total}
    finally:
        envoy.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rules", type=int, default=10000)
    p.add_argument("--out", default=str(bench.ROOT / "bench"))
    args = p.parse_args()
    if not ENVOY:
        raise SystemExit("set ENVOY_BIN (make bench-metrics does)")
    work = Path(tempfile.mkdtemp(prefix="meshroute-metrics-"))
    upstream = start_upstream()
    try:
        run([BENCH, "gen", "--rules", str(args.rules), "--upstream", UPSTREAM, "--out", str(work / "gen")])
        results = [measure(work, variant, counted, args.rules)
                   for variant in ("filter", "native") for counted in (True, False)]
    finally:
        os.killpg(upstream.pid, signal.SIGTERM)
        upstream.wait()
        shutil.rmtree(work, ignore_errors=True)

    by = {(r["variant"], r["counted"]): r for r in results}
    lines = ["# What counting costs Envoy's memory", "",
             f"Written by `make bench-metrics` (bench/metrics_memory.py) on {datetime.now():%Y-%m-%d}, Envoy "
             f"{bench.machine()['envoy']}. One Service with {args.rules:,} rules in routes of "
             f"{10} rules, one Envoy at a time (one worker). RSS once ready, and after "
             f"{results[0]['requests']:,} requests spread over every rule, so that every rule's series exists. "
             "Heap: Envoy's `server.memory_allocated`, which the wasm VMs' own memory is not part of (RSS is).", "",
             "| data plane | counting | RSS ready MiB | RSS after MiB | heap ready MiB | heap after MiB | series | requests counted |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['variant']} | {'on' if r['counted'] else 'off (`--no-metrics`)'} | {r['ready_mib']:.1f} | "
                     f"{r['after_mib']:.1f} | {r['ready_heap_mib']:.1f} | {r['after_heap_mib']:.1f} | "
                     f"{r['series']:,} | {r['series_total']:,} |")
    lines += [""]
    for variant in ("filter", "native"):
        on, off = by[(variant, True)], by[(variant, False)]
        rss, heap = on["after_mib"] - off["after_mib"], on["after_heap_mib"] - off["after_heap_mib"]
        per = heap * 1024 * 1024 / on["series"] if on["series"] else float("nan")
        lines.append(f"- {variant}: counting adds {heap:+.1f} MiB of Envoy's heap after traffic ({per:,.0f} bytes per "
                     f"series, {on['series']:,} series) and {rss:+.1f} MiB of RSS.")
    lines += ["", "Series exist only once a request reached them: at most one per rule and backendRef and outcome, "
              "so the table bounds them; a table of 10,000 rules cannot make more than its rules allow.", ""]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics-report.md").write_text("\n".join(lines))
    (out / "metrics-results.json").write_text(json.dumps(results, indent=1))
    bench.log(f"wrote {out / 'metrics-report.md'}")


if __name__ == "__main__":
    main()
