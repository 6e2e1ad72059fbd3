#!/usr/bin/env bash
# What the filter costs Envoy per request on the demo's routes: the same generated configuration
# run twice, with the meshroute filter (9:1 split) and without it (the Service's own cluster),
# one Envoy worker each, both pinned to CPU 0; echo backends and the load client on CPU 1.
# Short paired runs alternate so that both sides see the same machine; the ratio of each pair is
# reported with the median over all pairs. Usage: bench/filter-cost.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-10}
SECONDS_PER_RUN=${2:-3}
: "${ENVOY_BIN:?set ENVOY_BIN (make filter-cost does)}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk"; exit 1; }
MESHROUTE=${MESHROUTE_BIN:-target/release/meshroute}
ECHO=${MESHROUTE_ECHO_BIN:-target/release/meshroute-echo}
WASM=${MESHROUTE_WASM:-target/wasm32-wasip1/release/meshroute_filter.wasm}

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The demo's manifests, on addresses and ports of the benchmark's own so that a running demo is no
# bother (Envoy binds with SO_REUSEPORT: two Envoys on one address would share its connections).
mkdir "$work/manifests"
for f in examples/mesh/*.yaml; do sed -e 's/1808\([12]\)/2808\1/' -e 's/127\.0\.10\./127.0.12./g' "$f" >"$work/manifests/$(basename "$f")"; done
taskset -c 1 "$ECHO" --name echo-v1 --listen 127.0.0.1:28081 >/dev/null & pids+=($!)
taskset -c 1 "$ECHO" --name echo-v2 --listen 127.0.0.1:28082 >/dev/null & pids+=($!)

"$MESHROUTE" sync "$work/manifests" --out "$work/with" --once --wasm "$WASM" --admin-port 19911 >/dev/null
# Without: the same files less the filter, on other listener addresses and admin port.
mkdir "$work/without"
for f in envoy.yaml cds.yaml lds.yaml; do
  sed -e "s#$work/with#$work/without#g" -e 's/127\.0\.12\./127.0.13./g' -e 's/19911/19912/' "$work/with/$f" >"$work/without/$f"
done
python3 - "$work/without/lds.yaml" <<'PY'
import re, sys
path = sys.argv[1]
lines = open(path).read().split("\n")
out, skip = [], None
for line in lines:
    if skip is not None:
        indent = len(line) - len(line.lstrip())
        if indent > skip or (indent == skip + 2 and not line.lstrip().startswith("- ")):
            continue
        skip = None
    if line.lstrip().startswith("- config_discovery:"):
        skip = len(line) - len(line.lstrip())
        continue
    out.append(line)
open(path, "w").write("\n".join(out))
PY
grep -q config_discovery "$work/without/lds.yaml" && { echo "could not strip the filter"; exit 1; }

start_envoy() { # dir admin_port
  taskset -c 0 "$ENVOY_BIN" -c "$1/envoy.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
    --log-path "$1/envoy.log" & pids+=($!)
  echo $! >"$1/pid"
  for _ in $(seq 100); do [ "$(curl -s "http://127.0.0.1:$2/ready")" = LIVE ] && return; sleep 0.1; done
  echo "Envoy in $1 did not start"; cat "$1/envoy.log"; exit 1
}
start_envoy "$work/with" 19911
start_envoy "$work/without" 19912
for url in http://127.0.12.1/ http://127.0.13.1/; do
  curl -sf -o /dev/null "$url" || { echo "no answer from $url"; exit 1; }
done

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # dir url -> "cpu_us_per_request requests_per_second"
  local pid before after out requests rps
  pid=$(cat "$1/pid")
  taskset -c 1 wrk -t1 -c8 -d1s "$2" >/dev/null   # warm
  before=$(cpu_ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c8 -d"${SECONDS_PER_RUN}s" "$2")
  after=$(cpu_ticks "$pid")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  awk -v t=$((after - before)) -v hz="$ticks" -v n="$requests" -v rps="$rps" 'BEGIN {printf "%.2f %s\n", t * 1e6 / hz / n, rps}'
}

printf '%-6s %14s %14s %12s %12s %8s\n' round "with µs/req" "without µs/req" "with rps" "without rps" ratio
ratios=()
for round in $(seq "$ROUNDS"); do
  read -r with_us with_rps < <(run "$work/with" http://127.0.12.1/)
  read -r without_us without_rps < <(run "$work/without" http://127.0.13.1/)
  ratio=$(awk -v a="$with_us" -v b="$without_us" 'BEGIN {printf "%.3f", a / b}')
  ratios+=("$ratio")
  printf '%-6s %14s %14s %12s %12s %8s\n' "$round" "$with_us" "$without_us" "$with_rps" "$without_rps" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{r[NR]=$1} END {printf "CPU per request, with filter / without: median %.3f (min %.3f, max %.3f, %d pairs)\n", (NR%2 ? r[(NR+1)/2] : (r[NR/2]+r[NR/2+1])/2), r[1], r[NR], NR}'
