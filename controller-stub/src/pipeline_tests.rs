//! The pipeline end to end on example manifests: statuses, the compiled table, warnings, and
//! `explain` running the filter's code on the result.

use std::path::Path;

use meshroute_filter::table::RouteTable;

use super::{build, build_files, Build, LastGood};
use crate::explain::{explain, Candidate, Query};
use crate::load::SourceFile;
use crate::resolve::ParentStatus;

fn fixture(name: &str) -> Build {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    build(&dir, "default").unwrap_or_else(|e| panic!("{e:#?}"))
}

fn from_text(text: &str) -> Build {
    let files = [SourceFile { path: "m.yaml".into(), text: text.to_owned() }];
    build_files(&files, Vec::new(), &LastGood::default(), "default").unwrap_or_else(|e| panic!("{e:#?}"))
}

/// The explanation without its stat tags, which [`explain_and_check_name_the_series_a_request_counts_under`]
/// checks on their own.
fn ask(b: &Build, to: &str, path: &str, headers: &[&str]) -> crate::explain::Explanation {
    without_tags(ask_with_tags(b, to, path, headers))
}

fn without_tags(mut explanation: crate::explain::Explanation) -> crate::explain::Explanation {
    explanation.stat_tags = None;
    explanation.backends.iter_mut().for_each(|backend| backend.stat_tags = None);
    explanation
}

fn ask_with_tags(b: &Build, to: &str, path: &str, headers: &[&str]) -> crate::explain::Explanation {
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    explain(b, &Query { to, namespace: "default", method: "GET", path, headers: &headers, grpc: None }).unwrap()
}

fn backend(name: &str, weight: u32) -> Candidate {
    Candidate {
        name: name.into(),
        namespace: "default".into(),
        port: Some(80),
        weight,
        unresolved: None,
        path: None,
        host: None,
        request_headers: Vec::new(),
        response_headers: Vec::new(),
        mirrors: Vec::new(),
        stat_tags: None,
    }
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
    assert!(b.warnings_vec().is_empty(), "{:#?}", b.warnings_vec());
    RouteTable::compile(&b.table).unwrap();
    for to in [
        "echo-service",
        "echo-service.default",
        "echo-service.default.svc",
        "echo-service.default.svc.cluster.local:80",
        "127.0.10.1",
    ] {
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
    let warnings: Vec<String> = b.warnings_vec().iter().map(ToString::to_string).collect();
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
    let problems: Vec<String> = build(&dir, "default").unwrap().problems().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(problems[0].starts_with("echo-route.yaml:1: HTTPRoute default/echo-route: apiVersion: "), "{}", problems[0]);
    assert!(problems[0].ends_with("did you mean gateway.networking.k8s.io/v1?"), "{}", problems[0]);
    assert!(problems[1].starts_with("echo-route.yaml:15: warning: HTTPRoute default/echo-route: spec.rules[1]: never matches"));
    // The GRPCRoute, copied with its typos: one error for each, with its hint.
    assert!(problems[2].starts_with("grpc-route.yaml:1: GRPCRoute default/echo-route: apiVersion: "), "{}", problems[2]);
    assert!(problems[2].ends_with("did you mean gateway.networking.k8s.io/v1?"), "{}", problems[2]);
    assert!(problems[3].starts_with("grpc-route.yaml:11: invalid YAML: this list item is indented 3 spaces"), "{}", problems[3]);
    for (problem, line) in problems[4..].iter().zip([13, 20]) {
        assert!(
            problem.starts_with(&format!("grpc-route.yaml:{line}: invalid YAML: missing space after \"service:\"")),
            "{problem}"
        );
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
    let warnings: Vec<String> = b.warnings_vec().iter().map(ToString::to_string).collect();
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
    assert!(b.warnings_vec().is_empty(), "{:#?}", b.warnings_vec());
    assert_eq!(ask(&b, "front:8080", "/v2", &[]).backends, vec![backend("b", 1)]);
    // On every port, `new` never matches.
    let b = from_text(&routes(""));
    let warnings: Vec<String> = b.warnings_vec().iter().map(ToString::to_string).collect();
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
        b.warnings_vec()[0].to_string(),
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

/// GEP-1294, namespace boundaries: a mesh route may send to a Service in another namespace
/// without a ReferenceGrant.
#[test]
fn cross_namespace_backends_need_no_reference_grant() {
    let b = from_text(CROSS_NAMESPACE);
    let reasons: Vec<&str> = b.statuses[0].unresolved.iter().map(|u| u.reason).collect();
    assert_eq!(reasons, ["BackendNotFound", "InvalidKind"]);
    let rule = &b.table.routes[0].rules[0];
    let target = b.table.target(&rule.backends[0]).unwrap();
    assert_eq!(target.cluster.as_deref(), Some("outbound|80||other.backends.svc.cluster.local"));
    let e = ask(&b, "front", "/", &[]);
    assert_eq!(e.status, 200);
    assert_eq!(e.backends[0].unresolved, None);
}

/// A ReferenceGrant beside the routes changes nothing, and says so.
#[test]
fn a_reference_grant_is_noted_and_changes_nothing() {
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
    assert_eq!(b.table, from_text(CROSS_NAMESPACE).table);
    assert!(
        b.diagnostics.iter().any(|d| d.to_string().contains("ReferenceGrant backends/allow: skipped")),
        "{:#?}",
        b.diagnostics
    );
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
    assert_eq!(
        q("echo-service.default.svc.cluster").unwrap_err().0.split(" is not").next(),
        Some("\"echo-service.default.svc.cluster\"")
    );
}

/// A target two rules (and two routes) send to is listed once; targets come in the order rules
/// first name them, and a backendRef to another port of a Service is another target.
#[test]
fn a_target_shared_by_rules_is_written_once() {
    let routes = "
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r1}
spec:
  parentRefs: [{kind: Service, group: \"\", name: front, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /one}}]
    backendRefs: [{name: b, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /two}}]
    backendRefs: [{name: a, port: 80, weight: 3}, {name: b, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r2}
spec:
  parentRefs: [{kind: Service, group: \"\", name: front, port: 8080}]
  rules:
  - backendRefs: [{name: a, port: 80}, {name: missing, port: 80}, {name: missing, port: 80}]
";
    let b = from_text(&format!("{SERVICES}{routes}"));
    let table = &b.table;
    let named: Vec<(&str, Option<&str>)> =
        table.targets.iter().map(|t| (t.name.as_str(), t.cluster.as_deref().or(t.unresolved.as_deref()))).collect();
    assert_eq!(
        named,
        [
            ("b", Some("outbound|80||b.default.svc.cluster.local")),
            ("a", Some("outbound|80||a.default.svc.cluster.local")),
            ("missing", Some("BackendNotFound")),
        ]
    );
    let indexes: Vec<Vec<usize>> =
        table.routes.iter().flat_map(|r| &r.rules).map(|rule| rule.backends.iter().map(|b| b.target).collect()).collect();
    assert_eq!(indexes, [vec![0], vec![1, 0], vec![1, 2, 2]]);
    let json = serde_json::to_string(table).unwrap();
    assert_eq!(json.matches(r#"{"name":"b","namespace":"default","port":80,"cluster":"#).count(), 1, "{json}");
    assert!(json.contains(r#""backends":[{"target":1,"weight":3},{"target":0,"weight":1}]"#), "{json}");
    RouteTable::from_json(json.as_bytes()).unwrap();
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
        SourceFile {
            path: "b.yaml".into(),
            text: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 0}]}\n".into(),
        },
        SourceFile {
            path: "a.yaml".into(),
            text: "kind: HTTPRoutes\napiVersion: gateway.networking.k8s.io/v1\nmetadata: {name: g}\n".into(),
        },
    ];
    let errors: Vec<String> = build_files(&files, Vec::new(), &LastGood::default(), "default")
        .unwrap()
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("a.yaml:1: HTTPRoutes default/g: kind: kind \"HTTPRoutes\" is not one meshroute reads"));
    assert_eq!(errors[1], "b.yaml:4: Service default/s: spec.ports[0].port: must be between 1 and 65535");
}

// GRPCRoute

fn mesh_example() -> Build {
    build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh"), "default").unwrap_or_else(|e| panic!("{e:#?}"))
}

fn ask_grpc(b: &Build, to: &str, call: &str, headers: &[&str]) -> crate::explain::Explanation {
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let query = Query { to, namespace: "default", method: "GET", path: "/", headers: &headers, grpc: Some(call) };
    without_tags(explain(b, &query).unwrap())
}

#[test]
fn explain_and_check_name_the_series_a_request_counts_under() {
    let routes = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r.v2, namespace: default}
spec:
  parentRefs: [{kind: Service, group: \"\", name: front, port: 80}]
  rules:
  - name: split
    matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: a, port: 80}, {name: gone, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}}}]
";
    let b = from_text(&format!("{SERVICES}---\n{routes}"));
    let tags = |t: &crate::explain::StatTags| {
        [&t.frontend, &t.route, &t.rule, &t.rule_name, &t.backend, &t.outcome].map(|s| s.as_str()).map(str::to_owned)
    };
    let split = ask_with_tags(&b, "front", "/split", &[]);
    assert_eq!(split.stat_tags, None, "a rule with backends counts under each backend's tags");
    let shares: Vec<_> = split.backends.iter().map(|c| tags(c.stat_tags.as_ref().unwrap())).collect();
    assert_eq!(
        shares,
        [
            ["default/front:80", "default/r.v2", "0", "split", "default/a:80", "routed"].map(str::to_owned),
            ["default/front:80", "default/r.v2", "0", "split", "default/gone:80", "invalid_backend"].map(str::to_owned),
        ]
    );
    let old = ask_with_tags(&b, "front", "/old", &[]);
    assert_eq!(
        tags(old.stat_tags.as_ref().unwrap()),
        ["default/front:80", "default/r.v2", "1", "", "", "redirect"].map(str::to_owned)
    );
    let none = ask_with_tags(&b, "front", "/nowhere", &[]);
    assert_eq!(tags(none.stat_tags.as_ref().unwrap()), ["default/front:80", "", "", "", "", "no_route"].map(str::to_owned));
    let text = crate::check::status_text(&b);
    assert!(
        text.contains(
            "  counted in envoy_meshroute_requests_total as route=\"default/r.v2\" on frontend=\"default/front:80\"\n    rule=\"0\" rule_name=\"split\"\n    rule=\"1\"\n"
        ),
        "check does not show the tags:\n{text}"
    );
    let passed = ask_with_tags(&b, "front:8080", "/", &[]);
    assert_eq!((passed.stat_tags, passed.backends[0].stat_tags.clone()), (None, None), "a port without routes counts nothing");
}

fn grpc_backend(name: &str) -> Candidate {
    Candidate { port: Some(8080), weight: 1, ..backend(name, 1) }
}

const ECHO: &str = "echo_basic.grpcecho.GrpcEcho";

#[test]
fn product_page_grpc_route_routes_echo_and_echo_two_and_leaves_echo_three_unimplemented() {
    let b = mesh_example();
    for (method, rule, backend) in [("Echo", 0, "grpc-infra-backend-v1"), ("EchoTwo", 1, "grpc-infra-backend-v2")] {
        let e = ask_grpc(&b, "echo-service:8080", &format!("{ECHO}/{method}"), &[]);
        assert_eq!((e.status, e.grpc_status, e.rule), (200, Some(Some(0)), Some(rule)), "{method}");
        assert_eq!(e.backends, vec![grpc_backend(backend)], "{method}");
    }
    let e = ask_grpc(&b, "echo-service:8080", &format!("{ECHO}/EchoThree"), &[]);
    assert_eq!((e.status, e.grpc_status, e.route, e.rule), (200, Some(Some(12)), None, None));
    assert_eq!(
        serde_json::to_string(&ask_grpc(&b, "127.0.10.1:8080", &format!("/{ECHO}/EchoTwo"), &[])).unwrap(),
        r#"{"status":200,"grpc_status":0,"route":"default/echo-route","rule":1,"backends":[{"name":"grpc-infra-backend-v2","namespace":"default","port":8080,"weight":1}]}"#
    );
    assert_eq!(
        serde_json::to_string(&ask_grpc(&b, "echo-service:8080", &format!("{ECHO}/EchoThree"), &[])).unwrap(),
        r#"{"status":200,"grpc_status":12,"route":null,"rule":null,"backends":[]}"#
    );
}

#[test]
fn product_page_examples_serve_side_by_side_on_the_two_ports_of_echo_service() {
    let b = mesh_example();
    // The HTTPRoute keeps port 80, where nothing is said about gRPC.
    let e = ask(&b, "echo-service", "/hello", &[]);
    assert_eq!((e.status, e.grpc_status, e.route.as_deref()), (200, None, Some("default/echo-route")));
    assert_eq!(e.backends, vec![backend("echo-v1", 9), backend("echo-v2", 1)]);
    // Port 8080 is the GRPCRoute's alone: one frontend per port, each of one kind.
    let kinds: Vec<(u16, Vec<meshroute_filter::document::RouteKind>)> =
        b.table.frontends.iter().map(|f| (f.port, f.routes.iter().map(|&r| b.table.routes[r].kind).collect())).collect();
    use meshroute_filter::document::RouteKind::{Grpc, Http};
    assert_eq!(kinds, [(80, vec![Http]), (8080, vec![Grpc])]);
    let warnings: Vec<String> = b.warnings_vec().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["echo-route.yaml:10: warning: HTTPRoute default/echo-route: spec.parentRefs[0]: not applied on Service default/echo-service \
          port 8080: GRPCRoute default/echo-route takes that port (GRPCRoute > HTTPRoute, GEP-1294)"]
    );
    let ParentStatus::Mesh { accepted, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert_eq!(
        (accepted.status, accepted.message.as_str()),
        (
            true,
            "attached to port 80 of Service default/echo-service; not to port 8080, taken by GRPCRoute default/echo-route (GRPCRoute > HTTPRoute, GEP-1294)"
        )
    );
    let ParentStatus::Mesh { accepted, ports, .. } = &b.statuses[1].parents[0] else { panic!() };
    assert_eq!(ports, &[8080]);
    assert_eq!(
        accepted.message,
        "attached to port 8080 of Service default/echo-service; not to port 80 (named http: HTTP/1): a GRPCRoute parentRef without port skips ports declared HTTP/1 or not HTTP"
    );
}

#[test]
fn a_plain_http_request_on_a_grpc_frontend_is_answered_in_http_terms() {
    let b = mesh_example();
    // Only a match without a method constraint could take a path that is not /SERVICE/METHOD;
    // the product page's rules all name a method, so: 404, and no gRPC status (not a gRPC call).
    let e = ask(&b, "echo-service:8080", "/hello", &[]);
    assert_eq!((e.status, e.grpc_status, e.route.as_deref()), (404, Some(None), None));
    assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"status":404,"grpc_status":null,"route":null,"rule":null,"backends":[]}"#);
    // The filter decides by content-type, so a hand-made gRPC call is one.
    let e = ask(&b, "echo-service:8080", &format!("/{ECHO}/Echo"), &["Content-Type: application/grpc+proto"]);
    assert_eq!((e.status, e.grpc_status, e.rule), (200, Some(Some(0)), Some(0)));
}

#[test]
fn a_grpc_call_on_an_http_frontend_gets_what_envoy_makes_of_the_http_answer() {
    let b = from_text(&format!(
        "{SERVICES}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  parentRefs: [{{kind: Service, group: \"\", name: front, port: 80}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /pkg.Svc}}}}]
    backendRefs: [{{name: a, port: 80}}]
  - matches: [{{path: {{type: PathPrefix, value: /pkg.Broken}}}}]
    backendRefs: [{{name: missing, port: 80}}]
"
    ));
    assert_eq!(ask_grpc(&b, "front", "pkg.Svc/Get", &[]).grpc_status, Some(Some(0)));
    // 404 is UNIMPLEMENTED and 500 UNKNOWN in Envoy's HTTP-to-gRPC status mapping.
    let e = ask_grpc(&b, "front", "pkg.Other/Get", &[]);
    assert_eq!((e.status, e.grpc_status), (200, Some(Some(12))));
    let e = ask_grpc(&b, "front", "pkg.Broken/Get", &[]);
    assert_eq!((e.status, e.grpc_status), (200, Some(Some(2))));
    // A Service port without routes passes the call through.
    let e = ask_grpc(&b, "front:8080", "pkg.Svc/Get", &[]);
    assert_eq!((e.status, e.grpc_status, e.route), (200, Some(Some(0)), None));
}

const GRPC_SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  clusterIP: 10.0.0.1
  ports:
  - {name: http, port: 80}
  - {name: grpc, port: 8080, appProtocol: kubernetes.io/h2c}
  - {name: metrics, port: 9090}
  - {name: db, port: 5432, appProtocol: tcp}
  - {name: tcp-legacy, port: 7000}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.0.0.5
  ports:
  - {name: http, port: 80}
  - {name: https-admin, port: 443}
---
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  clusterIP: 10.0.0.2
  ports: [{name: grpc, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  clusterIP: 10.0.0.3
  ports: [{name: grpc, port: 8080}]
";

fn grpc_route(name: &str, parent: &str, rules: &str) -> String {
    format!(
        "---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{parent}]
  rules:
{rules}"
    )
}

#[test]
fn grpc_route_without_port_skips_ports_declared_http1_or_not_http() {
    let b = from_text(&format!(
        "{GRPC_SERVICES}{}",
        grpc_route("g", "{kind: Service, group: \"\", name: front}", "  - backendRefs: [{name: a, port: 8080}]\n")
    ));
    let ParentStatus::Mesh { accepted, ports, .. } = &b.statuses[0].parents[0] else { panic!() };
    // grpc (h2c) and metrics (declares nothing) qualify; http, tcp and tcp-legacy do not.
    assert_eq!(ports, &[8080, 9090]);
    assert_eq!(
        accepted.message,
        "attached to ports 8080, 9090 of Service default/front; not to port 80 (named http: HTTP/1), port 5432 (appProtocol tcp: not HTTP), \
         port 7000 (named tcp-legacy: not HTTP): a GRPCRoute parentRef without port skips ports declared HTTP/1 or not HTTP"
    );
    let ports: Vec<u16> = b.table.frontends.iter().map(|f| f.port).collect();
    assert_eq!(ports, [8080, 9090]);
}

#[test]
fn grpc_route_with_port_attaches_exactly_there() {
    let b = from_text(&format!(
        "{GRPC_SERVICES}{}",
        grpc_route("g", "{kind: Service, group: \"\", name: web, port: 80}", "  - backendRefs: [{name: a, port: 8080}]\n")
    ));
    let ParentStatus::Mesh { accepted, ports, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert_eq!((accepted.status, ports.as_slice()), (true, &[80][..]));
    assert_eq!(ask_grpc(&b, "web", "pkg.Svc/Get", &[]).backends, vec![grpc_backend("a")]);
}

#[test]
fn grpc_route_without_port_on_a_service_without_a_grpc_port_is_not_accepted() {
    let b = from_text(&format!(
        "{GRPC_SERVICES}{}",
        grpc_route("g", "{kind: Service, group: \"\", name: web}", "  - backendRefs: [{name: a, port: 8080}]\n")
    ));
    assert!(b.table.frontends.is_empty());
    let warnings: Vec<String> = b.warnings_vec().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["m.yaml:40: warning: GRPCRoute default/g: spec.parentRefs[0]: not attached: Accepted False (NoMatchingParent): Service default/web \
          has no port for gRPC: port 80 (named http: HTTP/1), port 443 (named https-admin: HTTP/1); a GRPCRoute parentRef without port \
          skips ports declared HTTP/1 or not HTTP; give the parentRef a port to attach there anyway, or declare the gRPC port with \
          appProtocol kubernetes.io/h2c"]
    );
}

#[test]
fn grpc_route_takes_the_port_from_an_http_route_and_never_merges_with_it() {
    let http = "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h}
spec:
  parentRefs: [{kind: Service, group: \"\", name: front, port: 8080}]
  rules:
  - backendRefs: [{name: b, port: 8080}]
";
    let b = from_text(&format!(
        "{GRPC_SERVICES}{http}{}",
        grpc_route("g", "{kind: Service, group: \"\", name: front, port: 8080}", "  - backendRefs: [{name: a, port: 8080}]\n")
    ));
    // The HTTPRoute's only port is taken: not accepted, and not in the table.
    let ParentStatus::Mesh { accepted, ports, taken, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert_eq!((accepted.status, accepted.reason, ports.is_empty()), (false, "Conflicted", true));
    assert_eq!(taken, &[(8080, "GRPCRoute default/g".to_owned())]);
    assert_eq!(b.table.routes.len(), 1);
    assert_eq!(b.table.routes[0].name, "g");
    RouteTable::compile(&b.table).unwrap();
    // Even a plain HTTP request goes by the GRPCRoute now.
    let e = ask(&b, "front:8080", "/anything", &[]);
    assert_eq!((e.status, e.grpc_status, e.route.as_deref()), (200, Some(None), Some("default/g")));
    let warnings: Vec<String> = b.warnings_vec().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["m.yaml:40: warning: HTTPRoute default/h: spec.parentRefs[0]: not attached: Accepted False (Conflicted): every port of \
          Service default/front it would attach to is taken by a GRPCRoute: port 8080, taken by GRPCRoute default/g \
          (GRPCRoute > HTTPRoute, GEP-1294)"]
    );
}

#[test]
fn grpc_invalid_backend_is_unavailable_and_a_rule_without_backends_too() {
    let b = from_text(&format!(
        "{GRPC_SERVICES}{}",
        grpc_route(
            "g",
            "{kind: Service, group: \"\", name: front, port: 8080}",
            "  - matches: [{method: {service: pkg.Missing}}]
    backendRefs: [{name: missing, port: 8080}]
  - matches: [{method: {service: pkg.Empty}}]
  - matches: [{method: {service: pkg.Half}}]
    backendRefs: [{name: a, port: 8080}, {name: missing, port: 8080}]
"
        )
    ));
    let e = ask_grpc(&b, "front:8080", "pkg.Missing/Get", &[]);
    assert_eq!((e.status, e.grpc_status, e.rule), (200, Some(Some(14)), Some(0)));
    assert_eq!(e.backends[0].unresolved.as_deref(), Some("BackendNotFound"));
    let e = ask_grpc(&b, "front:8080", "pkg.Empty/Get", &[]);
    assert_eq!((e.status, e.grpc_status, e.rule), (200, Some(Some(14)), Some(1)));
    // Half the calls go to a, half get UNAVAILABLE: explain shows both candidates.
    let e = ask_grpc(&b, "front:8080", "pkg.Half/Get", &[]);
    assert_eq!((e.grpc_status, e.backends.len()), (Some(Some(0)), 2));
    assert!(b.warnings_vec().iter().any(|w| w.to_string().contains("will get 500")), "{:#?}", b.warnings_vec());
}

#[test]
fn grpc_precedence_service_then_method_then_headers() {
    let b = from_text(&format!(
        "{GRPC_SERVICES}{}",
        grpc_route(
            "g",
            "{kind: Service, group: \"\", name: front, port: 8080}",
            "  - matches: [{method: {method: Get}, headers: [{name: version, value: two}]}]
    backendRefs: [{name: a, port: 8080}]
  - matches: [{method: {service: pkg.Svc}}]
    backendRefs: [{name: b, port: 8080}]
"
        )
    ));
    // The longer service wins over the method and its header.
    assert_eq!(ask_grpc(&b, "front:8080", "pkg.Svc/Get", &["version: two"]).rule, Some(1));
    assert_eq!(ask_grpc(&b, "front:8080", "pkg.Other/Get", &["version: two"]).rule, Some(0));
    assert_eq!(ask_grpc(&b, "front:8080", "pkg.Other/Get", &[]).grpc_status, Some(Some(12)));
}

#[test]
fn shadowed_grpc_rules_are_named() {
    let b = from_text(&format!(
        "{GRPC_SERVICES}{}",
        grpc_route(
            "g",
            "{kind: Service, group: \"\", name: front, port: 8080}",
            "  - matches: [{method: {service: pkg.Svc}}]
    backendRefs: [{name: a, port: 8080}]
  - matches: [{method: {service: pkg.Svc}, headers: [{name: version, value: two}]}]
    backendRefs: [{name: b, port: 8080}]
  - matches: [{method: {service: pkg.Svc, method: Get}}]
    backendRefs: [{name: b, port: 8080}]
  - matches: [{method: {type: RegularExpression, service: pkg\\..*}}]
    backendRefs: [{name: b, port: 8080}]
"
        )
    ));
    let warnings: Vec<String> = b.warnings_vec().iter().map(ToString::to_string).collect();
    // Rule 1 asks for more than rule 0 but ranks the same on service and method, and more
    // headers rank higher: it is not shadowed. Rule 2 names a method: not shadowed. The regex
    // rule is not provably covered: no warning either (the check is conservative).
    assert!(warnings.is_empty(), "{warnings:#?}");
    let b = from_text(&format!(
        "{GRPC_SERVICES}{}",
        grpc_route(
            "g",
            "{kind: Service, group: \"\", name: front, port: 8080}",
            "  - matches: [{method: {service: pkg.Svc, method: Get}}]
    backendRefs: [{name: a, port: 8080}]
  - matches: [{method: {service: pkg.Svc, method: Get}}]
    backendRefs: [{name: b, port: 8080}]
  - backendRefs: [{name: a, port: 8080}]
"
        )
    ));
    let warnings: Vec<String> = b.warnings_vec().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        ["m.yaml:44: warning: GRPCRoute default/g: spec.rules[1]: never matches: spec.rules[0] of the same route takes every request \
          it would match first (when matches are equally specific, the earlier rule wins), so b gets no traffic; to split traffic by \
          weight, put all the backendRefs in one rule"]
    );
}

/// Every Service port without routes is in the table with its own cluster, so that one
/// listener can serve every Service address; a port with routes is a frontend instead, and
/// an address without an IP (a headless Service) is not there at all.
#[test]
fn the_table_lists_every_service_port_without_routes_with_its_cluster() {
    let routes = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{kind: Service, group: \"\", name: front, port: 80}]
  rules:
  - backendRefs: [{name: a, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec:
  clusterIP: None
  ports: [{port: 80}]
";
    let b = from_text(&format!("{SERVICES}---\n{routes}"));
    let listed: Vec<(Vec<String>, u16, String)> =
        b.table.pass_through.iter().map(|p| (p.addresses.clone(), p.port, p.cluster.clone())).collect();
    assert!(
        listed.contains(&(vec!["10.0.0.1".into()], 8080, "outbound|8080||front.default.svc.cluster.local".into())),
        "{listed:?}"
    );
    assert!(listed.contains(&(vec!["10.0.0.2".into()], 80, "outbound|80||a.default.svc.cluster.local".into())), "{listed:?}");
    assert!(
        !listed.iter().any(|(_, port, cluster)| *port == 80 && cluster.contains("||front.")),
        "a frontend is not a pass-through"
    );
    assert!(!listed.iter().any(|(_, _, cluster)| cluster.contains("headless")), "{listed:?}");
    let compiled = &b.compiled;
    assert!(matches!(
        compiled.destination("10.0.0.1:8080"),
        meshroute_filter::table::Destination::PassThrough(Some("outbound|8080||front.default.svc.cluster.local"))
    ));
}
