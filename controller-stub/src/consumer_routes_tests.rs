//! Consumer routes (GEP-1294, conformance test MeshConsumerRoute): which routes a client in one
//! namespace sees on a Service port ([`routes_seen_by`]), and the same decision through the
//! whole pipeline: each client's table, `explain`, the routes' status and `check`'s notes.

use meshroute_filter::document::RouteKind;

use super::{build_files, Build, LastGood};
use crate::check::status_text;
use crate::diag::Severity;
use crate::explain::{explain, Explanation, Query};
use crate::load::SourceFile;
use crate::model::{Meta, Source};
use crate::resolve::{routes_seen_by, ParentStatus, RouteStatus};

fn route(kind: RouteKind, namespace: &str, name: &str) -> RouteStatus {
    RouteStatus {
        kind,
        meta: Meta {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            creation_timestamp: None,
            generation: 0,
            source: Source { file: "m.yaml".into(), line: 1 },
            last_good: None,
        },
        parents: Vec::new(),
        unresolved: Vec::new(),
        hostnames: Vec::new(),
        dropped: Vec::new(),
    }
}

fn http(namespace: &str, name: &str) -> RouteStatus {
    route(RouteKind::Http, namespace, name)
}

fn grpc(namespace: &str, name: &str) -> RouteStatus {
    route(RouteKind::Grpc, namespace, name)
}

/// `namespace/name` of each route a client in `client` sees on a port of a Service in `store`.
fn seen_in(client: &str, attached: &[&RouteStatus]) -> Vec<String> {
    routes_seen_by(client, "store", attached).iter().map(|s| format!("{}/{}", s.meta.namespace, s.meta.name)).collect()
}

#[test]
fn producer_routes_apply_to_clients_in_every_namespace() {
    let (a, b) = (http("store", "a"), http("store", "b"));
    for client in ["store", "shop", "default"] {
        assert_eq!(seen_in(client, &[&a, &b]), ["store/a", "store/b"], "client in {client}");
    }
}

#[test]
fn a_consumer_route_replaces_the_producer_routes_for_its_namespace_only() {
    let (producer, consumer) = (http("store", "producer"), http("shop", "consumer"));
    assert_eq!(seen_in("shop", &[&producer, &consumer]), ["shop/consumer"]);
}

#[test]
fn clients_in_other_namespaces_keep_the_producer_routes() {
    let (producer, consumer) = (http("store", "producer"), http("shop", "consumer"));
    for client in ["store", "default"] {
        assert_eq!(seen_in(client, &[&producer, &consumer]), ["store/producer"], "client in {client}");
    }
}

#[test]
fn consumer_routes_of_one_namespace_merge() {
    let (producer, first, second) = (http("store", "producer"), http("shop", "first"), http("shop", "second"));
    assert_eq!(seen_in("shop", &[&first, &producer, &second]), ["shop/first", "shop/second"]);
}

#[test]
fn consumer_routes_of_a_third_namespace_are_ignored() {
    let (producer, consumer, third) = (http("store", "producer"), http("shop", "consumer"), http("elsewhere", "third"));
    assert_eq!(seen_in("shop", &[&producer, &consumer, &third]), ["shop/consumer"]);
    assert_eq!(seen_in("default", &[&producer, &consumer, &third]), ["store/producer"]);
    // Without producer routes, a client with no consumer routes of its own sees none: the
    // Service port is passed through for it.
    assert!(seen_in("default", &[&consumer, &third]).is_empty());
}

#[test]
fn a_grpc_route_takes_the_port_within_the_set_that_applies_only() {
    // A producer GRPCRoute and a consumer HTTPRoute: the consumer's clients get the HTTPRoute
    // (it replaces the producer routes, GRPCRoute and all), everyone else the GRPCRoute.
    let (producer, consumer) = (grpc("store", "producer"), http("shop", "consumer"));
    assert_eq!(seen_in("shop", &[&producer, &consumer]), ["shop/consumer"]);
    assert_eq!(seen_in("default", &[&producer, &consumer]), ["store/producer"]);
    // A producer HTTPRoute and a consumer GRPCRoute: the other way round.
    let (producer, consumer) = (http("store", "producer"), grpc("shop", "consumer"));
    assert_eq!(seen_in("shop", &[&producer, &consumer]), ["shop/consumer"]);
    assert_eq!(seen_in("default", &[&producer, &consumer]), ["store/producer"]);
    // Within one set, the GRPCRoute takes the port from the HTTPRoute, never merged with it.
    let (http_consumer, grpc_consumer) = (http("shop", "h"), grpc("shop", "g"));
    assert_eq!(seen_in("shop", &[&producer, &http_consumer, &grpc_consumer]), ["shop/g"]);
    let producer_grpc = grpc("store", "g");
    assert_eq!(seen_in("default", &[&producer, &producer_grpc, &http_consumer]), ["store/g"]);
}

const MANIFESTS: &str = "\
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: store}
spec:
  clusterIP: 10.0.0.1
  ports:
  - {name: http, port: 80}
  - {name: grpc, port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: producer-backend, namespace: store}
spec:
  clusterIP: 10.0.0.2
  ports: [{name: http, port: 80}, {name: grpc, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: consumer-backend, namespace: shop}
spec:
  clusterIP: 10.0.0.3
  ports: [{name: http, port: 80}, {name: grpc, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: producer, namespace: store}
spec:
  parentRefs: [{group: \"\", kind: Service, name: svc, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: producer-backend, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer, namespace: shop}
spec:
  parentRefs: [{group: \"\", kind: Service, name: svc, namespace: store, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /shop}}]
    backendRefs: [{name: consumer-backend, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: producer-grpc, namespace: store}
spec:
  parentRefs: [{group: \"\", kind: Service, name: svc, port: 8080}]
  rules:
  - backendRefs: [{name: producer-backend, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: consumer-http-on-grpc-port, namespace: shop}
spec:
  parentRefs: [{group: \"\", kind: Service, name: svc, namespace: store, port: 8080}]
  rules:
  - backendRefs: [{name: consumer-backend, port: 8080}]
";

fn build_for(client: &str, text: &str) -> Build {
    let files = [SourceFile { path: "m.yaml".into(), text: text.to_owned() }];
    build_files(&files, Vec::new(), &LastGood::default(), client).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn ask(b: &Build, client: &str, to: &str, path: &str) -> Explanation {
    explain(b, &Query { to, namespace: client, method: "GET", path, headers: &[], grpc: None }).unwrap()
}

/// `namespace/name` of the routes in a client's table, per frontend `namespace/name:port`.
fn table_of(b: &Build) -> Vec<(String, Vec<String>)> {
    b.table
        .frontends
        .iter()
        .map(|f| {
            let routes =
                f.routes.iter().map(|&r| format!("{}/{}", b.table.routes[r].namespace, b.table.routes[r].name)).collect();
            (format!("{}/{}:{}", f.namespace, f.name, f.port), routes)
        })
        .collect()
}

#[test]
fn each_client_namespace_gets_its_own_table() {
    let consumer = build_for("shop", MANIFESTS);
    assert_eq!(
        table_of(&consumer),
        [
            ("store/svc:80".to_owned(), vec!["shop/consumer".to_owned()]),
            ("store/svc:8080".to_owned(), vec!["shop/consumer-http-on-grpc-port".to_owned()]),
        ]
    );
    for client in ["store", "default"] {
        let producer = build_for(client, MANIFESTS);
        assert_eq!(
            table_of(&producer),
            [
                ("store/svc:80".to_owned(), vec!["store/producer".to_owned()]),
                ("store/svc:8080".to_owned(), vec!["store/producer-grpc".to_owned()]),
            ],
            "client in {client}"
        );
    }
}

#[test]
fn explain_routes_as_a_client_in_its_namespace() {
    // Replacement, not merge: what the consumer route does not match gets 404 in `shop`, though
    // the producer route would take it.
    let b = build_for("shop", MANIFESTS);
    let e = ask(&b, "shop", "svc.store", "/shop/cart");
    assert_eq!((e.status, e.route.as_deref()), (200, Some("shop/consumer")));
    assert_eq!(e.backends[0].name, "consumer-backend");
    let e = ask(&b, "shop", "svc.store", "/other");
    assert_eq!((e.status, e.route), (404, None));

    let b = build_for("default", MANIFESTS);
    for path in ["/shop/cart", "/other"] {
        let e = ask(&b, "default", "svc.store", path);
        assert_eq!((e.status, e.route.as_deref()), (200, Some("store/producer")), "{path}");
        assert_eq!(e.backends[0].name, "producer-backend");
    }
}

#[test]
fn a_consumer_route_is_accepted_and_check_notes_whom_it_applies_to() {
    let b = build_for("default", MANIFESTS);
    let consumer = b.statuses.iter().find(|s| s.meta.name == "consumer").unwrap();
    let ParentStatus::Mesh { accepted, ports, .. } = &consumer.parents[0] else { panic!() };
    assert_eq!((accepted.status, accepted.reason, ports.as_slice()), (true, "Accepted", &[80][..]));
    assert_eq!(
        accepted.message,
        "attached to port 80 of Service store/svc; a consumer route: applies only to clients in namespace shop (GEP-1294)"
    );
    let notes: Vec<String> = b
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Note && d.message.starts_with("consumer route"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        notes,
        [
            "m.yaml:37: note: HTTPRoute shop/consumer: spec.parentRefs[0]: consumer route: applies only to clients in namespace shop, \
             replacing Service store/svc's producer routes for them on port 80; clients in other namespaces keep the producer routes \
             (GEP-1294)",
            "m.yaml:54: note: HTTPRoute shop/consumer-http-on-grpc-port: spec.parentRefs[0]: consumer route: applies only to clients \
             in namespace shop, replacing Service store/svc's producer routes for them on port 8080; clients in other namespaces keep \
             the producer routes (GEP-1294)",
        ]
    );
    // Every route is valid and attached; the notes fail nothing.
    assert!(b.problems().is_empty(), "{:#?}", b.problems());
    assert!(status_text(&b).contains("consumer route: applies only to clients in namespace shop"));
}

#[test]
fn a_producer_grpc_route_takes_no_port_from_a_consumer_http_route() {
    // They are in different sets: neither is Conflicted, each serves its own clients.
    let b = build_for("default", MANIFESTS);
    let consumer = b.statuses.iter().find(|s| s.meta.name == "consumer-http-on-grpc-port").unwrap();
    let ParentStatus::Mesh { accepted, ports, taken, .. } = &consumer.parents[0] else { panic!() };
    assert_eq!((accepted.status, ports.as_slice(), taken.is_empty()), (true, &[8080][..], true));
}

#[test]
fn a_consumer_grpc_route_takes_the_port_from_a_consumer_http_route_of_its_namespace() {
    let text = format!(
        "{MANIFESTS}---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: consumer-grpc, namespace: shop}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: svc, namespace: store, port: 8080}}]
  rules:
  - backendRefs: [{{name: consumer-backend, port: 8080}}]
"
    );
    let b = build_for("shop", &text);
    let http = b.statuses.iter().find(|s| s.meta.name == "consumer-http-on-grpc-port").unwrap();
    let ParentStatus::Mesh { accepted, taken, .. } = &http.parents[0] else { panic!() };
    assert_eq!((accepted.status, accepted.reason), (false, "Conflicted"));
    assert_eq!(taken, &[(8080, "GRPCRoute shop/consumer-grpc".to_owned())]);
    assert_eq!(table_of(&b)[1], ("store/svc:8080".to_owned(), vec!["shop/consumer-grpc".to_owned()]));
    // The producer HTTPRoute on port 80 and the producer GRPCRoute keep serving everyone else.
    assert_eq!(table_of(&build_for("default", &text))[1], ("store/svc:8080".to_owned(), vec!["store/producer-grpc".to_owned()]));
}

#[test]
fn rules_are_shadowed_only_by_routes_the_same_clients_see() {
    // The consumer catch-all would take every request of the producer route's rule (`shop/...`
    // sorts before `store/...`) if the two were ever merged; they never are, so no warning about
    // the producer route, whichever client's table is published. The consumer route's own third
    // rule is shadowed, for its clients, by its second.
    let text = format!(
        "{MANIFESTS}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: catch-all, namespace: shop}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: svc, namespace: store, port: 80}}]
  rules:
  - backendRefs: [{{name: consumer-backend, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /dup}}}}]
    backendRefs: [{{name: consumer-backend, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /dup}}}}]
    backendRefs: [{{name: producer-backend, namespace: store, port: 80}}]
"
    );
    for client in ["shop", "default"] {
        let b = build_for(client, &text);
        let warnings: Vec<String> = b
            .warnings_vec()
            .iter()
            .map(|w| format!("{} {}", w.subject.as_deref().unwrap_or_default(), w.field.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(warnings, ["HTTPRoute shop/catch-all spec.rules[2]"], "client in {client}");
    }
}
