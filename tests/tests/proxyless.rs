//! Proxyless gRPC: real grpcio clients dialling `xds:///NAME.NS.svc.cluster.local:PORT`, routed
//! by the GRPCRoutes that `meshroute serve` translates into xDS, with no proxy between client and
//! backend; and the same cases through Envoy.
//!
//! Each routing case is one function over the data plane, run twice (`CASE::envoy` and
//! `CASE::proxyless`) with the very same calls and expectations ([`meshroute_e2e::proxyless`]), so
//! Envoy and proxyless clients cannot drift apart. The manifests are those of grpc_routing.rs;
//! the cases only a proxy can have (plain HTTP on a gRPC port, the wire form of a status,
//! streams) stay there. A call that matches no rule is UNIMPLEMENTED on both data planes, as the
//! GRPCRoute spec asks; a rule without backends, and an invalid backend's share, UNAVAILABLE.
//!
//! The Envoy halves run with the filter only: grpc_routing.rs already runs these cases through
//! Envoy's own router (`MESHROUTE_E2E_MODE=native`). Name forms, the bootstrap and a restarted
//! `serve` concern proxyless clients alone: Envoy routes by ClusterIP, not by name.

use std::thread;
use std::time::{Duration, SystemTime};

use meshroute_e2e::live::{replace_file, wait_until, SyncProcess};
use meshroute_e2e::mesh::{Mesh, MeshBuilder, Port};
use meshroute_e2e::proxyless::{grpc_bootstrap, DataPlane, Outcome, ProxylessClient};
use meshroute_e2e::tools;
use tonic::Code;

const V1: &str = "grpc-infra-backend-v1";
const V2: &str = "grpc-infra-backend-v2";
const V3: &str = "grpc-infra-backend-v3";

meshroute_e2e::on_both_data_planes!(
    product_page_routes_by_method,
    header_matching_with_ties,
    service_regex_and_precedence,
    weights_and_unavailable_shares,
    grpc_route_beats_http_route_on_the_same_port,
    consumer_routes_by_client_namespace,
    live_updates_under_steady_calls,
);

/// The product page's backends, and a third, on the data plane under test.
fn mesh(name: &str, plane: DataPlane) -> MeshBuilder {
    Mesh::builder(&format!("{name}_{plane}")).data_plane(plane).grpc_service(V1).grpc_service(V2).grpc_service(V3)
}

/// The product page's GRPCRoute with its typos fixed, on its `echo-service` with a gRPC port 8080
/// beside an HTTP port 80: `Echo` and `EchoTwo` to their backends, anything else UNIMPLEMENTED.
fn product_page_routes_by_method(plane: DataPlane) {
    let mesh = mesh("proxyless_product_page", plane)
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

    mesh.rpc("echo-service", "Echo").expect_backend(V1);
    mesh.rpc("echo-service", "EchoTwo").expect_backend(V2);
    mesh.rpc("echo-service", "EchoThree").expect_code(Code::Unimplemented);
    mesh.rpc("echo-service:8080", "Echo").message("second call").expect_backend(V1);
    // Metadata reaches the backend untouched and does not change the route.
    mesh.rpc("echo-service", "Echo").metadata("x-request-id", "42").metadata("version", "two").expect_backend(V1);
    mesh.rpc("echo-service", "EchoTwo").metadata("x-request-id", "43").expect_backend(V2);
    // Methods and services are matched exactly and case-sensitively.
    mesh.rpc("echo-service", "EchoStream").expect_code(Code::Unimplemented);
    mesh.rpc("echo-service", "echo").expect_code(Code::Unimplemented);
    mesh.rpc("echo-service", "EchoTwoo").expect_code(Code::Unimplemented);
    mesh.rpc("echo-service", "/echo_basic.grpcecho.GrpcEchoTwo/Echo").expect_code(Code::Unimplemented);
    mesh.rpc("echo-service", "/grpcecho.GrpcEcho/Echo").expect_code(Code::Unimplemented);
    mesh.rpc("echo-service", "/Echo/echo_basic.grpcecho.GrpcEcho").expect_code(Code::Unimplemented);
    // The backends themselves have no routes: a call to one reaches it directly.
    mesh.rpc(V2, "EchoThree").expect_backend(V2);
}

/// HTTPRouteHeaderMatching's rules as gRPC metadata: metadata within a match is ANDed, matches
/// are ORed, more matching metadata wins, between equally specific rules the first one wins,
/// names are case-insensitive, values are not; regular expressions match whole values.
fn header_matching_with_ties(plane: DataPlane) {
    let mesh = mesh("proxyless_header_matching", plane)
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
  - matches:
    - headers:
      - name: Version
        value: one
    backendRefs:
    - name: grpc-infra-backend-v1
      port: 8080
  - matches:
    - headers:
      - name: version
        value: two
    backendRefs:
    - name: grpc-infra-backend-v2
      port: 8080
  - matches:
    - headers:
      - name: version
        value: two
      - name: color
        value: orange
    backendRefs:
    - name: grpc-infra-backend-v1
      port: 8080
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

    let call = |method| mesh.rpc("echo-service", method);
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

/// Service-only and regular-expression method matches, and the precedence ladder across
/// GRPCRoutes: most characters of matching service, then of method, then most headers, then the
/// oldest route, then namespace/name, then rule order.
fn service_regex_and_precedence(plane: DataPlane) {
    let mesh = mesh("proxyless_precedence", plane)
        .grpc_service("by-service")
        .grpc_service("by-regex")
        .grpc_service("precedence")
        .routes(PRECEDENCE_ROUTES)
        .start();

    for method in ["Echo", "EchoTwo", "EchoThree"] {
        mesh.rpc("by-service", method).expect_backend(V1);
    }
    mesh.rpc("by-service", "/echo_basic.grpcecho.GrpcEcho/NoSuchMethod").expect_backend_status(V1, Code::Unimplemented);
    mesh.rpc("by-service", "/echo_basic.grpcecho.GrpcEchoTwo/Echo").expect_code(Code::Unimplemented);
    mesh.rpc("by-service", "/echo_basic.grpcecho/Echo").expect_code(Code::Unimplemented);
    mesh.rpc("by-service", "/other.Service/Echo").expect_code(Code::Unimplemented);

    mesh.rpc("by-regex", "EchoTwo").expect_backend(V2);
    mesh.rpc("by-regex", "EchoThree").expect_backend(V2);
    mesh.rpc("by-regex", "/other.Service/EchoTwo").expect_backend_status(V2, Code::Unimplemented);
    mesh.rpc("by-regex", "/echo_basic.grpcecho.GrpcEcho/EchoTwoo").expect_code(Code::Unimplemented);
    mesh.rpc("by-regex", "/echo_basic.grpcecho.GrpcEcho/XEchoTwo").expect_code(Code::Unimplemented);
    mesh.rpc("by-regex", "/echo_basic.grpcecho.GrpcEcho/echotwo").expect_code(Code::Unimplemented);
    mesh.rpc("by-regex", "Echo").expect_code(Code::Unimplemented);
    mesh.rpc("by-regex", "/echo_basic.grpcecho.Other/Echo").expect_backend_status(V3, Code::Unimplemented);
    mesh.rpc("by-regex", "/echo_basic.grpcecho.other/Echo").expect_code(Code::Unimplemented);
    mesh.rpc("by-regex", "/xecho_basic.grpcecho.Other/Echo").expect_code(Code::Unimplemented);
    mesh.rpc("by-regex", "/echo_basic.grpcecho.Other/EchoStream").expect_code(Code::Unimplemented);

    // Service characters beat method characters.
    mesh.rpc("precedence", "EchoTwo").expect_backend(V1);
    mesh.rpc("precedence", "/other.Service/EchoTwo").expect_backend_status(V2, Code::Unimplemented);
    // Method characters beat headers; headers beat none.
    mesh.rpc("precedence", "Echo").metadata("version", "one").metadata("color", "blue").expect_backend(V2);
    mesh.rpc("precedence", "EchoThree").metadata("version", "one").metadata("color", "blue").expect_backend(V3);
    mesh.rpc("precedence", "EchoThree").metadata("version", "one").expect_backend(V1);
    // Then the oldest route, then namespace/name, then rule order.
    mesh.rpc("precedence", "EchoThree").metadata("tie", "age").expect_backend(V3);
    mesh.rpc("precedence", "EchoThree").metadata("tie", "name").expect_backend(V3);
    mesh.rpc("precedence", "EchoThree").metadata("tie", "rules").expect_backend(V3);
    mesh.rpc("precedence", "/other.Service/Echo").expect_code(Code::Unimplemented);
}

/// grpc_routing.rs's precedence manifests: the route that should lose is written first and named
/// to sort first wherever that could mislead.
const PRECEDENCE_ROUTES: &str = r#"
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
"#;

/// How fast an invalid backend's share must fail: at once, not after waiting out gRPC's 15 s
/// does-not-exist timer for a cluster that is never served. A call here takes milliseconds; the
/// bound leaves room for a loaded machine and a fresh client's first fetch of its configuration.
const AT_ONCE: Duration = Duration::from_secs(1);

/// Weights over many calls, every one answered; weight 0 gets nothing; an invalid backendRef
/// keeps its share, which fails at once with UNAVAILABLE; a rule without backends answers
/// UNAVAILABLE to every call.
///
/// How the tolerances are chosen (as in weights.rs and grpc_routing.rs): each call independently
/// goes to a backend with probability p = w / (sum of weights), so a backend's count over n calls
/// is binomial with mean np and sigma = sqrt(n p (1 - p)). Every bound is at least 5.1 sigma from
/// the expected count, which chance crosses with probability below 4e-7 (two-sided): a correct
/// implementation fails it less than once in a million runs.
fn weights_and_unavailable_shares(plane: DataPlane) {
    let mesh = mesh("proxyless_weights", plane)
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

    // First, while the proxyless client is fresh: its very first call fetches the configuration,
    // which names the invalid backend; that must not hold anything back. 30 calls at p = 1/2 are
    // all alike with probability 2^-29 (2e-9), so both outcomes are seen.
    let outcomes = mesh.rpc("echo-service", "EchoTwo").outcomes(30);
    for outcome in &outcomes {
        assert!(outcome.elapsed < AT_ONCE, "EchoTwo on {plane}: each call within {AT_ONCE:?}, got {outcome}");
        assert!(
            outcome.backend() == Some(V1) || (outcome.code == Code::Unavailable && outcome.header_backend.is_none()),
            "EchoTwo on {plane}: {V1} or UNAVAILABLE from the data plane, got {outcome}"
        );
    }
    let failed = outcomes.iter().filter(|outcome| outcome.code == Code::Unavailable).count();
    assert!(0 < failed && failed < outcomes.len(), "EchoTwo on {plane}: {failed} of 30 UNAVAILABLE, expected some, not all");

    for _ in 0..10 {
        mesh.rpc("echo-service", "Echo").metadata("version", "one").expect_one_of(&[V1, V2]);
    }

    // n = 2000, p(v1) = 0.7: mean 1400, sigma = sqrt(2000 * 0.7 * 0.3) = 20.5; +-105 is 5.1
    // sigma. It catches a split of 60:40 or 80:20 (means 1200 and 1600, 4.6 and 9.8 sigma
    // outside the bounds) and one weight ignored (1000 or 2000).
    let n = 2000;
    let tally = mesh.rpc("echo-service", "Echo").spread(n);
    println!("{plane}: weights 70, 30, 0, {n} calls: {tally}");
    assert_eq!(tally.count(V3), 0, "{V3} has weight 0: {tally}");
    assert_eq!(tally.count(V1) + tally.count(V2), n, "every call should be answered by {V1} or {V2}: {tally}");
    assert!((1295..=1505).contains(&tally.count(V1)), "{V1} should get 70% of {n} calls (1400 +- 105): {tally}");

    // n = 1000, p = 1/2: mean 500, sigma 15.8; +-80 is 5.1 sigma. It catches an invalid share
    // that is dropped or merged into the valid one (0 or 1000 failures).
    let n = 1000;
    let tally = mesh.rpc("echo-service", "EchoTwo").spread(n);
    println!("{plane}: valid 1, missing Service 1, {n} calls: {tally}");
    let unavailable = tally.count("gRPC Unavailable");
    assert_eq!(unavailable + tally.count(V1), n, "only {V1} and UNAVAILABLE (from the data plane) may answer: {tally}");
    assert!((420..=580).contains(&unavailable), "half of {n} calls should be UNAVAILABLE (500 +- 80): {tally}");

    for _ in 0..5 {
        let outcome = mesh.rpc("echo-service", "EchoThree").expect_code(Code::Unavailable);
        assert!(outcome.elapsed < AT_ONCE, "a rule without backends fails at once: {outcome}");
    }
    mesh.rpc("echo-service", "EchoStream").expect_code(Code::Unimplemented);
}

/// A GRPCRoute and an HTTPRoute on the same Service port: the GRPCRoute takes the port and the
/// HTTPRoute is not merged in; a port no route attaches to passes calls to the Service itself;
/// an HTTPRoute alone routes gRPC calls by path.
fn grpc_route_beats_http_route_on_the_same_port(plane: DataPlane) {
    let mesh = mesh("proxyless_grpc_over_http", plane)
        .service("echo-v1")
        .service_with("echo-service", &[Port::Http(80), Port::Grpc(8080)])
        .service_with("explicit", &[Port::Grpc(8080), Port::Grpc(9090)])
        .grpc_service("http-routed")
        .routes(
            r#"
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

    mesh.rpc("echo-service:8080", "Echo").expect_backend(V1);
    mesh.rpc("echo-service:8080", "EchoTwo").expect_code(Code::Unimplemented);
    mesh.rpc("explicit:8080", "Echo").expect_backend(V1);
    mesh.rpc("explicit:8080", "EchoThree").expect_code(Code::Unimplemented);
    mesh.rpc("explicit:9090", "EchoThree").expect_backend("explicit");

    mesh.rpc("http-routed", "EchoTwo").expect_backend(V2);
    mesh.rpc("http-routed", "Echo").expect_backend(V3);
    // PathPrefix is segment-wise.
    mesh.rpc("http-routed", "/echo_basic.grpcecho.GrpcEchoX/Echo").expect_code(Code::Unimplemented);
    mesh.rpc("http-routed", "/other.Service/Echo").expect_code(Code::Unimplemented);
}

/// Consumer routes (GEP-1294) by the client's namespace, as consumer_routes.rs has them: the
/// producer GRPCRoute (in `store`, the Service's namespace) sends every call to echo-v1; the
/// consumer GRPCRoute of `shop` takes `Echo` to echo-v2 and replaces the producer route for
/// clients in `shop`; that of `elsewhere` takes `EchoTwo` for clients in `elsewhere` only. A
/// client's namespace is its sidecar's (`meshroute sync --namespace`) through Envoy, its
/// bootstrap's `NAMESPACE` for a proxyless client.
fn consumer_routes_by_client_namespace(plane: DataPlane) {
    let client = |namespace: &str| {
        Mesh::builder(&format!("proxyless_consumer_{namespace}_{plane}"))
            .data_plane(plane)
            .client_namespace(namespace)
            .service_in("store", "echo", &[Port::Grpc(8080)])
            .service_in("store", "echo-v1", &[Port::Grpc(8080)])
            .service_in("shop", "echo-v2", &[Port::Grpc(8080)])
            .service_in("elsewhere", "echo-v3", &[Port::Grpc(8080)])
            .routes(CONSUMER_ROUTES)
            .start()
    };
    let (shop, default) = (client("shop"), client("default"));

    shop.rpc("echo:8080", "Echo").expect_backend("echo-v2");
    // Replaced, not merged: the producer route would take these.
    shop.rpc("echo:8080", "EchoThree").expect_code(Code::Unimplemented);
    // `elsewhere`'s route is not for clients in `shop`.
    shop.rpc("echo:8080", "EchoTwo").expect_code(Code::Unimplemented);
    for method in ["Echo", "EchoTwo", "EchoThree"] {
        default.rpc("echo:8080", method).expect_backend("echo-v1");
    }
}

const CONSUMER_ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: producer-grpc
  namespace: store
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 8080}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: consumer-grpc
  namespace: shop
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, namespace: store, port: 8080}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: Echo}
    backendRefs:
    - {name: echo-v2, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: third-grpc
  namespace: elsewhere
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, namespace: store, port: 8080}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: EchoTwo}
    backendRefs:
    - {name: echo-v3, port: 8080}
"#;

/// The route of the live-update case: `Echo` to `backend`, and `extra` rules after it.
fn live_route(backend: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: live
  namespace: default
spec:
  parentRefs:
  - {{group: "", kind: Service, name: echo-service}}
  rules:
  - matches:
    - method: {{service: echo_basic.grpcecho.GrpcEcho, method: Echo}}
    backendRefs:
    - {{name: {backend}, port: 8080}}
{extra}"#
    )
}

/// How soon a route change must reach a connected client.
const VISIBLE_WITHIN: Duration = Duration::from_secs(1);

/// How long each phase of the live-update case lasts: longer than [`VISIBLE_WITHIN`], so that a
/// change that should show has shown, and one that should not had its chance to.
const PHASE: Duration = Duration::from_millis(1500);

/// Calls `outcomes` made from `from` (a time) on, until `until`: checks that every one started
/// before `at` went to `old`, every one started [`VISIBLE_WITHIN`] or more after `at` went to `new`,
/// and in between `old` gave way to `new` once, never back. Returns how long after `at` the
/// first call went to `new`.
#[track_caller]
fn switched(outcomes: &[Outcome], window: (SystemTime, SystemTime), at: SystemTime, old: &str, new: &str) -> Duration {
    let mut first_new = None;
    for outcome in outcomes.iter().filter(|outcome| window.0 <= outcome.started && outcome.started < window.1) {
        let since = outcome.started.duration_since(at).ok();
        let backend = outcome.backend().unwrap_or("none");
        let allowed: &[&str] = match since {
            None => &[old],
            Some(since) if since >= VISIBLE_WITHIN => &[new],
            Some(_) if first_new.is_some() => &[new],
            Some(_) => &[old, new],
        };
        assert!(
            allowed.contains(&backend),
            "a call {} the change from {old} to {new} went to {backend}, expected {}: {outcome}",
            match since {
                Some(since) => format!("{} ms after", since.as_millis()),
                None => "before".to_owned(),
            },
            allowed.join(" or ")
        );
        if backend == new && first_new.is_none() {
            first_new = since;
        }
    }
    first_new.unwrap_or_else(|| panic!("no call went to {new} after the change from {old}"))
}

/// A route changed under a steady stream of calls on one connection (Envoy's, through `meshroute
/// sync` watching the manifests) or one channel (a proxyless client's, through `meshroute
/// serve`): no call fails, and the new routing shows within a second and never flips back. An
/// invalid change is never served: the last good routing stays. A valid change after it shows
/// again, and a client that connects afterwards gets the current routing at once.
fn live_updates_under_steady_calls(plane: DataPlane) {
    let mesh = mesh("proxyless_live_updates", plane).grpc_service("echo-service").routes(&live_route(V1, "")).start();
    let _sync = (plane == DataPlane::Envoy).then(|| SyncProcess::start(&mesh, &tools::filter_wasm()));
    let route_file = mesh.manifests_dir().join("routes-0.yaml");
    assert!(route_file.is_file(), "the mesh writes its first routes to {}", route_file.display());
    mesh.rpc("echo-service", "Echo").expect_backend(V1);

    let begun = SystemTime::now();
    let steady = mesh.rpc("echo-service", "Echo").steady(Duration::from_millis(10));
    thread::sleep(Duration::from_millis(500));

    let to_v2 = SystemTime::now();
    replace_file(&route_file, live_route(V2, "").as_bytes());
    thread::sleep(PHASE);

    // Invalid: a regular expression that does not compile, beside a rule that would send Echo to
    // V3. Served in part or whole, Echo would leave V2.
    let invalid = live_route(
        V3,
        "  - matches:\n    - method: {type: RegularExpression, method: \"Echo((\"}\n    backendRefs:\n    - {name: grpc-infra-backend-v1, port: 8080}\n",
    );
    let invalid_at = SystemTime::now();
    replace_file(&route_file, invalid.as_bytes());
    thread::sleep(PHASE);

    let to_v3 = SystemTime::now();
    replace_file(&route_file, live_route(V3, "").as_bytes());
    thread::sleep(PHASE);
    let outcomes = steady.stop();
    let ended = SystemTime::now();

    let failed: Vec<String> = outcomes.iter().filter(|outcome| outcome.code != Code::Ok).map(Outcome::to_string).collect();
    assert!(failed.is_empty(), "{plane}: {} of {} calls failed:\n{}", failed.len(), outcomes.len(), failed.join("\n"));
    assert!(outcomes.len() >= 200, "{plane}: only {} calls in {:?}", outcomes.len(), ended.duration_since(begun));
    let first = switched(&outcomes, (begun, invalid_at), to_v2, V1, V2);
    for outcome in outcomes.iter().filter(|outcome| invalid_at <= outcome.started && outcome.started < to_v3) {
        assert_eq!(outcome.backend(), Some(V2), "{plane}: the invalid change was served: {outcome}");
    }
    let second = switched(&outcomes, (to_v3, ended), to_v3, V2, V3);
    println!(
        "{plane}: {} calls, none failed; a change showed after {} ms, then {} ms; the invalid one never",
        outcomes.len(),
        first.as_millis(),
        second.as_millis()
    );

    // A client that connects now gets the current routing from its first call.
    match plane {
        DataPlane::Envoy => mesh.rpc("echo-service", "Echo").expect_backend(V3),
        DataPlane::Proxyless => mesh.proxyless_client(&mesh.xds_target("echo-service"), "default").rpc("Echo").expect_backend(V3),
    };
}

/// `meshroute grpc-bootstrap` names the xDS server, insecure credentials, xDS v3, and the
/// client's namespace as its node metadata `NAMESPACE`, with a node id.
#[test]
fn grpc_bootstrap_names_the_server_and_the_namespace() {
    let address = "127.0.0.1:15999".parse().unwrap_or_else(|error| panic!("{error}"));
    let printed = grpc_bootstrap(address, "shop");
    let bootstrap: serde_json::Value = serde_json::from_str(&printed).unwrap_or_else(|error| panic!("{error}: {printed}"));
    let server = &bootstrap["xds_servers"][0];
    assert_eq!(server["server_uri"], "127.0.0.1:15999", "{printed}");
    assert_eq!(server["channel_creds"][0]["type"], "insecure", "{printed}");
    let features = server["server_features"].as_array().cloned().unwrap_or_default();
    assert!(features.iter().any(|feature| feature == "xds_v3"), "{printed}");
    assert_eq!(bootstrap["node"]["metadata"]["NAMESPACE"], "shop", "{printed}");
    assert!(bootstrap["node"]["id"].as_str().is_some_and(|id| !id.is_empty()), "a node id: {printed}");
}

/// Every name a client may dial reaches the same Service: `NAME.NS.svc.cluster.local:PORT`,
/// `NAME.NS.svc:PORT`, `NAME.NS:PORT`, and `NAME:PORT` in the client's own namespace; without a
/// port, port 80. A short name means the Service of the client's namespace: the same `NAME:PORT`
/// reaches another Service from a client in another namespace, which reaches the first by
/// `NAME.NS:PORT`. Each client's first call is routed (a name that is not served would wait out
/// gRPC's 15 s does-not-exist timer, past the call's deadline).
#[test]
fn every_name_form_reaches_its_service() {
    let mesh = Mesh::builder("proxyless_name_forms")
        .proxyless()
        .grpc_service(V1)
        .grpc_service(V2)
        .grpc_service("echo-service")
        .service_with("web", &[Port::Grpc(80)])
        .service_in("other", "echo-service", &[Port::Grpc(8080)])
        .service_in("other", "grpc-other-backend", &[Port::Grpc(8080)])
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: echo
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-service}
  rules:
  - backendRefs:
    - {name: grpc-infra-backend-v1, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: web
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: web}
  rules:
  - backendRefs:
    - {name: grpc-infra-backend-v2, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: echo
  namespace: other
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-service}
  rules:
  - backendRefs:
    - {name: grpc-other-backend, port: 8080}
"#,
        )
        .start();

    let cases = [
        ("default", "xds:///echo-service.default.svc.cluster.local:8080", V1),
        ("default", "xds:///echo-service.default.svc:8080", V1),
        ("default", "xds:///echo-service.default:8080", V1),
        ("default", "xds:///echo-service:8080", V1),
        ("default", "xds:///echo-service.other:8080", "grpc-other-backend"),
        ("other", "xds:///echo-service:8080", "grpc-other-backend"),
        ("other", "xds:///echo-service.other.svc.cluster.local:8080", "grpc-other-backend"),
        ("other", "xds:///echo-service.default:8080", V1),
        ("default", "xds:///web.default.svc.cluster.local", V2),
        ("default", "xds:///web.default", V2),
        ("default", "xds:///web", V2),
        ("other", "xds:///web.default:80", V2),
    ];
    for (namespace, target, backend) in cases {
        let client = mesh.proxyless_client(target, namespace);
        client.rpc("Echo").expect_backend(backend);
        client.rpc("EchoTwo").metadata("x-from", namespace).expect_backend(backend);
    }
}

/// `meshroute serve` stopped and started again while a client keeps calling: the client keeps
/// routing by the configuration it has while the server is away (no call fails), reconnects on
/// its own, and then routes by what the server serves now, a change made while it was down.
#[test]
fn clients_ride_out_a_serve_restart() {
    let mesh = Mesh::builder("proxyless_serve_restart")
        .proxyless()
        .grpc_service(V1)
        .grpc_service(V2)
        .grpc_service("echo-service")
        .routes(&live_route(V1, ""))
        .start();
    // A server of the test's own, to stop and start; the mesh's keeps running beside it.
    let mut xds = mesh.serve_xds();
    let client = ProxylessClient::start(&xds.bootstrap("default"), &mesh.xds_target("echo-service"));
    client.rpc("Echo").expect_backend(V1);

    let steady = client.rpc("Echo").steady(Duration::from_millis(10));
    thread::sleep(Duration::from_millis(300));
    xds.stop();
    let stopped = SystemTime::now();
    thread::sleep(Duration::from_secs(1));
    replace_file(&mesh.manifests_dir().join("routes-0.yaml"), live_route(V2, "").as_bytes());
    thread::sleep(Duration::from_millis(500));
    let restarted = SystemTime::now();
    xds.start_again();
    // gRPC retries its xDS stream with backoff (1 s, then 1.6 times longer each time, jittered):
    // a few seconds at most here.
    wait_until(
        "the client to route by the restarted server",
        Duration::from_secs(30),
        || (client.rpc("Echo").send().backend() == Some(V2)).then_some(()),
        || format!("{}\n--- serve ---\n{}", client.log(), xds.log_tail(40)),
    );
    let outcomes = steady.stop();

    let failed: Vec<String> = outcomes.iter().filter(|outcome| outcome.code != Code::Ok).map(Outcome::to_string).collect();
    assert!(failed.is_empty(), "{} of {} calls failed:\n{}", failed.len(), outcomes.len(), failed.join("\n"));
    let while_away: Vec<&Outcome> =
        outcomes.iter().filter(|outcome| stopped <= outcome.started && outcome.started < restarted).collect();
    assert!(while_away.len() >= 50, "calls while the server was away: {}", while_away.len());
    for outcome in while_away {
        assert_eq!(outcome.backend(), Some(V1), "while the server was away, the last configuration: {outcome}");
    }
    let back = outcomes.iter().find(|outcome| outcome.backend() == Some(V2)).map(|outcome| outcome.started);
    if let Some(Ok(after)) = back.map(|back| back.duration_since(restarted)) {
        println!("routing by the restarted server {} ms after it started again", after.as_millis());
    }
}
