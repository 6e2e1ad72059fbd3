//! Routing through a whole compiled table: which rule of which route takes a request, by the
//! Gateway API's precedence rules ([`crate::precedence`]), and what happens when none does.

use serde_json::{json, Value};

use crate::decision::{decide, Cause, Decision, Forward};
use crate::document::RouteKind;
use crate::request::Request;
use crate::table::{Outcome, RouteTable};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const FRONTEND: &str = "10.96.0.10:80";

/// A route whose rules each send to one backend named after the route and rule (`name#i`), its
/// target written in place of the index: [`lift_targets`] lists it in the document's `targets`.
fn route(name: &str, created: Option<&str>, rules: Vec<Vec<Value>>) -> Value {
    let rules: Vec<Value> = rules
        .into_iter()
        .enumerate()
        .map(|(i, matches)| {
            let backend = format!("{name}#{i}");
            let target = json!({"name": backend, "namespace": "default", "port": 80, "cluster": backend});
            json!({"matches": matches, "backends": [{"target": target, "weight": 1}]})
        })
        .collect();
    let mut route = json!({"kind": "HTTPRoute", "namespace": "default", "name": name, "rules": rules});
    if let Some(created) = created {
        route["creation_timestamp"] = json!(created);
    }
    route
}

/// A table document: `doc`'s routes with each backend's target (written in place by [`route`])
/// moved to `targets`, the backend keeping its index there.
fn lift_targets(mut doc: Value) -> Value {
    let mut targets: Vec<Value> = Vec::new();
    let rules = doc["routes"].as_array_mut().into_iter().flatten().filter_map(|r| r["rules"].as_array_mut()).flatten();
    for backend in rules.filter_map(|rule| rule["backends"].as_array_mut()).flatten() {
        if backend["target"].is_object() {
            targets.push(backend["target"].take());
            backend["target"] = json!(targets.len() - 1);
        }
    }
    doc["targets"] = json!(targets);
    doc
}

fn table(routes: Vec<Value>) -> RouteTable {
    let indexes: Vec<usize> = (0..routes.len()).collect();
    let doc = lift_targets(json!({
        "version": 2,
        "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": indexes}],
        "routes": routes,
    }));
    RouteTable::from_json(doc.to_string().as_bytes()).unwrap()
}

fn path(kind: &str, value: &str) -> Value {
    json!({"path": {"type": kind, "value": value}})
}

/// The backend (`route#rule`) that takes a request, or "404"/"500"/"pass".
fn winner(table: &RouteTable, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    winner_at(table, FRONTEND, method, path, headers)
}

fn winner_at(table: &RouteTable, destination: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let request = Request { method, path_and_query: path, headers: &headers };
    match decide(table, table.frontend_at(destination), &request, 0, |_: &str| None::<&str>) {
        Decision::PassThrough => "pass".into(),
        Decision::Forward(Forward { cluster, .. }) => cluster.into(),
        Decision::LocalReply { reply, .. } => reply.status.to_string(),
    }
}

#[test]
fn exact_path_beats_any_prefix() {
    let t = table(vec![route("r", None, vec![vec![path("PathPrefix", "/foo/bar/baz")], vec![path("Exact", "/foo/bar/baz")]])]);
    assert_eq!(winner(&t, "GET", "/foo/bar/baz", &[]), "r#1");
    assert_eq!(winner(&t, "GET", "/foo/bar/baz/x", &[]), "r#0");
}

#[test]
fn longer_prefix_wins() {
    let t = table(vec![route(
        "r",
        None,
        vec![vec![path("PathPrefix", "/")], vec![path("PathPrefix", "/v2")], vec![path("PathPrefix", "/v2/example")]],
    )]);
    assert_eq!(winner(&t, "GET", "/", &[]), "r#0");
    assert_eq!(winner(&t, "GET", "/v2", &[]), "r#1");
    assert_eq!(winner(&t, "GET", "/v2/", &[]), "r#1");
    assert_eq!(winner(&t, "GET", "/v2example", &[]), "r#0");
    assert_eq!(winner(&t, "GET", "/v2/example/more", &[]), "r#2");
}

#[test]
fn conformance_prefix_or_header() {
    // MeshHTTPRouteMatching: rule 0 `/` → v1; rule 1 `/v2` or header version: two → v2.
    let t = table(vec![route(
        "r",
        None,
        vec![
            vec![path("PathPrefix", "/")],
            vec![path("PathPrefix", "/v2"), json!({"headers": [{"type": "Exact", "name": "version", "value": "two"}]})],
        ],
    )]);
    for p in ["/", "/example", "/v2example", "/foo/v2/example"] {
        assert_eq!(winner(&t, "GET", p, &[]), "r#0", "{p}");
    }
    for p in ["/v2", "/v2/", "/v2/example"] {
        assert_eq!(winner(&t, "GET", p, &[]), "r#1", "{p}");
    }
    assert_eq!(winner(&t, "GET", "/", &[("version", "two")]), "r#1");
}

#[test]
fn method_beats_headers() {
    let t = table(vec![route(
        "r",
        None,
        vec![
            vec![
                json!({"headers": [{"type": "Exact", "name": "a", "value": "1"}, {"type": "Exact", "name": "b", "value": "2"}]}),
            ],
            vec![json!({"method": "POST"})],
        ],
    )]);
    assert_eq!(winner(&t, "POST", "/", &[("a", "1"), ("b", "2")]), "r#1");
    assert_eq!(winner(&t, "GET", "/", &[("a", "1"), ("b", "2")]), "r#0");
}

#[test]
fn more_headers_win() {
    let one = json!({"headers": [{"type": "Exact", "name": "a", "value": "1"}]});
    let two = json!({"headers": [{"type": "Exact", "name": "a", "value": "1"}, {"type": "Exact", "name": "b", "value": "2"}]});
    let t = table(vec![route("r", None, vec![vec![one], vec![two]])]);
    assert_eq!(winner(&t, "GET", "/", &[("a", "1"), ("b", "2")]), "r#1");
    assert_eq!(winner(&t, "GET", "/", &[("a", "1")]), "r#0");
    assert_eq!(winner(&t, "GET", "/", &[]), "404");
}

#[test]
fn headers_beat_query_params() {
    let header = json!({"headers": [{"type": "Exact", "name": "a", "value": "1"}]});
    let query = json!({"query_params": [{"type": "Exact", "name": "q", "value": "1"}]});
    let t = table(vec![route("r", None, vec![vec![query], vec![header]])]);
    assert_eq!(winner(&t, "GET", "/?q=1", &[("a", "1")]), "r#1");
    assert_eq!(winner(&t, "GET", "/?q=1", &[]), "r#0");
}

#[test]
fn more_query_params_win() {
    let one = json!({"query_params": [{"type": "Exact", "name": "animal", "value": "whale"}]});
    let two = json!({"query_params": [{"type": "Exact", "name": "animal", "value": "whale"}, {"type": "Exact", "name": "color", "value": "blue"}]});
    let t = table(vec![route("r", None, vec![vec![one], vec![two]])]);
    assert_eq!(winner(&t, "GET", "/?animal=whale&color=blue", &[]), "r#1");
    assert_eq!(winner(&t, "GET", "/?color=blue&animal=whale", &[]), "r#1");
    assert_eq!(winner(&t, "GET", "/?animal=whale", &[]), "r#0");
}

#[test]
fn older_route_wins() {
    let t = table(vec![
        route("b-newer", Some("2024-02-01T00:00:00Z"), vec![vec![path("PathPrefix", "/x")]]),
        route("a-older", Some("2024-01-01T00:00:00Z"), vec![vec![path("PathPrefix", "/x")]]),
    ]);
    assert_eq!(winner(&t, "GET", "/x", &[]), "a-older#0");
}

#[test]
fn namespace_then_name_break_ties() {
    let t = table(vec![
        route("zeta", Some("2024-01-01T00:00:00Z"), vec![vec![path("PathPrefix", "/x")]]),
        route("alpha", Some("2024-01-01T00:00:00Z"), vec![vec![path("PathPrefix", "/x")]]),
    ]);
    assert_eq!(winner(&t, "GET", "/x", &[]), "alpha#0");
}

#[test]
fn namespace_and_name_compare_as_one_string() {
    // "a-b/in-a-b" < "a/in-a" because '-' < '/', although the namespace "a" < "a-b".
    let mut in_a = route("in-a", Some("2024-01-01T00:00:00Z"), vec![vec![path("PathPrefix", "/x")]]);
    in_a["namespace"] = json!("a");
    let mut in_a_b = route("in-a-b", Some("2024-01-01T00:00:00Z"), vec![vec![path("PathPrefix", "/x")]]);
    in_a_b["namespace"] = json!("a-b");
    let t = table(vec![in_a, in_a_b]);
    assert_eq!(winner(&t, "GET", "/x", &[]), "in-a-b#0");
}

#[test]
fn route_with_timestamp_beats_one_without() {
    let t = table(vec![route("a", None, vec![vec![]]), route("b", Some("2024-01-01T00:00:00Z"), vec![vec![]])]);
    assert_eq!(winner(&t, "GET", "/", &[]), "b#0");
}

#[test]
fn earlier_rule_wins() {
    // The product page's echo-route: two rules without matches; the first takes everything.
    let t = table(vec![route("echo-route", None, vec![vec![], vec![]])]);
    for p in ["/", "/anything"] {
        assert_eq!(winner(&t, "GET", p, &[]), "echo-route#0");
    }
}

#[test]
fn regex_path_comes_after_exact_before_prefix() {
    let t = table(vec![route(
        "r",
        None,
        vec![
            vec![path("PathPrefix", "/api/v1")],
            vec![path("RegularExpression", "/api/v[0-9]+/.*")],
            vec![path("Exact", "/api/v1/users")],
        ],
    )]);
    assert_eq!(winner(&t, "GET", "/api/v1/users", &[]), "r#2");
    assert_eq!(winner(&t, "GET", "/api/v1/items", &[]), "r#1");
    assert_eq!(winner(&t, "GET", "/api/v1", &[]), "r#0");
}

#[test]
fn unmatched_request_is_404_and_unknown_destination_passes_through() {
    let t = table(vec![route("r", None, vec![vec![path("Exact", "/only")]])]);
    assert_eq!(winner(&t, "GET", "/other", &[]), "404");
    assert_eq!(winner_at(&t, "10.96.0.10:81", "GET", "/only", &[]), "pass");
    assert_eq!(winner_at(&t, "10.96.0.11:80", "GET", "/only", &[]), "pass");
    assert_eq!(winner_at(&t, "not an address", "GET", "/only", &[]), "pass");
}

#[test]
fn rule_without_backends_fails_with_500() {
    let doc = json!({
        "version": 2,
        "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0]}],
        "routes": [{"kind": "HTTPRoute", "namespace": "default", "name": "r", "rules": [{"backends": []}]}],
    });
    let t = RouteTable::from_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(winner(&t, "GET", "/", &[]), "500");
}

#[test]
fn unresolved_backend_keeps_its_share_and_fails() {
    let doc = json!({
        "version": 2,
        "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0]}],
        "routes": [{"kind": "HTTPRoute", "namespace": "default", "name": "r", "rules": [{"backends": [
            {"target": 0, "weight": 1},
            {"target": 1, "weight": 1}
        ]}]}],
        "targets": [
            {"name": "good", "namespace": "default", "port": 80, "cluster": "good"},
            {"name": "gone", "namespace": "default", "port": 80, "unresolved": "BackendNotFound"}
        ],
    });
    let t = RouteTable::from_json(doc.to_string().as_bytes()).unwrap();
    let request = Request { method: "GET", path_and_query: "/", headers: &[] };
    let decide = |draw| decide(&t, t.frontend_at(FRONTEND), &request, draw, |_: &str| None::<&str>);
    let Decision::Forward(Forward { matched, cluster: "good", .. }) = decide(0) else { panic!("not forwarded") };
    assert_eq!((matched.route.kind, matched.route.name.as_str(), matched.rule_index), (RouteKind::Http, "r", 0));
    let Decision::LocalReply { cause: Cause::Unresolved { backend, .. }, reply } = decide(1) else { panic!("forwarded") };
    assert_eq!((backend.target.name.as_str(), reply.status), ("gone", 500));
}

#[test]
fn ipv6_frontends_are_found() {
    let doc = lift_targets(json!({
        "version": 2,
        "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["fd00::10"], "routes": [0]}],
        "routes": [route("r", None, vec![vec![]])],
    }));
    let t = RouteTable::from_json(doc.to_string().as_bytes()).unwrap();
    assert_eq!(winner_at(&t, "[fd00::10]:80", "GET", "/", &[]), "r#0");
}

#[test]
fn invalid_documents_are_refused_with_a_reason() {
    let refused = |doc: Value| RouteTable::from_json(doc.to_string().as_bytes()).unwrap_err().0;
    assert!(refused(json!({"version": 1})).contains("version 1 is not supported"));
    assert!(RouteTable::from_json(b"{not json").unwrap_err().0.contains("not valid JSON"));
    assert!(refused(json!({"version": 2, "extra": true})).contains("unknown field"));
    let bad_regex = lift_targets(
        json!({"version": 2, "frontends": [{"namespace": "d", "name": "e", "port": 80, "addresses": ["10.0.0.1"], "routes": [0]}],
        "routes": [route("r", None, vec![vec![path("RegularExpression", "(")]])]}),
    );
    assert!(refused(bad_regex).contains("routes[0].rules[0]: invalid regex"));
    let dangling = json!({"version": 2, "frontends": [{"namespace": "d", "name": "e", "port": 80, "addresses": ["10.0.0.1"], "routes": [3]}], "routes": []});
    assert!(refused(dangling).contains("route index 3 is out of range"));
    let heavy = json!({"version": 2, "routes": [{"kind": "HTTPRoute", "namespace": "d", "name": "r", "rules": [{"backends": [
        {"target": 0, "weight": 1_000_001}]}]}], "targets": [{"name": "b", "namespace": "d", "cluster": "c"}]});
    assert!(refused(heavy).contains("rules[0].backends[0]: backend d/b weight 1000001 is above 1000000"));
    let both =
        json!({"version": 2, "targets": [{"name": "b", "namespace": "d", "cluster": "c", "unresolved": "BackendNotFound"}]});
    assert_eq!(refused(both), "targets[0] (d/b): must have exactly one of a non-empty cluster or an unresolved reason");
    // A backendRef whose target is not in the table, even on a route no frontend has.
    let r = |rules: Value| json!({"kind": "HTTPRoute", "namespace": "d", "name": "r", "rules": rules});
    let beyond = json!({"version": 2,
        "routes": [r(json!([])), r(json!([{"backends": []}, {"backends": [{"target": 0, "weight": 1}, {"target": 1, "weight": 1}]}]))],
        "targets": [{"name": "b", "namespace": "d", "cluster": "c"}]});
    assert_eq!(refused(beyond), "routes[1] (d/r): rules[1].backends[1]: target 1 is out of range (the table has 1)");
}

/// Backends naming one target share its compiled form.
#[test]
fn backends_share_their_target() {
    let doc = json!({"version": 2,
        "frontends": [{"namespace": "d", "name": "e", "port": 80, "addresses": ["10.0.0.1"], "routes": [0]}],
        "routes": [{"kind": "HTTPRoute", "namespace": "d", "name": "r", "rules": [
            {"backends": [{"target": 0, "weight": 1}]}, {"backends": [{"target": 0, "weight": 2}]}]}],
        "targets": [{"name": "b", "namespace": "d", "port": 80, "cluster": "c"}]});
    let t = RouteTable::from_json(doc.to_string().as_bytes()).unwrap();
    let request = Request { method: "GET", path_and_query: "/", headers: &[] };
    let Outcome::Matched(matched) = t.route(t.frontend_at("10.0.0.1:80"), &request) else { panic!("no match") };
    let [first, second] = [&matched.route.rules[0], &matched.route.rules[1]].map(|rule| &rule.backends.all()[0]);
    assert!(std::sync::Arc::ptr_eq(&first.target, &second.target));
    assert_eq!((first.weight, second.weight, first.target.name.as_str()), (1, 2, "b"));
}

/// A GRPCRoute whose rules each send to one backend named after the route and rule (`name#i`).
fn grpc_route(name: &str, created: Option<&str>, rules: Vec<Vec<Value>>) -> Value {
    let mut route = route(name, created, rules);
    route["kind"] = json!("GRPCRoute");
    route
}

fn grpc_method(kind: &str, service: Option<&str>, method: Option<&str>) -> Value {
    let mut m = json!({"type": kind});
    if let Some(service) = service {
        m["service"] = json!(service);
    }
    if let Some(method) = method {
        m["method"] = json!(method);
    }
    json!({"grpc_method": m})
}

#[test]
fn grpc_product_page_routes_by_method() {
    let t = table(vec![grpc_route(
        "echo-route",
        None,
        vec![
            vec![grpc_method("Exact", Some("echo_basic.grpcecho.GrpcEcho"), Some("Echo"))],
            vec![grpc_method("Exact", Some("echo_basic.grpcecho.GrpcEcho"), Some("EchoTwo"))],
        ],
    )]);
    assert_eq!(winner(&t, "POST", "/echo_basic.grpcecho.GrpcEcho/Echo", &[]), "echo-route#0");
    assert_eq!(winner(&t, "POST", "/echo_basic.grpcecho.GrpcEcho/EchoTwo", &[]), "echo-route#1");
    // No match: the filter answers UNIMPLEMENTED on a gRPC frontend (see `reply`).
    assert_eq!(winner(&t, "POST", "/echo_basic.grpcecho.GrpcEcho/EchoThree", &[]), "404");
    assert_eq!(t.frontend_at(FRONTEND).map(|f| f.kind()), Some(RouteKind::Grpc));
}

#[test]
fn grpc_service_characters_beat_method_characters() {
    let t = table(vec![grpc_route(
        "r",
        None,
        vec![
            vec![grpc_method("Exact", None, Some("VeryLongMethodName"))],
            vec![grpc_method("Exact", Some("pkg.Svc"), None)],
            vec![grpc_method("Exact", Some("pkg.Svc"), Some("VeryLongMethodName"))],
            vec![],
        ],
    )]);
    assert_eq!(winner(&t, "POST", "/pkg.Svc/VeryLongMethodName", &[]), "r#2");
    assert_eq!(winner(&t, "POST", "/pkg.Svc/Other", &[]), "r#1");
    assert_eq!(winner(&t, "POST", "/other.Svc/VeryLongMethodName", &[]), "r#0");
    assert_eq!(winner(&t, "POST", "/other.Svc/Other", &[]), "r#3");
    assert_eq!(winner(&t, "GET", "/not/a/grpc/path", &[]), "r#3");
}

#[test]
fn grpc_header_count_then_age_then_name() {
    let header = |name: &str| json!({"type": "Exact", "name": name, "value": "1"});
    let t = table(vec![
        grpc_route("b", Some("2024-01-01T00:00:00Z"), vec![vec![json!({"headers": [header("a")]})]]),
        grpc_route("a", Some("2024-01-01T00:00:00Z"), vec![vec![json!({"headers": [header("a")]})]]),
        grpc_route("old", Some("2023-01-01T00:00:00Z"), vec![vec![json!({"headers": [header("b")]})]]),
        grpc_route("c", Some("2025-01-01T00:00:00Z"), vec![vec![json!({"headers": [header("a"), header("b")]})]]),
    ]);
    assert_eq!(winner(&t, "POST", "/pkg.Svc/M", &[("a", "1"), ("b", "1")]), "c#0");
    assert_eq!(winner(&t, "POST", "/pkg.Svc/M", &[("a", "1")]), "a#0");
    assert_eq!(winner(&t, "POST", "/pkg.Svc/M", &[("b", "1")]), "old#0");
}

#[test]
fn http_and_grpc_routes_are_never_merged_on_one_frontend() {
    let doc = lift_targets(json!({
        "version": 2,
        "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0, 1]}],
        "routes": [route("h", None, vec![vec![]]), grpc_route("g", None, vec![vec![]])],
    }));
    let error = RouteTable::from_json(doc.to_string().as_bytes()).unwrap_err().0;
    assert!(error.contains("never merged"), "{error}");
}

#[test]
fn matches_of_the_other_kind_are_refused() {
    let doc = |route: Value| {
        lift_targets(json!({"version": 2,
            "frontends": [{"namespace": "d", "name": "e", "port": 80, "addresses": ["10.0.0.1"], "routes": [0]}],
            "routes": [route]}))
    };
    let grpc_in_http = doc(route("h", None, vec![vec![grpc_method("Exact", Some("pkg.Svc"), None)]]));
    let path_in_grpc = doc(grpc_route("g", None, vec![vec![path("PathPrefix", "/")]]));
    for bad in [grpc_in_http, path_in_grpc] {
        assert!(RouteTable::from_json(bad.to_string().as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn a_frontend_reads_only_what_its_reachable_matches_need() {
    use crate::matching::Inputs;
    let inputs = |t: &RouteTable| t.frontend_at(FRONTEND).map(|f| f.inputs());
    // The product page's split: a rule without matches reads nothing.
    assert_eq!(inputs(&table(vec![route("r", None, vec![vec![]])])), Some(Inputs::default()));
    let by_path = table(vec![route("r", None, vec![vec![path("PathPrefix", "/v2")], vec![]])]);
    assert_eq!(inputs(&by_path), Some(Inputs { path: true, ..Inputs::default() }));
    let by_method_and_query = table(vec![route(
        "r",
        None,
        vec![vec![json!({"method": "POST", "query_params": [{"type": "Exact", "name": "q", "value": "1"}]})]],
    )]);
    assert_eq!(inputs(&by_method_and_query), Some(Inputs { path: true, method: true, headers: false }));
    // A match that reads headers makes the whole map worth one call.
    let with_header = table(vec![
        route("a", None, vec![vec![]]),
        route("b", None, vec![vec![json!({"headers": [{"type": "Exact", "name": "a", "value": "1"}]})]]),
    ]);
    assert_eq!(inputs(&with_header), Some(Inputs { path: false, method: false, headers: true }));
}
