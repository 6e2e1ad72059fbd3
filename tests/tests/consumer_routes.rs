//! Consumer routes (GEP-1294, conformance test MeshConsumerRoute), through Envoy. A route in the
//! namespace of its parent Service is a producer route, for clients in every namespace; a route
//! in another namespace is a consumer route, for clients in that namespace only, and where a
//! client's namespace has consumer routes on a Service port they replace the producer routes
//! for it. Each test starts two Envoys on the very same manifests, each the sidecar of a client
//! in one namespace (`meshroute sync --namespace`): one in `shop`, which has consumer routes for
//! Service `store/echo`, and one in `default`, which has none. `elsewhere` has consumer routes
//! for the same Service too, which neither client may see.
//!
//! Every backend answers with its own name: `echo-v1` (in `store`) for the producer routes,
//! `echo-v2` (in `shop`) for the consumer routes, `echo-v3` (in `elsewhere`) for the third
//! namespace's. `meshroute explain --namespace` is asked each request too and must agree.

use meshroute_e2e::mesh::{Mesh, Port};
use tonic::Code;

const PORTS: &[Port] = &[Port::Http(80), Port::Grpc(8080)];

/// Producer routes (in `store`) send everything to echo-v1. The consumer routes of `shop`
/// take only `/shop` and `GrpcEcho/Echo`, to echo-v2; those of `elsewhere` take `/third` and
/// `GrpcEcho/EchoTwo`, to echo-v3.
const ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: producer
  namespace: store
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: consumer
  namespace: shop
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, namespace: store, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /shop}
    backendRefs:
    - {name: echo-v2, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: third
  namespace: elsewhere
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, namespace: store, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /third}
    backendRefs:
    - {name: echo-v3, port: 80}
---
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

/// Two sidecars on [`ROUTES`]: the client in `shop` and the client in `default`.
fn clients(test: &str) -> (Mesh, Mesh) {
    clients_with(test, ROUTES)
}

/// Two sidecars on the same manifests: the client in `shop` and the client in `default`.
fn clients_with(test: &str, routes: &str) -> (Mesh, Mesh) {
    let mesh = |client: &str| {
        Mesh::builder(&format!("{test}_{client}"))
            .client_namespace(client)
            .service_in("store", "echo", PORTS)
            .service_in("store", "echo-v1", PORTS)
            .service_in("shop", "echo-v2", PORTS)
            .service_in("elsewhere", "echo-v3", PORTS)
            .routes(routes)
            .start()
    };
    (mesh("shop"), mesh("default"))
}

/// `explain` names this route and backend for the request.
#[track_caller]
fn explained(explanation: meshroute_e2e::mesh::Explanation, route: &str, backend: &str) {
    assert_eq!(explanation.route.as_deref(), Some(route), "{explanation:?}");
    let backends: Vec<&str> = explanation.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(backends, [backend], "{explanation:?}");
}

#[test]
fn a_consumer_http_route_applies_to_clients_in_its_namespace_only() {
    let (shop, default) = clients("consumer_http_route_applies");
    shop.get("echo:80", "/shop").expect_backend("echo-v2");
    shop.get("echo:80", "/shop/cart?item=1").expect_backend("echo-v2");
    explained(shop.get("echo:80", "/shop/cart").explain(), "shop/consumer", "echo-v2");
    // The same request from a client in another namespace takes the producer route.
    default.get("echo:80", "/shop").expect_backend("echo-v1");
    default.get("echo:80", "/shop/cart?item=1").expect_backend("echo-v1");
    explained(default.get("echo:80", "/shop/cart").explain(), "store/producer", "echo-v1");
}

#[test]
fn a_consumer_http_route_replaces_the_producer_routes_rather_than_merging() {
    let (shop, default) = clients("consumer_http_route_replaces");
    // The producer route would take `/other`; for a client in `shop` it is gone: 404 from the
    // proxy, no backend.
    shop.get("echo:80", "/other").expect_status(404);
    shop.get("echo:80", "/").expect_status(404);
    let explanation = shop.get("echo:80", "/other").explain();
    assert_eq!((explanation.status, explanation.route.as_deref()), (404, None), "{explanation:?}");
    // Everyone else keeps it.
    default.get("echo:80", "/other").expect_backend("echo-v1");
    default.get("echo:80", "/").expect_backend("echo-v1");
    explained(default.get("echo:80", "/other").explain(), "store/producer", "echo-v1");
}

#[test]
fn a_consumer_http_route_from_a_third_namespace_changes_nothing() {
    let (shop, default) = clients("consumer_http_route_third");
    // `elsewhere`'s route takes `/third`, for clients in `elsewhere` only.
    shop.get("echo:80", "/third").expect_status(404);
    let explanation = shop.get("echo:80", "/third").explain();
    assert_eq!((explanation.status, explanation.route.as_deref()), (404, None), "{explanation:?}");
    default.get("echo:80", "/third").expect_backend("echo-v1");
    explained(default.get("echo:80", "/third").explain(), "store/producer", "echo-v1");
}

#[test]
fn a_consumer_grpc_route_applies_to_clients_in_its_namespace_only() {
    let (shop, default) = clients("consumer_grpc_route_applies");
    shop.grpc("echo:8080", "Echo").expect_backend("echo-v2");
    explained(shop.grpc("echo:8080", "Echo").explain(), "shop/consumer-grpc", "echo-v2");
    default.grpc("echo:8080", "Echo").expect_backend("echo-v1");
    explained(default.grpc("echo:8080", "Echo").explain(), "store/producer-grpc", "echo-v1");
}

#[test]
fn a_consumer_grpc_route_replaces_the_producer_routes_rather_than_merging() {
    let (shop, default) = clients("consumer_grpc_route_replaces");
    // The producer GRPCRoute would take every call; for a client in `shop` only its consumer
    // GRPCRoute is left, which takes `Echo` only: UNIMPLEMENTED from the proxy.
    shop.grpc("echo:8080", "EchoThree").expect_code(Code::Unimplemented);
    let explanation = shop.grpc("echo:8080", "EchoThree").explain();
    assert_eq!((explanation.grpc_status, explanation.route.as_deref()), (Some(12), None), "{explanation:?}");
    default.grpc("echo:8080", "EchoThree").expect_backend("echo-v1");
    explained(default.grpc("echo:8080", "EchoThree").explain(), "store/producer-grpc", "echo-v1");
}

#[test]
fn a_consumer_grpc_route_from_a_third_namespace_changes_nothing() {
    let (shop, default) = clients("consumer_grpc_route_third");
    // `elsewhere`'s GRPCRoute takes `EchoTwo`, for clients in `elsewhere` only.
    shop.grpc("echo:8080", "EchoTwo").expect_code(Code::Unimplemented);
    let explanation = shop.grpc("echo:8080", "EchoTwo").explain();
    assert_eq!((explanation.grpc_status, explanation.route.as_deref()), (Some(12), None), "{explanation:?}");
    default.grpc("echo:8080", "EchoTwo").expect_backend("echo-v1");
    explained(default.grpc("echo:8080", "EchoTwo").explain(), "store/producer-grpc", "echo-v1");
}

/// GRPCRoute > HTTPRoute holds within the routes a client sees, not across them: a consumer
/// HTTPRoute replaces a producer GRPCRoute for its clients, who are then routed by the
/// HTTPRoute (a gRPC call is an HTTP/2 POST to `/SERVICE/METHOD`), and by it alone.
#[test]
fn a_consumer_http_route_replaces_a_producer_grpc_route_for_its_clients() {
    let (shop, default) = clients_with(
        "consumer_http_route_over_producer_grpc",
        r#"
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
kind: HTTPRoute
metadata:
  name: consumer
  namespace: shop
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, namespace: store, port: 8080}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /echo_basic.grpcecho.GrpcEcho/Echo}
    backendRefs:
    - {name: echo-v2, port: 8080}
"#,
    );
    shop.grpc("echo:8080", "Echo").expect_backend("echo-v2");
    explained(shop.grpc("echo:8080", "Echo").explain(), "shop/consumer", "echo-v2");
    // No match on the HTTPRoute's port: the proxy's 404, which reaches a gRPC client as
    // UNIMPLEMENTED.
    shop.grpc("echo:8080", "EchoTwo").expect_code(Code::Unimplemented);
    let explanation = shop.grpc("echo:8080", "EchoTwo").explain();
    assert_eq!((explanation.grpc_status, explanation.route.as_deref()), (Some(12), None), "{explanation:?}");
    default.grpc("echo:8080", "Echo").expect_backend("echo-v1");
    default.grpc("echo:8080", "EchoTwo").expect_backend("echo-v1");
    explained(default.grpc("echo:8080", "EchoTwo").explain(), "store/producer-grpc", "echo-v1");
}
