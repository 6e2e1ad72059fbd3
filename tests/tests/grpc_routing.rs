//! GRPCRoute through Envoy: real gRPC clients (tonic, cleartext HTTP/2 with prior knowledge,
//! the listener's h2c path) calling real gRPC backends (`echo_basic.grpcecho.GrpcEcho`), call
//! by call. Every backend serves every method of the service, so what is unimplemented is
//! decided by the routes alone; a status the proxy gives is told apart from one a backend gives
//! by the backends' `x-echo-backend` response header.
//!
//! Each test starts one Envoy; where cases need different routes on one Service, the mesh has
//! several frontend Services instead of several meshes.

use std::process::Command;

use meshroute_e2e::mesh::{Mesh, MeshBuilder, Port};
use tonic::Code;

const V1: &str = "grpc-infra-backend-v1";
const V2: &str = "grpc-infra-backend-v2";
const V3: &str = "grpc-infra-backend-v3";

/// The product page's backends, and a third.
fn grpc_backends(builder: MeshBuilder) -> MeshBuilder {
    builder.grpc_service(V1).grpc_service(V2).grpc_service(V3)
}

/// The product page's GRPCRoute with its typos fixed (apiVersion with `/v1`, a space after
/// `service:`, the first rule indented like the second), on its `echo-service` with a gRPC port
/// 8080 beside an HTTP port 80.
#[test]
fn product_page_grpc_route_routes_by_method() {
    let mesh = grpc_backends(Mesh::builder("product_page_grpc_route_routes_by_method"))
        .service_with("echo-service", &[Port::Http(80), Port::Grpc(8080)])
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: echo-route
spec:
  parentRefs:
  - kind: Service
    group: ""
    name: echo-service
  rules:
  - matches:
    - method:
        service: echo_basic.grpcecho.GrpcEcho
        method: Echo
    backendRefs:
    - name: grpc-infra-backend-v1
      port: 8080
  - matches:
    - method:
        service: echo_basic.grpcecho.GrpcEcho
        method: EchoTwo
    backendRefs:
    - name: grpc-infra-backend-v2
      port: 8080
"#,
        )
        .start();

    mesh.grpc("echo-service", "Echo").expect_backend(V1);
    mesh.grpc("echo-service", "EchoTwo").expect_backend(V2);
    mesh.grpc("echo-service", "EchoThree").expect_code(Code::Unimplemented);
    mesh.grpc("echo-service:8080", "Echo").message("second call").expect_backend(V1);
    // Metadata reaches the backend untouched and does not change the route.
    mesh.grpc("echo-service", "Echo").metadata("x-request-id", "42").metadata("version", "two").expect_backend(V1);
    mesh.grpc("echo-service", "EchoTwo").metadata("x-request-id", "43").expect_backend(V2);
    // Methods and services are matched exactly and case-sensitively.
    mesh.grpc("echo-service", "EchoStream").expect_code(Code::Unimplemented);
    mesh.grpc("echo-service", "echo").expect_code(Code::Unimplemented);
    mesh.grpc("echo-service", "EchoTwoo").expect_code(Code::Unimplemented);
    mesh.grpc("echo-service", "/echo_basic.grpcecho.GrpcEchoTwo/Echo").expect_code(Code::Unimplemented);
    mesh.grpc("echo-service", "/grpcecho.GrpcEcho/Echo").expect_code(Code::Unimplemented);
    mesh.grpc("echo-service", "/Echo/echo_basic.grpcecho.GrpcEcho").expect_code(Code::Unimplemented);

    // On the wire, UNIMPLEMENTED is a trailers-only answer: HTTP 200, content-type
    // application/grpc, grpc-status 12 in the headers and no body.
    let reply = mesh
        .request("POST", "echo-service:8080", "/echo_basic.grpcecho.GrpcEcho/EchoThree")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .http2()
        .expect_status(200);
    assert_eq!(reply.backend, None, "EchoThree should be answered by the proxy: {reply}");
    assert_eq!(reply.headers.get("grpc-status").map(String::as_str), Some("12"), "{reply}: {:?}", reply.headers);
    let content_type = reply.headers.get("content-type").map_or("", String::as_str);
    assert!(content_type.starts_with("application/grpc"), "{reply}: content-type {content_type:?}");
    assert_eq!(reply.body, "", "a trailers-only answer has no body: {reply}");

    // The GRPCRoute has no port, and port 80 is declared plain HTTP (named http-80): the route
    // does not attach there, so the port has no route and passes through.
    mesh.get("echo-service:80", "/echo_basic.grpcecho.GrpcEcho/Echo").expect_backend("echo-service");
    // The backends themselves have no routes: a call to one reaches it directly.
    mesh.grpc(V2, "EchoThree").expect_backend(V2);

    // The client the demo documents, through Envoy.
    let to = mesh.address_of("echo-service:8080");
    let call = |method: &str| {
        Command::new(env!("CARGO_BIN_EXE_meshroute-grpc-echo"))
            .args(["call", "--to", &to, method, "hello"])
            .output()
            .unwrap_or_else(|error| panic!("cannot run meshroute-grpc-echo: {error}"))
    };
    for (method, backend) in [("Echo", V1), ("EchoTwo", V2)] {
        let out = call(method);
        let printed = String::from_utf8_lossy(&out.stdout);
        let expected = format!(
            "{{\"backend\":\"{backend}\",\"method\":\"/echo_basic.grpcecho.GrpcEcho/{method}\",\"message\":\"hello\"}}\n"
        );
        assert!(out.status.success(), "call {method}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(printed, expected, "meshroute-grpc-echo call --to {to} {method} hello");
    }
    let out = call("EchoThree");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "call EchoThree: {said}");
    assert!(said.contains("grpc-status 12 (Unimplemented)") && !said.contains("from backend"), "call EchoThree: {said}");
}

/// HTTPRouteHeaderMatching's rules and cases as gRPC metadata: metadata within a match is ANDed,
/// matches are ORed, more matching metadata wins, between equally specific rules the first one
/// wins, names are case-insensitive; and regular expressions match whole values.
#[test]
fn grpc_header_matching_with_ties() {
    let mesh = grpc_backends(Mesh::builder("grpc_header_matching_with_ties"))
        .grpc_service("echo-service")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: header-matching
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo-service
    port: 8080
  rules:
  # Matches "version: one". The name is written in another case than clients send it (HTTP/2
  # sends header names in lower case): names are case-insensitive.
  - matches:
    - headers:
      - name: Version
        value: one
    backendRefs:
    - name: grpc-infra-backend-v1
      port: 8080
  # Matches "version: two"
  - matches:
    - headers:
      - name: version
        value: two
    backendRefs:
    - name: grpc-infra-backend-v2
      port: 8080
  # Matches "version: two" AND "color: orange"
  - matches:
    - headers:
      - name: version
        value: two
      - name: color
        value: orange
    backendRefs:
    - name: grpc-infra-backend-v1
      port: 8080
  # Matches "color: blue" OR "color: green"
  - matches:
    - headers:
      - name: color
        value: blue
    - headers:
      - name: color
        value: green
    backendRefs:
    - name: grpc-infra-backend-v1
      port: 8080
  # Matches "color: red" OR "color: yellow"
  - matches:
    - headers:
      - name: color
        value: red
    - headers:
      - name: color
        value: yellow
    backendRefs:
    - name: grpc-infra-backend-v2
      port: 8080
  # EchoThree with "release" matching the regular expression t.o (a method outranks metadata).
  - matches:
    - method:
        service: echo_basic.grpcecho.GrpcEcho
        method: EchoThree
      headers:
      - type: RegularExpression
        name: release
        value: "t.o"
    backendRefs:
    - name: grpc-infra-backend-v3
      port: 8080
"#,
        )
        .start();

    let call = |method| mesh.grpc("echo-service", method);
    call("Echo").metadata("version", "one").expect_backend(V1);
    call("Echo").metadata("version", "two").expect_backend(V2);
    // Two matching headers beat one.
    call("Echo").metadata("version", "two").metadata("color", "orange").expect_backend(V1);
    // A tie (one header each for "version: two" and "color: blue"): the earlier rule wins.
    call("Echo").metadata("version", "two").metadata("color", "blue").expect_backend(V2);
    call("Echo").metadata("color", "orange").expect_code(Code::Unimplemented);
    call("Echo").metadata("some-other-header", "one").expect_code(Code::Unimplemented);
    call("Echo").metadata("color", "blue").expect_backend(V1);
    call("Echo").metadata("color", "green").expect_backend(V1);
    call("Echo").metadata("color", "red").expect_backend(V2);
    call("Echo").metadata("color", "yellow").expect_backend(V2);
    call("Echo").metadata("color", "purple").expect_code(Code::Unimplemented);
    // Values are case-sensitive.
    call("Echo").metadata("version", "One").expect_code(Code::Unimplemented);
    call("Echo").expect_code(Code::Unimplemented);
    // Rules without a method match hold for every method and service.
    call("EchoTwo").metadata("version", "one").expect_backend(V1);
    call("/other.pkg.Service/Anything").metadata("color", "red").expect_backend_status(V2, Code::Unimplemented);

    call("EchoThree").metadata("release", "two").expect_backend(V3);
    call("EchoThree").metadata("release", "too").metadata("version", "one").expect_backend(V3);
    call("EchoThree").metadata("release", "twoo").expect_code(Code::Unimplemented);
    call("EchoThree").metadata("release", "xtwo").expect_code(Code::Unimplemented);
    call("EchoThree").metadata("version", "two").expect_backend(V2);
    call("EchoThree").expect_code(Code::Unimplemented);
    call("Echo").metadata("release", "two").expect_code(Code::Unimplemented);
}

/// Weights as for HTTPRoute, over many calls, every one of them successful; weight 0 gets
/// nothing; an invalid backendRef keeps its share, which answers UNAVAILABLE, and a rule without
/// backends answers UNAVAILABLE to every call.
///
/// How the tolerances are chosen (as in weights.rs): each call independently goes to a backend
/// with probability p = w / (sum of weights), so a backend's count over n calls is binomial with
/// mean np and sigma = sqrt(n p (1 - p)). Every bound is at least 5 sigma from the expected
/// count, which chance crosses with probability below 6e-7: a correct implementation fails it
/// less than once in a million runs.
#[test]
fn grpc_weights_and_unavailable_shares() {
    let mesh = grpc_backends(Mesh::builder("grpc_weights_and_unavailable_shares"))
        .grpc_service("echo-service")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: weights
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-service}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: Echo}
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080, weight: 70}
    - {name: grpc-infra-backend-v2, port: 8080, weight: 30}
    - {name: grpc-infra-backend-v3, port: 8080, weight: 0}
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoTwo}
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080, weight: 1}
    - {name: no-such-service, port: 8080, weight: 1}
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoThree}
"#,
        )
        .start();

    for _ in 0..10 {
        mesh.grpc("echo-service", "Echo").metadata("version", "one").expect_one_of(&[V1, V2]);
    }

    // n = 2000, p(v1) = 0.7: mean 1400, sigma = sqrt(2000 * 0.7 * 0.3) = 20.5; +-105 is 5.1
    // sigma. It catches a split of 60:40 or 80:20 (means 1200 and 1600, 4.6 and 9.8 sigma
    // outside the bounds) and one weight ignored (1000 or 2000).
    let n = 2000;
    let tally = mesh.grpc("echo-service", "Echo").spread(n);
    println!("weights 70, 30, 0, {n} calls: {tally}");
    assert_eq!(tally.count(V3), 0, "{V3} has weight 0: {tally}");
    assert_eq!(tally.count(V1) + tally.count(V2), n, "every call should be answered by {V1} or {V2}: {tally}");
    assert!((1295..=1505).contains(&tally.count(V1)), "{V1} should get 70% of {n} calls (1400 +- 105): {tally}");

    // n = 1000, p = 1/2: mean 500, sigma 15.8; +-80 is 5.1 sigma. It catches an invalid share
    // that is dropped or merged into the valid one (0 or 1000 failures).
    let n = 1000;
    let tally = mesh.grpc("echo-service", "EchoTwo").spread(n);
    println!("valid 1, missing Service 1, {n} calls: {tally}");
    let unavailable = tally.count("gRPC Unavailable");
    assert_eq!(unavailable + tally.count(V1), n, "only {V1} and UNAVAILABLE (from the proxy) may answer: {tally}");
    assert!((420..=580).contains(&unavailable), "half of {n} calls should be UNAVAILABLE (500 +- 80): {tally}");

    for _ in 0..5 {
        mesh.grpc("echo-service", "EchoThree").expect_code(Code::Unavailable);
    }
    let reply = mesh
        .request("POST", "echo-service:8080", "/echo_basic.grpcecho.GrpcEcho/EchoThree")
        .header("content-type", "application/grpc")
        .http2()
        .expect_status(200);
    assert_eq!(reply.headers.get("grpc-status").map(String::as_str), Some("14"), "{reply}: {:?}", reply.headers);
    mesh.grpc("echo-service", "EchoStream").expect_code(Code::Unimplemented);
}

/// Service-only and regular-expression method matches, and the precedence ladder across
/// GRPCRoutes: most characters of matching service, then of method, then most headers, then the
/// oldest route, then namespace/name, then rule order. Each case has a frontend Service of its
/// own; the route that should lose is written first and named to sort first wherever that could
/// mislead.
#[test]
fn grpc_service_regex_and_precedence() {
    let mesh = grpc_backends(Mesh::builder("grpc_service_regex_and_precedence"))
        .grpc_service("by-service")
        .grpc_service("by-regex")
        .grpc_service("precedence")
        .routes(
            r#"
# Every method of one service, and nothing else.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: service-only
spec:
  parentRefs:
  - {group: "", kind: Service, name: by-service}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho}
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: regex
spec:
  parentRefs:
  - {group: "", kind: Service, name: by-regex}
  rules:
  - matches:
    - method: {type: RegularExpression, method: "Echo(Two|Three)"}
    backendRefs:
    - {name: grpc-infra-backend-v2, port: 8080}
  - matches:
    - method: {type: RegularExpression, service: "echo_basic\\.grpcecho\\.[A-Z][a-z]+", method: Echo}
    backendRefs:
    - {name: grpc-infra-backend-v3, port: 8080}
---
# Service characters beat method characters, even from an older route.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: a-old-method-only
  creationTimestamp: "2020-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: precedence}
  rules:
  - matches:
    - method: {method: EchoTwo}
    backendRefs:
    - {name: grpc-infra-backend-v2, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: b-new-service-only
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: precedence}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho}
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
---
# Method characters beat headers; headers beat none.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: c-old-headers
  creationTimestamp: "2020-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: precedence}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho}
      headers:
      - {name: version, value: one}
      - {name: color, value: blue}
    backendRefs:
    - {name: grpc-infra-backend-v3, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: d-new-method
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: precedence}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: Echo}
    backendRefs:
    - {name: grpc-infra-backend-v2, port: 8080}
---
# Identical matches: the oldest route wins over the one whose name sorts first.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: e-newer
  creationTimestamp: "2024-06-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: precedence}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoThree}
      headers:
      - {name: tie, value: age}
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: f-older
  creationTimestamp: "2023-06-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: precedence}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoThree}
      headers:
      - {name: tie, value: age}
    backendRefs:
    - {name: grpc-infra-backend-v3, port: 8080}
---
# Identical matches and creation times: namespace/name in alphabetical order, whatever the
# order of the documents; within one route, the first rule.
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: h-second
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: precedence}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoThree}
      headers:
      - {name: tie, value: name}
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: g-first
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: precedence}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoThree}
      headers:
      - {name: tie, value: name}
    backendRefs:
    - {name: grpc-infra-backend-v3, port: 8080}
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoThree}
      headers:
      - {name: tie, value: rules}
    backendRefs:
    - {name: grpc-infra-backend-v3, port: 8080}
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoThree}
      headers:
      - {name: tie, value: rules}
    backendRefs:
    - {name: grpc-infra-backend-v2, port: 8080}
"#,
        )
        .start();

    // Service only: every method of that service, streaming included; no other service.
    for method in ["Echo", "EchoTwo", "EchoThree"] {
        mesh.grpc("by-service", method).expect_backend(V1);
    }
    mesh.grpc("by-service", "EchoStream").expect_stream(V1, &["one", "two"]);
    mesh.grpc("by-service", "/echo_basic.grpcecho.GrpcEcho/NoSuchMethod").expect_backend_status(V1, Code::Unimplemented);
    mesh.grpc("by-service", "/echo_basic.grpcecho.GrpcEchoTwo/Echo").expect_code(Code::Unimplemented);
    mesh.grpc("by-service", "/echo_basic.grpcecho/Echo").expect_code(Code::Unimplemented);
    mesh.grpc("by-service", "/other.Service/Echo").expect_code(Code::Unimplemented);

    // Regular expressions match the whole name, case-sensitively; a method-only one holds for
    // every service.
    mesh.grpc("by-regex", "EchoTwo").expect_backend(V2);
    mesh.grpc("by-regex", "EchoThree").expect_backend(V2);
    mesh.grpc("by-regex", "/other.Service/EchoTwo").expect_backend_status(V2, Code::Unimplemented);
    mesh.grpc("by-regex", "/echo_basic.grpcecho.GrpcEcho/EchoTwoo").expect_code(Code::Unimplemented);
    mesh.grpc("by-regex", "/echo_basic.grpcecho.GrpcEcho/XEchoTwo").expect_code(Code::Unimplemented);
    mesh.grpc("by-regex", "/echo_basic.grpcecho.GrpcEcho/echotwo").expect_code(Code::Unimplemented);
    mesh.grpc("by-regex", "Echo").expect_code(Code::Unimplemented);
    mesh.grpc("by-regex", "/echo_basic.grpcecho.Other/Echo").expect_backend_status(V3, Code::Unimplemented);
    mesh.grpc("by-regex", "/echo_basic.grpcecho.other/Echo").expect_code(Code::Unimplemented);
    mesh.grpc("by-regex", "/xecho_basic.grpcecho.Other/Echo").expect_code(Code::Unimplemented);
    mesh.grpc("by-regex", "/echo_basic.grpcecho.Other/EchoStream").expect_code(Code::Unimplemented);

    // Service characters beat method characters.
    mesh.grpc("precedence", "EchoTwo").expect_backend(V1);
    mesh.grpc("precedence", "/other.Service/EchoTwo").expect_backend_status(V2, Code::Unimplemented);
    // Method characters beat headers; headers beat none.
    mesh.grpc("precedence", "Echo").metadata("version", "one").metadata("color", "blue").expect_backend(V2);
    mesh.grpc("precedence", "EchoThree").metadata("version", "one").metadata("color", "blue").expect_backend(V3);
    mesh.grpc("precedence", "EchoThree").metadata("version", "one").expect_backend(V1);
    // Then the oldest route, then namespace/name, then rule order.
    mesh.grpc("precedence", "EchoThree").metadata("tie", "age").expect_backend(V3);
    mesh.grpc("precedence", "EchoThree").metadata("tie", "name").expect_backend(V3);
    mesh.grpc("precedence", "EchoThree").metadata("tie", "rules").expect_backend(V3);
    mesh.grpc("precedence", "/other.Service/Echo").expect_code(Code::Unimplemented);
}

/// A GRPCRoute and an HTTPRoute on the same Service port: the GRPCRoute takes the port, for
/// gRPC calls and plain HTTP requests alike, and the HTTPRoute keeps the ports the GRPCRoute
/// does not attach to (declared plain HTTP by the port name `http-80`). Without a GRPCRoute, an
/// HTTPRoute routes gRPC calls by path.
#[test]
fn grpc_route_beats_http_route_on_the_same_port() {
    let mesh = grpc_backends(Mesh::builder("grpc_route_beats_http_route_on_the_same_port"))
        .service("echo-v1")
        .service_with("echo-service", &[Port::Http(80), Port::Grpc(8080)])
        .service_with("explicit", &[Port::Grpc(8080), Port::Grpc(9090)])
        .grpc_service("http-routed")
        .routes(
            r#"
# No ports: the HTTPRoute attaches to both ports, the GRPCRoute to the gRPC port only.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: a-old-http
  creationTimestamp: "2020-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-service}
  - {group: "", kind: Service, name: explicit, port: 8080}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: b-new-grpc
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-service}
  - {group: "", kind: Service, name: explicit, port: 8080}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: Echo}
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
---
# gRPC calls routed by an HTTPRoute, by path.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: grpc-by-path
spec:
  parentRefs:
  - {group: "", kind: Service, name: http-routed}
  rules:
  - matches:
    - path: {type: Exact, value: /echo_basic.grpcecho.GrpcEcho/EchoTwo}
    backendRefs:
    - {name: grpc-infra-backend-v2, port: 8080}
  - matches:
    - path: {type: PathPrefix, value: /echo_basic.grpcecho.GrpcEcho}
    backendRefs:
    - {name: grpc-infra-backend-v3, port: 8080}
"#,
        )
        .start();

    // The gRPC port: the GRPCRoute routes gRPC calls; the HTTPRoute is not merged in.
    mesh.grpc("echo-service:8080", "Echo").expect_backend(V1);
    mesh.grpc("echo-service:8080", "EchoTwo").expect_code(Code::Unimplemented);
    // Plain HTTP requests on that port are GRPCRoute-routed too: by path, never to echo-v1.
    let reply = mesh.get("echo-service:8080", "/echo_basic.grpcecho.GrpcEcho/Echo").send();
    assert_eq!(reply.backend.as_deref(), Some(V1), "a plain HTTP request for Echo on the gRPC port: {reply}");
    mesh.get("echo-service:8080", "/").expect_status(404);
    mesh.get("echo-service:8080", "/").http2().expect_status(404);
    // The HTTP port: only the HTTPRoute is there.
    mesh.get("echo-service:80", "/").expect_backend("echo-v1");
    mesh.get("echo-service:80", "/echo_basic.grpcecho.GrpcEcho/EchoTwo").expect_backend("echo-v1");

    // With explicit ports, the same: the GRPCRoute wins on 8080; 9090 has no route at all.
    mesh.grpc("explicit:8080", "Echo").expect_backend(V1);
    mesh.grpc("explicit:8080", "EchoThree").expect_code(Code::Unimplemented);
    mesh.get("explicit:8080", "/").expect_status(404);
    mesh.grpc("explicit:9090", "EchoThree").expect_backend("explicit");

    // An HTTPRoute alone routes gRPC calls by path; an unmatched call is UNIMPLEMENTED (Envoy's
    // gRPC form of 404).
    mesh.grpc("http-routed", "EchoTwo").expect_backend(V2);
    mesh.grpc("http-routed", "Echo").expect_backend(V3);
    mesh.grpc("http-routed", "EchoStream").expect_stream(V3, &["a", "b", "c"]);
    mesh.grpc("http-routed", "/other.Service/Echo").expect_code(Code::Unimplemented);
}

/// Streaming calls routed by method, with every message delivered in order in both directions
/// while the call is open, and trailers intact both ways.
#[test]
fn grpc_streaming_routed_by_method() {
    let mesh = grpc_backends(Mesh::builder("grpc_streaming_routed_by_method"))
        .grpc_service("echo-service")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: streams
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-service}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: Echo}
    backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoStream}
    backendRefs:
    - {name: grpc-infra-backend-v2, port: 8080}
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoStream}
      headers:
      - {name: stream-to, value: v3}
    backendRefs:
    - {name: grpc-infra-backend-v3, port: 8080}
"#,
        )
        .start();

    // Each message goes out only after the answer to the one before came back: the call
    // completes only if Envoy and the filter stream both ways without buffering the call.
    let messages: Vec<String> = (0..25).map(|i| format!("message {i}")).collect();
    let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
    mesh.grpc("echo-service", "EchoStream").expect_stream(V2, &messages);
    mesh.grpc("echo-service", "EchoStream").metadata("stream-to", "v3").expect_stream(V3, &["one", "two"]);
    mesh.grpc("echo-service", "EchoStream").metadata("stream-to", "v1").expect_stream(V2, &["only"]);
    mesh.grpc("echo-service", "Echo").expect_backend(V1);

    // Request trailers reach the backend, and large messages cross many HTTP/2 frames intact.
    let large = "0123456789abcdef".repeat(16 * 1024);
    let reply = mesh.grpc("echo-service", "EchoStream").expect_stream_with_trailers(
        V2,
        &["first", &large, "last"],
        &[("x-client-trailer", "done"), ("x-checksum", "abc123")],
    );
    assert_eq!(reply.answers[1].message.len(), large.len());
    mesh.grpc("echo-service", "EchoStream").expect_stream_with_trailers(V2, &[], &[("x-empty", "yes")]);
}
