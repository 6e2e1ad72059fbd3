//! Which Service a request is for, and what happens on Services and ports that routes do or do
//! not cover: MeshPorts, MeshFrontendHostname, pass-through, 404 and 500 without a backend, and
//! the selection header that only the filter may set.

use meshroute_e2e::mesh::{Mesh, DESTINATION_HEADER, SELECTION_HEADER};

/// MeshPorts: a parentRef with a port attaches to that Service port only; one without attaches
/// to every port. (The suite proves the route applied with a response header filter; here the
/// route sends to `echo`, which the Service's own endpoints would never answer as.)
#[test]
fn mesh_ports_scope_routes() {
    let mesh = Mesh::conformance("mesh_ports_scope_routes")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh-split-v1
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo-v1
    port: 80
  rules:
  - backendRefs:
    - name: echo
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh-split-v2
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo-v2
  rules:
  - backendRefs:
    - name: echo
      port: 80
"#,
        )
        .start();

    // Explicit port set, send to that port: the route applies.
    mesh.get("echo-v1:80", "/").expect_backend("echo");
    // Explicit port, send to an excluded port: the route does not apply, and the port has no
    // other route, so the request passes through to echo-v1's own endpoints.
    mesh.get("echo-v1:8080", "/").expect_backend("echo-v1");
    mesh.get("echo-v1:8080", "/anything?at=all").expect_backend("echo-v1");
    // No port set: the route applies on every port.
    mesh.get("echo-v2:80", "/").expect_backend("echo");
    mesh.get("echo-v2:8080", "/").expect_backend("echo");
    // The backend Service itself has no routes.
    mesh.get("echo:80", "/").expect_backend("echo");
}

/// MeshFrontendHostname: the frontend is the Service whose ClusterIP the request was sent to,
/// whatever its Host header says.
#[test]
fn mesh_frontend_is_the_cluster_ip_not_the_host() {
    let mesh = Mesh::conformance("mesh_frontend_is_the_cluster_ip_not_the_host")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh-split-v1
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo-v2
  rules:
  - backendRefs:
    - name: echo
      port: 80
"#,
        )
        .start();

    // Sent to echo-v2 while naming echo-v1: echo-v2's route applies.
    mesh.get("echo-v2", "/").header("Host", "echo-v1").expect_backend("echo");
    mesh.get("echo-v2", "/").header("Host", "echo-v1.default.svc.cluster.local").expect_backend("echo");
    // Sent to echo-v1 while naming echo-v2: echo-v1 has no route, so it passes through.
    mesh.get("echo-v1", "/").header("Host", "echo-v2").expect_backend("echo-v1");
    mesh.get("echo-v1", "/").header("Host", "echo-v2.default.svc.cluster.local").expect_backend("echo-v1");
    mesh.get("echo-v1", "/").header("Host", mesh.address_of("echo-v2:80").as_str()).expect_backend("echo-v1");
}

/// A Service port that no route covers is left alone: every method, path and header reaches the
/// Service's own endpoints, even on a mesh where other Services have routes.
#[test]
fn services_without_routes_pass_through() {
    let mesh = Mesh::conformance("services_without_routes_pass_through")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: only-echo
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: Exact, value: /v2}
    backendRefs:
    - {name: echo-v2, port: 80}
"#,
        )
        .start();

    for service in ["echo-v1:80", "echo-v1:8080", "echo-v2:80", "echo-v2:8080"] {
        let backend = service.split(':').next().unwrap_or_default();
        mesh.get(service, "/").expect_backend(backend);
        mesh.get(service, "/v2").expect_backend(backend);
        mesh.get(service, "/some/path?q=1").header("version", "two").expect_backend(backend);
        mesh.request("POST", service, "/submit").expect_backend(backend);
        mesh.request("DELETE", service, "/x").expect_backend(backend);
    }
    // While the Service with the route routes, and answers 404 to what the route does not match.
    mesh.get("echo", "/v2").expect_backend("echo-v2");
    mesh.get("echo", "/").expect_status(404);
}

/// Requests a Service's routes do not match get 404; a rule without backendRefs, or whose only
/// backends do not resolve, gets 500. None of these reach a backend.
#[test]
fn unmatched_is_404_and_rules_without_valid_backends_are_500() {
    let mesh = Mesh::conformance("unmatched_is_404_and_rules_without_valid_backends_are_500")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: edge-cases
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /ok}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /no-backends}
  - matches:
    - path: {type: PathPrefix, value: /missing-service}
    backendRefs:
    - {name: no-such-service, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /unknown-kind}
    backendRefs:
    - {group: example.com, kind: Widget, name: echo-v1, port: 80}
"#,
        )
        .start();

    mesh.get("echo", "/ok").expect_backend("echo-v1");
    mesh.get("echo", "/ok/deeper").expect_backend("echo-v1");
    for path in ["/", "/okay", "/other", "/no-backendsx"] {
        mesh.get("echo", path).expect_status(404);
        mesh.request("POST", "echo:8080", path).expect_status(404);
    }
    for path in ["/no-backends", "/no-backends/x", "/missing-service", "/unknown-kind/y"] {
        mesh.get("echo", path).expect_status(500);
        mesh.request("PUT", "echo:8080", path).expect_status(500);
    }
}

/// The filter alone sets the selection header: a client's copy never selects a cluster, never
/// turns a 404 or 500 into a route, and never reaches a backend.
#[test]
fn spoofed_selection_header_changes_nothing() {
    let mesh = Mesh::conformance("spoofed_selection_header_changes_nothing")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: spoof-target
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: Exact, value: /v1}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: Exact, value: /empty}
"#,
        )
        .start();

    // Cluster names as `meshroute sync` writes them (Istio's), so a leak would really route.
    let v2 = "outbound|80||echo-v2.default.svc.cluster.local";
    let echo = "outbound|80||echo.default.svc.cluster.local";
    for spoof in [v2, echo, "no-such-cluster", ""] {
        let routed = mesh.get("echo", "/v1").header(SELECTION_HEADER, spoof).expect_backend("echo-v1");
        assert_eq!(routed.seen_header(SELECTION_HEADER), None, "the backend saw {SELECTION_HEADER}");
        mesh.get("echo", "/unmatched").header(SELECTION_HEADER, spoof).expect_status(404);
        mesh.get("echo", "/empty").header(SELECTION_HEADER, spoof).expect_status(500);
        // A port without routes passes through to its own endpoints, not to the named cluster.
        mesh.get("echo:8080", "/v1").header(SELECTION_HEADER, spoof).expect_backend("echo");
        mesh.get("echo-v1", "/").header(SELECTION_HEADER, spoof).expect_backend("echo-v1");
    }
    // Sent twice, with different letter case.
    mesh.get("echo", "/v1")
        .header(SELECTION_HEADER, v2)
        .header(&SELECTION_HEADER.to_ascii_uppercase(), v2)
        .expect_backend("echo-v1");
}

/// The listener alone names a request's destination: a client's `x-meshroute-destination`
/// never makes its request routed as if sent to another Service, and never reaches a backend.
#[test]
fn spoofed_destination_header_changes_nothing() {
    let mesh = Mesh::conformance("spoofed_destination_header_changes_nothing")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: only-v2
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v2}
    backendRefs:
    - {name: echo-v2, port: 80}
"#,
        )
        .start();

    let (echo, echo_v1) = (mesh.address_of("echo"), mesh.address_of("echo-v1"));
    // Sent to echo-v1 (no routes) as if to echo: still echo-v1's own endpoints, not echo's route.
    let routed = mesh.get("echo-v1", "/v2").header(DESTINATION_HEADER, &echo).expect_backend("echo-v1");
    assert_eq!(routed.seen_header(DESTINATION_HEADER), None, "the backend saw {DESTINATION_HEADER}");
    // Sent to echo as if to echo-v1: echo's routes still decide.
    mesh.get("echo", "/v1").header(DESTINATION_HEADER, &echo_v1).expect_status(404);
    let routed = mesh.get("echo", "/v2").header(DESTINATION_HEADER, &echo_v1).expect_backend("echo-v2");
    assert_eq!(routed.seen_header(DESTINATION_HEADER), None, "the backend saw {DESTINATION_HEADER}");
    // Nonsense, twice, in another letter case.
    mesh.get("echo", "/v2")
        .header(DESTINATION_HEADER, "not an address")
        .header(&DESTINATION_HEADER.to_ascii_uppercase(), &echo_v1)
        .expect_backend("echo-v2");
}

/// Clients speaking cleartext HTTP/2 are routed exactly like HTTP/1.1 clients.
#[test]
fn http2_clients_are_routed_the_same() {
    let mesh = Mesh::conformance("http2_clients_are_routed_the_same")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: h2c
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: Exact, value: /v1}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - headers:
      - {name: version, value: two}
      method: POST
    backendRefs:
    - {name: echo-v2, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /empty}
"#,
        )
        .start();

    mesh.get("echo", "/v1").http2().expect_backend("echo-v1");
    mesh.request("POST", "echo", "/x?y=1").header("version", "two").http2().expect_backend("echo-v2");
    mesh.get("echo", "/x").header("version", "two").http2().expect_status(404);
    mesh.get("echo", "/empty").http2().expect_status(500);
    mesh.get("echo:8080", "/v1").http2().expect_backend("echo");
    mesh.get("echo-v1", "/v1").http2().expect_backend("echo-v1");
    let spoof = "outbound|80||echo-v2.default.svc.cluster.local";
    mesh.get("echo", "/v1").header(SELECTION_HEADER, spoof).http2().expect_backend("echo-v1");
    mesh.get("echo", "/nothing").header(SELECTION_HEADER, spoof).http2().expect_status(404);
}
