#!/usr/bin/env bash
# The local demo behind `make run`: the product page's two examples — echo-route (HTTPRoute) and
# its GRPCRoute — served by stock Envoy with the meshroute filter, real HTTP and gRPC echo
# backends, and `meshroute sync` watching examples/mesh; and `meshroute serve` on the same
# manifests, the xDS control plane of proxyless gRPC clients (grpcio, from .venv).
# Runs until Ctrl-C and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${ENVOY_BIN:?ENVOY_BIN is not set; run this through make run}"
MESHROUTE=$(realpath --relative-to=. "${MESHROUTE_BIN:-target/release/meshroute}")
ECHO=${MESHROUTE_ECHO_BIN:-target/release/meshroute-echo}
GRPC_ECHO=$(realpath --relative-to=. "${MESHROUTE_GRPC_ECHO_BIN:-target/release/meshroute-grpc-echo}")
WASM=${MESHROUTE_WASM:-target/wasm32-wasip1/release/meshroute_filter.wasm}
PYTHON=$(realpath -s --relative-to=. "${MESHROUTE_PYTHON:-.venv/bin/python}")
ADMIN_PORT=${ADMIN_PORT:-9901}
XDS=${XDS_ADDR:-127.0.0.1:15010}
RUN=.run
OUT=$RUN/envoy

mkdir -p "$RUN"
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

"$ECHO" --name echo-v1 --listen 127.0.0.1:18081 >"$RUN/echo-v1.log" 2>&1 & pids+=($!)
"$ECHO" --name echo-v2 --listen 127.0.0.1:18082 >"$RUN/echo-v2.log" 2>&1 & pids+=($!)
# The endpoints examples/mesh/endpoints.yaml names for echo-service's grpc port and the GRPCRoute's backends.
for backend in echo-service:18083 grpc-infra-backend-v1:18084 grpc-infra-backend-v2:18085; do
  "$GRPC_ECHO" serve --name "${backend%:*}" --listen "127.0.0.1:${backend#*:}" >"$RUN/${backend%:*}.log" 2>&1 & pids+=($!)
done

rm -f "$OUT/envoy.yaml"
# Not a pipeline: $! must be meshroute's own pid (a pipeline's is sed's), so that stop() ends it.
# The demo's clients (curl, the gRPC client) stand for a pod in namespace default: its consumer
# routes, if any, would apply to them (GEP-1294).
"$MESHROUTE" sync examples/mesh --out "$OUT" --wasm "$WASM" --admin-port "$ADMIN_PORT" --namespace default \
  > >(sed 's/^/sync: /') 2>&1 & pids+=($!)
for _ in $(seq 100); do [ -f "$OUT/envoy.yaml" ] && break; sleep 0.1; done
[ -f "$OUT/envoy.yaml" ] || { echo "meshroute sync did not publish; see above"; exit 1; }

"$ENVOY_BIN" -c "$OUT/envoy.yaml" --concurrency 1 --disable-hot-restart --log-path "$RUN/envoy.log" & pids+=($!)
for _ in $(seq 100); do
  [ "$(curl -s "http://127.0.0.1:$ADMIN_PORT/ready" 2>/dev/null)" = "LIVE" ] && break
  sleep 0.2
done
[ "$(curl -s "http://127.0.0.1:$ADMIN_PORT/ready")" = "LIVE" ] || { echo "Envoy did not become ready; see $RUN/envoy.log"; exit 1; }

# Proxyless gRPC: serve answers xDS from the same manifests; a client in namespace default reads
# its bootstrap (where serve is, its node id and namespace) from GRPC_XDS_BOOTSTRAP.
"$MESHROUTE" serve examples/mesh --xds "$XDS" >"$RUN/serve.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q "ADS on" "$RUN/serve.log" && break; sleep 0.1; done
grep -q "ADS on" "$RUN/serve.log" || { cat "$RUN/serve.log"; echo "meshroute serve did not start; see above"; exit 1; }
"$MESHROUTE" grpc-bootstrap --xds "$XDS" --namespace default --node-id demo-client >"$RUN/grpc-bootstrap.json"
TARGET=xds:///echo-service.default.svc.cluster.local:8080
echo "A proxyless gRPC client (grpcio, no Envoy in the path) calls Echo through meshroute serve:"
echo "  $(GRPC_XDS_BOOTSTRAP=$RUN/grpc-bootstrap.json "$PYTHON" scripts/grpc-call.py "$TARGET" Echo hello)"

# A few requests through Envoy, then what the mesh counted for them: each route, rule and
# backend, and meshroute's own answers (EchoThree has no route).
for _ in $(seq 20); do curl -s -o /dev/null http://127.0.10.1/; done
"$GRPC_ECHO" call --to 127.0.10.1:8080 Echo hello >/dev/null 2>&1 || true
"$GRPC_ECHO" call --to 127.0.10.1:8080 EchoThree hello >/dev/null 2>&1 || true
sleep 0.2
echo
echo "What Envoy counted for 20 HTTP requests, an Echo call and an EchoThree call (curl -s http://127.0.0.1:$ADMIN_PORT/stats/prometheus | grep ^envoy_meshroute):"
curl -s "http://127.0.0.1:$ADMIN_PORT/stats/prometheus" | grep '^envoy_meshroute' | sed 's/^/  /'
echo
echo "Each route's Gateway API status, as sync keeps it: $OUT/status/"
ls "$OUT/status" | sed 's/^/  /'

cat <<MSG

meshroute demo is running. echo-service is 127.0.10.1: on port 80 its HTTPRoute splits 9:1 over
echo-v1 and echo-v2; on port 8080 (gRPC) its GRPCRoute sends Echo to grpc-infra-backend-v1 and
EchoTwo to grpc-infra-backend-v2.

  # one request; the echo backend says who answered and what it saw
  curl -s http://127.0.10.1/hello

  # 100 requests, counted by backend (about 90 / 10)
  for i in \$(seq 100); do curl -s -o /dev/null -w '%header{x-echo-backend}\n' http://127.0.10.1/; done | sort | uniq -c

  # gRPC: Echo and EchoTwo go to their backends; EchoThree has no route (UNIMPLEMENTED)
  $GRPC_ECHO call --to 127.0.10.1:8080 Echo hello
  $GRPC_ECHO call --to 127.0.10.1:8080 EchoTwo hello
  $GRPC_ECHO call --to 127.0.10.1:8080 EchoThree hello

  # the same calls from a proxyless gRPC client: grpcio's xds:/// resolver takes the GRPCRoute
  # from meshroute serve ($XDS) and calls the backends directly, no Envoy involved. The names
  # it can dial: echo-service.default.svc.cluster.local:8080, echo-service.default.svc:8080,
  # echo-service.default:8080, echo-service:8080 (a client in namespace default)
  export GRPC_XDS_BOOTSTRAP=$RUN/grpc-bootstrap.json    # written by: $MESHROUTE grpc-bootstrap --xds $XDS --namespace default --node-id demo-client
  $PYTHON scripts/grpc-call.py $TARGET Echo hello
  $PYTHON scripts/grpc-call.py $TARGET EchoTwo hello
  $PYTHON scripts/grpc-call.py xds:///echo-service:8080 EchoThree hello

  # what the filter would do with a request, without sending it (--namespace NS: as a client
  # in NS, whose consumer routes apply, would see it)
  $MESHROUTE explain examples/mesh --to echo-service --path /hello
  $MESHROUTE explain examples/mesh --to echo-service:8080 --grpc echo_basic.grpcecho.GrpcEcho/EchoTwo

  # the product page's literal text: the typos, and why echo-route's second rule never matches
  $MESHROUTE check examples/product-page

  # each route's Gateway API status, as sync keeps it (one file per route; -o json also works)
  cat $OUT/status/*.yaml
  $MESHROUTE check examples/mesh -o yaml

  # what the mesh counted: requests per frontend, route, rule, backend and outcome (Prometheus)
  curl -s http://127.0.0.1:$ADMIN_PORT/stats/prometheus | grep ^envoy_meshroute

Edit examples/mesh/*.yaml and the change is live at once (sync republishes, Envoy swaps the table;
serve pushes the new routes to connected proxyless clients).
Logs are in $RUN/. Ctrl-C stops everything.
MSG
wait
