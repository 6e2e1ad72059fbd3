//! The pipeline end to end on example manifests: statuses, the compiled table, warnings, and
//! `explain` running the filter's code on the result.

use std::path::Path;

use meshroute_filter::table::RouteTable;

use super::{build, build_files, Build};
use crate::explain::{explain, Candidate, Query};
use crate::load::SourceFile;
use crate::resolve::ParentStatus;

fn fixture(name: &str) -> Build {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    build(&dir).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn from_text(text: &str) -> Build {
    let files = [SourceFile { path: "m.yaml".into(), text: text.to_owned() }];
    build_files(&files).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn ask(b: &Build, to: &str, path: &str, headers: &[&str]) -> crate::explain::Explanation {
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    explain(b, &Query { to, namespace: "default", method: "GET", path, headers: &headers, grpc: None }).unwrap()
}

fn backend(name: &str, weight: u32) -> Candidate {
    Candidate { name: name.into(), namespace: "default".into(), port: Some(80), weight, unresolved: None }
}

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  clusterIP: 10.0.0.1
  ports:
  - {name: http, port: 80}
  - {name: admin, port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  clusterIP: 10.0.0.2
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  clusterIP: 10.0.0.3
  ports: [{port: 80}]
";

#[test]
fn one_rule_echo_route_explains_as_nine_to_one() {
    let b = fixture("echo");
    assert!(b.warnings.is_empty(), "{:#?}", b.warnings);
    RouteTable::compile(&b.table).unwrap();
    for to in ["echo-service", "echo-service.default", "echo-service.default.svc", "echo-service.default.svc.cluster.local:80", "127.0.10.1"] {
        let e = ask(&b, to, "/anything?x=1", &[]);
        assert_eq!(e.status, 200, "{to}");
        assert_eq!(e.route.as_deref(), Some("default/echo-route"));
        assert_eq!(e.rule, Some(0));
        assert_eq!(e.backends, vec![backend("echo-v1", 9), backend("echo-v2", 1)], "{to}");
    }
    let json = serde_json::to_string(&ask(&b, "echo-service", "/", &[])).unwrap();
    assert_eq!(
        json,
        r#"{"status":200,"route":"default/echo-route","rule":0,"backends":[{"name":"echo-v1","namespace":"default","port":80,"weight":9},{"name":"echo-v2","namespace":"default","port":80,"weight":1}]}"#
    );
}

#[test]
fn product_page_two_rule_echo_route_warns_that_the_split_needs_one_rule() {
    let b = fixture("echo-two-rules");
    let warnings: Vec<String> = b.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["echo-route.yaml:15: warning: HTTPRoute default/echo-route: spec.rules[1]: never matches: spec.rules[0] of the same route \
          takes every request it would match first (when matches are equally specific, the earlier rule wins), so echo-v2 gets no \
          traffic; to split traffic by weight, put all the backendRefs in one rule"]
    );
    // And indeed: the filter's code sends everything to echo-v1.
    assert_eq!(ask(&b, "echo-service", "/", &[]).backends, vec![backend("echo-v1", 9)]);
}

#[test]
fn product_page_literal_text_gets_the_version_hint_and_the_shadow_warning() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/product-page");
    let problems: Vec<String> = build(&dir).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(problems[0].starts_with("echo-route.yaml:1: HTTPRoute default/echo-route: apiVersion: "), "{}", problems[0]);
    assert!(problems[0].ends_with("did you mean gateway.networking.k8s.io/v1?"), "{}", problems[0]);
    assert!(problems[1].starts_with("echo-route.yaml:15: warning: HTTPRoute default/echo-route: spec.rules[1]: never matches"));
    // The GRPCRoute, copied with its typos: one error for each, with its hint.
    assert!(problems[2].starts_with("grpc-route.yaml:1: GRPCRoute default/echo-route: apiVersion: "), "{}", problems[2]);
    assert!(problems[2].ends_with("did you mean gateway.networking.k8s.io/v1?"), "{}", problems[2]);
    assert!(problems[3].starts_with("grpc-route.yaml:11: invalid YAML: this list item is indented 3 spaces"), "{}", problems[3]);
    for (problem, line) in problems[4..].iter().zip([13, 20]) {
        assert!(problem.starts_with(&format!("grpc-route.yaml:{line}: invalid YAML: missing space after \"service:\"")), "{problem}");
    }
}

#[test]
fn a_rule_shadowed_by_an_older_route_names_it() {
    let b = from_text(&format!(
        "{SERVICES}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: old, creationTimestamp: \"2024-01-01T00:00:00Z\"}}
spec:
  parentRefs: [{{kind: Service, group: \"\", name: front}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}]
    backendRefs: [{{name: a, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: new, creationTimestamp: \"2024-06-01T00:00:00Z\"}}
spec:
  parentRefs: [{{kind: Service, group: \"\", name: front}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v2/}}}}]
    backendRefs: [{{name: b, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /v2/x}}}}]
    backendRefs: [{{name: b, port: 80}}]
"
    ));
    let warnings: Vec<String> = b.warnings.iter().map(ToString::to_string).collect();
    // Once, though the routes attach to both ports of front; /v2/x is more specific and
    // still matches.
    assert_eq!(
        warnings,
        ["m.yaml:39: warning: HTTPRoute default/new: spec.rules[0]: never matches: spec.rules[0] of HTTPRoute default/old \
          (m.yaml:30) takes every request it would match first, so b gets no traffic"]
    );
}

#[test]
fn a_rule_shadowed_on_one_port_but_not_another_is_not_reported() {
    let routes = |old_port: &str| {
        format!(
            "{SERVICES}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: old, creationTimestamp: \"2024-01-01T00:00:00Z\"}}
spec:
  parentRefs: [{{kind: Service, group: \"\", name: front{old_port}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}]
    backendRefs: [{{name: a, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: new, creationTimestamp: \"2024-06-01T00:00:00Z\"}}
spec:
  parentRefs: [{{kind: Service, group: \"\", name: front}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}]
    backendRefs: [{{name: b, port: 80}}]
"
        )
    };
    // `old` takes /v2 on port 80 only; on port 8080 `new` still gets it.
    let b = from_text(&routes(", port: 80"));
    assert!(b.warnings.is_empty(), "{:#?}", b.warnings);
    assert_eq!(ask(&b, "front:8080", "/v2", &[]).backends, vec![backend("b", 1)]);
    // On every port, `new` never matches.
    let b = from_text(&routes(""));
    let warnings: Vec<String> = b.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("HTTPRoute default/new: spec.rules[0]: never matches"), "{}", warnings[0]);
}

#[test]
fn port_scoped_parent_ref_attaches_to_that_port_only() {
    let b = from_text(&format!(
        "{SERVICES}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{kind: Service, group: \"\", name: front, port: 8080}}]
  rules:
  - backendRefs: [{{name: a, port: 80}}]
"
    ));
    assert_eq!(b.table.frontends.len(), 1);
    assert_eq!(b.table.frontends[0].port, 8080);
    assert_eq!(ask(&b, "front:8080", "/", &[]).backends, vec![backend("a", 1)]);
    // Port 80 has no routes: the request passes through to the Service itself.
    let e = ask(&b, "10.0.0.1:80", "/", &[]);
    assert_eq!((e.status, e.route), (200, None));
    assert_eq!(e.backends, vec![backend("front", 1)]);
}

#[test]
fn parent_port_that_does_not_exist_is_not_accepted() {
    let b = from_text(&format!(
        "{SERVICES}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs:
  - {{kind: Service, group: \"\", name: front, port: 9999}}
  - {{name: some-gateway}}
  rules:
  - backendRefs: [{{name: a, port: 80}}]
"
    ));
    assert!(b.table.frontends.is_empty());
    let ParentStatus::Mesh { accepted, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert_eq!((accepted.status, accepted.reason), (false, "NoMatchingParent"));
    assert_eq!(accepted.message, "Service default/front has no TCP port 9999");
    assert!(matches!(&b.statuses[0].parents[1], ParentStatus::NotMesh { parent } if parent.kind == "Gateway"));
    assert_eq!(
        b.warnings[0].to_string(),
        "m.yaml:29: warning: HTTPRoute default/r: spec.parentRefs[0]: not attached: Accepted False (NoMatchingParent): Service default/front has no TCP port 9999"
    );
}

const CROSS_NAMESPACE: &str = "\
apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  clusterIP: 10.0.0.1
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: backends}
spec:
  clusterIP: 10.0.0.9
  ports: [{port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{kind: Service, group: \"\", name: front}]
  rules:
  - backendRefs:
    - {name: other, namespace: backends, port: 80, weight: 3}
    - {name: missing, port: 80}
    - {name: bucket, group: storage.example.com, kind: Bucket}
";

#[test]
fn cross_namespace_backend_without_grant_is_ref_not_permitted() {
    let b = from_text(CROSS_NAMESPACE);
    let reasons: Vec<&str> = b.statuses[0].unresolved.iter().map(|u| u.reason).collect();
    assert_eq!(reasons, ["RefNotPermitted", "BackendNotFound", "InvalidKind"]);
    let ParentStatus::Mesh { accepted, resolved_refs, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert!(accepted.status);
    assert_eq!((resolved_refs.status, resolved_refs.reason), (false, "RefNotPermitted"));
    // Published anyway: every share answers 500.
    let e = ask(&b, "front", "/", &[]);
    assert_eq!(e.status, 500);
    assert_eq!(e.backends.len(), 3);
    assert_eq!(e.backends[0].unresolved.as_deref(), Some("RefNotPermitted"));
    assert_eq!(
        b.warnings[0].to_string(),
        "m.yaml:22: warning: HTTPRoute default/r: spec.rules[0].backendRefs[0]: ResolvedRefs False (RefNotPermitted): \
         Service backends/other is in another namespace and no ReferenceGrant in backends allows HTTPRoutes from default \
         to refer to it; its share of requests (weight 3) will get 500"
    );
}

#[test]
fn reference_grant_permits_the_cross_namespace_backend() {
    let b = from_text(&format!(
        "{CROSS_NAMESPACE}---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: allow, namespace: backends}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}}]
  to: [{{group: \"\", kind: Service}}]
"
    ));
    let reasons: Vec<&str> = b.statuses[0].unresolved.iter().map(|u| u.reason).collect();
    assert_eq!(reasons, ["BackendNotFound", "InvalidKind"]);
    let rule = &b.table.routes[0].rules[0];
    assert_eq!(rule.backends[0].cluster.as_deref(), Some("outbound|80||other.backends.svc.cluster.local"));
    assert_eq!(ask(&b, "front", "/", &[]).status, 200);
}

#[test]
fn explain_reports_404_and_matches_headers_case_insensitively() {
    let b = from_text(&format!(
        "{SERVICES}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{kind: Service, group: \"\", name: front, port: 80}}]
  rules:
  - matches: [{{path: {{type: Exact, value: /v2}}, headers: [{{name: X-Version, value: two}}]}}]
    backendRefs: [{{name: b, port: 80}}, {{name: a, port: 80, weight: 0}}]
"
    ));
    assert_eq!(ask(&b, "front", "/v2", &["x-version: two"]).backends, vec![backend("b", 1)]);
    assert_eq!(ask(&b, "front", "/v2", &["X-VERSION: two"]).rule, Some(0));
    let miss = ask(&b, "front", "/v2", &[]);
    assert_eq!((miss.status, miss.route, miss.backends.len()), (404, None, 0));
}

#[test]
fn explain_refuses_unknown_hosts_and_ports() {
    let b = fixture("echo");
    let q = |to: &str| explain(&b, &Query { to, namespace: "default", method: "GET", path: "/", headers: &[], grpc: None });
    assert_eq!(q("nope").unwrap_err().0, "Service default/nope not found in the manifests");
    assert_eq!(q("10.9.9.9").unwrap_err().0, "no Service has the ClusterIP 10.9.9.9");
    assert_eq!(q("echo-service:81").unwrap_err().0, "Service default/echo-service has no TCP port 81 (its ports: 80)");
    assert_eq!(q("echo-service.default.svc.cluster").unwrap_err().0.split(" is not").next(), Some("\"echo-service.default.svc.cluster\""));
}

#[test]
fn compiled_table_is_deterministic_and_accepted_by_the_filter() {
    let a = fixture("echo");
    let b = fixture("echo");
    assert_eq!(serde_json::to_string(&a.table).unwrap(), serde_json::to_string(&b.table).unwrap());
    let json = serde_json::to_vec(&a.table).unwrap();
    RouteTable::from_json(&json).unwrap();
}

#[test]
fn invalid_manifests_give_every_error_sorted() {
    let files = [
        SourceFile { path: "b.yaml".into(), text: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 0}]}\n".into() },
        SourceFile { path: "a.yaml".into(), text: "kind: Gateway\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: g}\n".into() },
    ];
    let errors: Vec<String> = build_files(&files).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("a.yaml:1: Gateway default/g: kind: kind \"Gateway\" is not supported"));
    assert_eq!(errors[1], "b.yaml:4: Service default/s: spec.ports[0].port: must be between 1 and 65535");
}
