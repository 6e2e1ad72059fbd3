//! Routes people really write, from public manifests and bug reports: each case as the Gateway
//! API reads it, and one bad resource never taking the others down.

use std::path::PathBuf;

use super::{build_files, Build, LastGood};
use crate::diag::Severity;
use crate::explain::{explain, Query};
use crate::load::SourceFile;
use crate::resolve::ParentStatus;

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  clusterIP: 10.0.0.1
  ports:
  - {name: http, port: 80}
  - {name: http-admin, port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: v1}
spec:
  clusterIP: 10.0.0.2
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: v2}
spec:
  clusterIP: 10.0.0.3
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: grpc-plain}
spec:
  clusterIP: 10.0.0.4
  ports: [{port: 8080}]
";

fn route(name: &str, parent: &str, rules: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{parent}]
  rules:
{rules}"
    )
}

fn files(files: &[(&str, &str)]) -> Vec<SourceFile> {
    files.iter().map(|(path, text)| SourceFile { path: PathBuf::from(path), text: (*text).to_owned() }).collect()
}

fn build(texts: &[(&str, &str)], last_good: &LastGood) -> Build {
    build_files(&files(texts), Vec::new(), last_good, "default").unwrap_or_else(|e| panic!("{e:#?}"))
}

fn with_services(routes: &str) -> Build {
    build(&[("services.yaml", SERVICES), ("routes.yaml", routes)], &LastGood::default())
}

/// Where a GET of `path` to `to` goes: the names of its backends, or its status.
fn goes(b: &Build, to: &str, path: &str, headers: &[&str]) -> String {
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let e = explain(b, &Query { to, namespace: "default", method: "GET", path, headers: &headers, grpc: None }).unwrap();
    match e.status {
        200 => e.backends.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join(","),
        status => status.to_string(),
    }
}

fn texts(b: &Build, severity: Severity) -> Vec<String> {
    b.diagnostics.iter().filter(|d| d.severity == severity).map(ToString::to_string).collect()
}

/// ParentReference.sectionName: for a Service, the name of one of its ports.
#[test]
fn section_name_attaches_to_the_named_port_only() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, sectionName: http-admin}",
        "  - backendRefs: [{name: v1, port: 80}]\n",
    ));
    let ParentStatus::Mesh { accepted, ports, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert_eq!((accepted.status, ports.as_slice()), (true, &[8080][..]), "{}", accepted.message);
    assert_eq!(goes(&b, "echo:8080", "/", &[]), "v1");
    assert_eq!(goes(&b, "echo:80", "/", &[]), "echo", "port 80 passes through");
    assert!(b.warnings_vec().is_empty(), "{:#?}", b.warnings_vec());
}

/// A sectionName naming no port of the Service: Accepted False (NoMatchingParent), a warning.
#[test]
fn a_section_name_that_names_no_port_is_no_matching_parent() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, sectionName: grpc}",
        "  - backendRefs: [{name: v1, port: 80}]\n",
    ));
    let ParentStatus::Mesh { accepted, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert_eq!((accepted.status, accepted.reason), (false, "NoMatchingParent"));
    assert_eq!(accepted.message, "Service default/echo has no port named grpc (its port names: http, http-admin)");
    assert_eq!(
        texts(&b, Severity::Warning),
        ["routes.yaml:5: warning: HTTPRoute default/r: spec.parentRefs[0]: not attached: Accepted False (NoMatchingParent): \
          Service default/echo has no port named grpc (its port names: http, http-admin)"]
    );
    assert!(b.table.frontends.is_empty());
}

/// With both sectionName and port, both must name the same port.
#[test]
fn section_name_and_port_must_name_the_same_port() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, sectionName: http, port: 8080}",
        "  - backendRefs: [{name: v1, port: 80}]\n",
    ));
    let ParentStatus::Mesh { accepted, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert_eq!((accepted.status, accepted.reason), (false, "NoMatchingParent"));
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, sectionName: http, port: 80}",
        "  - backendRefs: [{name: v1, port: 80}]\n",
    ));
    assert_eq!(goes(&b, "echo:80", "/", &[]), "v1");
}

/// A header named twice in one match: the later entry is ignored (not an error), so the rule
/// keeps its other conditions and shadows nothing it should not.
#[test]
fn a_repeated_header_name_leaves_the_rule_valid_and_shadowing_nothing() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - matches:
    - headers: [{name: x-env, value: one}, {name: X-Env, value: two}]
    backendRefs: [{name: v2, port: 80}]
  - backendRefs: [{name: v1, port: 80}]
",
    ));
    assert!(b.is_valid(), "{:#?}", b.diagnostics);
    let warnings = texts(&b, Severity::Warning);
    assert_eq!(warnings.len(), 1, "only the ignored entry, no shadowed rule: {warnings:#?}");
    assert!(warnings[0].contains("spec.rules[0].matches[0].headers[1]: ignored"), "{}", warnings[0]);
    assert_eq!(goes(&b, "echo", "/", &["x-env: one"]), "v2");
    assert_eq!(goes(&b, "echo", "/", &["X-ENV: two"]), "v1");
}

/// Istio's published 90/10 sample writes `kind: Service` without `group`, which then defaults to
/// the Gateway API's own group: a counted warning, with the fix when the Service exists.
#[test]
fn a_service_parent_without_group_is_a_warning_with_the_fix() {
    let b = with_services(&route("r", "{kind: Service, name: echo, port: 80}", "  - backendRefs: [{name: v1, port: 80}]\n"));
    assert_eq!(
        texts(&b, Severity::Warning),
        ["routes.yaml:5: warning: HTTPRoute default/r: spec.parentRefs[0]: kind Service in group \"gateway.networking.k8s.io\" \
          is not a Kubernetes Service, so this parentRef attaches to nothing (group defaults to gateway.networking.k8s.io when \
          left out); add `group: \"\"` to attach to Service default/echo"]
    );
    assert!(b.table.frontends.is_empty());
    let b = with_services(&route("r", "{kind: Service, name: nowhere}", "  - backendRefs: [{name: v1, port: 80}]\n"));
    let warning = &texts(&b, Severity::Warning)[0];
    assert!(warning.ends_with("(group defaults to gateway.networking.k8s.io when left out)"), "{warning}");
}

/// A Gateway parent makes a north-south route: a note, not a warning.
#[test]
fn a_gateway_parent_is_a_note() {
    let b = with_services(&route("r", "{name: public-gateway}", "  - backendRefs: [{name: v1, port: 80}]\n"));
    assert!(b.warnings_vec().is_empty(), "{:#?}", b.warnings_vec());
    assert_eq!(
        texts(&b, Severity::Note),
        ["routes.yaml:5: note: HTTPRoute default/r: spec.parentRefs[0]: Gateway default/public-gateway: a north-south route, \
          served by the Gateway's implementation; meshroute ignores this parentRef"]
    );
}

/// `hostnames` on a route attached to a Service: ignored, and said so in a note.
#[test]
fn hostnames_on_a_service_parent_are_noted_as_ignored() {
    let text = route("r", "{group: \"\", kind: Service, name: echo}", "  - backendRefs: [{name: v1, port: 80}]\n")
        .replace("  rules:\n", "  hostnames: [echo.example.com]\n  rules:\n");
    let b = with_services(&text);
    assert_eq!(
        texts(&b, Severity::Note),
        ["routes.yaml:3: note: HTTPRoute default/r: spec.hostnames: ignored on a Service parent: a mesh route takes requests \
          by the Service they are sent to, whatever their Host"]
    );
    assert_eq!(goes(&b, "echo", "/", &["host: other.example.com"]), "v1");
}

/// A GRPCRoute backend on a port that declares nothing resolves (Envoy speaks the client's
/// protocol to it); on a port declared HTTP/1 it is ResolvedRefs False, UnsupportedProtocol.
#[test]
fn grpc_backends_on_undeclared_ports_resolve_and_on_http1_ports_are_unsupported_protocol() {
    let grpc = "---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{group: \"\", kind: Service, name: grpc-plain}]
  rules:
  - backendRefs: [{name: grpc-plain, port: 8080}, {name: echo, port: 80}]
";
    let b = with_services(grpc);
    let unresolved: Vec<(&str, &str)> = b.statuses[0].unresolved.iter().map(|u| (u.reason, u.path.as_str())).collect();
    assert_eq!(unresolved, [("UnsupportedProtocol", "spec.rules[0].backendRefs[1]")]);
    assert_eq!(
        b.statuses[0].unresolved[0].message,
        "Service default/echo: port 80 is declared HTTP/1 (named http); gRPC needs HTTP/2; a GRPCRoute cannot reach it"
    );
    let targets: Vec<_> = b.table.routes[0].rules[0].backends.iter().map(|backend| b.table.target(backend).unwrap()).collect();
    assert_eq!(targets[0].cluster.as_deref(), Some("outbound|8080||grpc-plain.default.svc.cluster.local"));
    assert_eq!(targets[1].unresolved.as_deref(), Some("UnsupportedProtocol"));
}

/// Kinds that play no part in routing sit beside the routes without blocking anything.
#[test]
fn a_directory_with_more_than_routes_builds() {
    let others = "apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec: {replicas: 2}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: b}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public}
spec: {gatewayClassName: x, listeners: []}
";
    let routes = route("r", "{group: \"\", kind: Service, name: echo, port: 80}", "  - backendRefs: [{name: v1, port: 80}]\n");
    let b = build(&[("services.yaml", SERVICES), ("others.yaml", others), ("routes.yaml", &routes)], &LastGood::default());
    assert!(b.is_valid() && b.warnings_vec().is_empty(), "{:#?}", b.diagnostics);
    assert_eq!(texts(&b, Severity::Note).len(), 4, "{:#?}", b.diagnostics);
    assert_eq!(goes(&b, "echo", "/", &[]), "v1");
}

const GOOD_A: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a}
spec:
  parentRefs: [{group: \"\", kind: Service, name: echo, port: 80}]
  rules:
  - backendRefs: [{name: v1, port: 80}]
";

const GOOD_B: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b}
spec:
  parentRefs: [{group: \"\", kind: Service, name: v1, port: 80}]
  rules:
  - backendRefs: [{name: v2, port: 80}]
";

/// One team breaks route `a` while another changes route `b` in the same update: `b`'s change
/// is published, `a` keeps its last good version, marked so in its status, and the error still
/// counts.
#[test]
fn a_broken_route_keeps_its_last_good_version_and_the_rest_is_published() {
    let first = build(&[("services.yaml", SERVICES), ("a.yaml", GOOD_A), ("b.yaml", GOOD_B)], &LastGood::default());
    assert!(first.is_valid());
    let last_good = LastGood::of(&first);

    let broken_a = GOOD_A.replace("port: 80}]\n  rules", "port: 80}]\n  rulez");
    let changed_b = GOOD_B.replace("name: v2", "name: echo");
    let next = build(&[("services.yaml", SERVICES), ("a.yaml", &broken_a), ("b.yaml", &changed_b)], &last_good);
    assert!(!next.is_valid());
    assert!(texts(&next, Severity::Error)[0].starts_with("a.yaml:6: HTTPRoute default/a: spec: unknown field \"rulez\""));
    assert_eq!(goes(&next, "echo", "/", &[]), "v1", "a's last good version");
    assert_eq!(goes(&next, "v1", "/", &[]), "echo", "b's change");
    let a = next.statuses.iter().find(|s| s.meta.name == "a").unwrap();
    assert!(a.meta.last_good.as_ref().is_some_and(|v| v.error.contains("unknown field")), "{:?}", a.meta.last_good);

    // Without a last good version (check, a first sync), the broken route is left out and
    // everything else goes on.
    let alone = build(&[("services.yaml", SERVICES), ("a.yaml", &broken_a), ("b.yaml", &changed_b)], &LastGood::default());
    assert_eq!(goes(&alone, "echo", "/", &[]), "echo", "no route on echo: passes through");
    assert_eq!(goes(&alone, "v1", "/", &[]), "echo");

    // Fixed: the current version is served again, unmarked.
    let fixed = build(
        &[("services.yaml", SERVICES), ("a.yaml", &GOOD_A.replace("name: v1", "name: v2")), ("b.yaml", &changed_b)],
        &LastGood::of(&next),
    );
    assert!(fixed.is_valid());
    assert_eq!(goes(&fixed, "echo", "/", &[]), "v2");
    assert!(fixed.statuses.iter().all(|s| s.meta.last_good.is_none()));
}

/// A file that no longer parses keeps the last good versions of the resources it held; a
/// resource deleted from a file that parses is gone.
#[test]
fn a_file_that_no_longer_parses_keeps_what_it_held_and_deletions_are_honoured() {
    let both = format!("{GOOD_A}---\n{GOOD_B}");
    let first = build(&[("services.yaml", SERVICES), ("routes.yaml", &both)], &LastGood::default());
    let unparsable = format!("{both}  - backendRefs: [{{name: v1\n");
    let next = build(&[("services.yaml", SERVICES), ("routes.yaml", &unparsable)], &LastGood::of(&first));
    assert!(!next.is_valid());
    assert_eq!((goes(&next, "echo", "/", &[]), goes(&next, "v1", "/", &[])), ("v1".into(), "v2".into()));

    let only_a = build(&[("services.yaml", SERVICES), ("routes.yaml", GOOD_A)], &LastGood::of(&next));
    assert!(only_a.is_valid());
    assert_eq!(goes(&only_a, "v1", "/", &[]), "v1", "route b was deleted: v1 passes through");
}

/// A Service that no longer validates keeps its last good version too, so the routes attached
/// to it keep their frontend.
#[test]
fn a_broken_service_keeps_its_last_good_version() {
    let first = build(&[("services.yaml", SERVICES), ("a.yaml", GOOD_A)], &LastGood::default());
    let broken = SERVICES.replace("- {name: http, port: 80}", "- {name: http, port: 0}");
    let next = build(&[("services.yaml", &broken), ("a.yaml", GOOD_A)], &LastGood::of(&first));
    assert!(!next.is_valid());
    assert_eq!(goes(&next, "echo", "/", &[]), "v1");
    let echo = next.manifests.services.iter().find(|s| s.meta.name == "echo").unwrap();
    assert!(echo.meta.last_good.is_some());
}

/// RequestHeaderModifier and ResponseHeaderModifier at rule and backendRef level: `explain`
/// lists, per backend, the changes in the order they apply (the rule's, then the backendRef's).
#[test]
fn header_modifiers_show_in_explain_rule_then_backend() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Who, value: rule}], add: [{name: x-add, value: a}], remove: [x-gone]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-served-by, value: mesh}]}
    backendRefs:
    - name: v1
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {set: [{name: x-who, value: v1}]}
",
    ));
    assert!(b.is_valid(), "{:#?}", b.diagnostics);
    let headers: Vec<String> = Vec::new();
    let e = explain(&b, &Query { to: "echo", namespace: "default", method: "GET", path: "/", headers: &headers, grpc: None })
        .unwrap();
    let json = serde_json::to_value(&e.backends[0]).unwrap();
    assert_eq!(
        json["request_headers"],
        serde_json::json!([{"remove": "x-gone"}, {"set": ["x-who", "rule"]}, {"add": ["x-add", "a"]}, {"set": ["x-who", "v1"]}])
    );
    assert_eq!(json["response_headers"], serde_json::json!([{"set": ["x-served-by", "mesh"]}]));
}

/// A matched rule's ResponseHeaderModifier applies to meshroute's own 500 for it.
#[test]
fn a_response_header_modifier_applies_to_the_rules_own_500() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-served-by, value: mesh}]}
    backendRefs: [{name: nowhere, port: 80}]
",
    ));
    let headers: Vec<String> = Vec::new();
    let e = explain(&b, &Query { to: "echo", namespace: "default", method: "GET", path: "/", headers: &headers, grpc: None })
        .unwrap();
    assert_eq!(e.status, 500);
    assert_eq!(
        e.reply_headers,
        Some(vec![("content-type".to_owned(), "text/plain".to_owned()), ("x-served-by".to_owned(), "mesh".to_owned())])
    );
}

/// RequestRedirect: `explain` answers with the status and the whole `Location`, by the API's
/// port rules (the Service port dialled is the listener port).
#[test]
fn redirects_explain_with_their_location() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo}",
        "  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}
  - filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https}
",
    ));
    assert!(b.is_valid(), "{:#?}", b.diagnostics);
    let location = |to: &str, path: &str| {
        let headers: Vec<String> = Vec::new();
        let e = explain(&b, &Query { to, namespace: "default", method: "GET", path, headers: &headers, grpc: None }).unwrap();
        let location = e.reply_headers.unwrap_or_default().into_iter().find(|(n, _)| n == "location").map(|(_, v)| v);
        (e.status, location.unwrap_or_default())
    };
    assert_eq!(location("echo:8080", "/old/a?q=1"), (301, "http://example.com:8080/new/a?q=1".to_owned()));
    assert_eq!(location("echo", "/old"), (301, "http://example.com/new".to_owned()));
    assert_eq!(location("echo:8080", "/x"), (302, "https://echo/x".to_owned()));
}

/// URLRewrite: `explain` shows the path and Host the backend sees; a backendRef's rewrite wins
/// over its rule's for the part it sets.
#[test]
fn rewrites_explain_with_the_path_and_host_the_backend_sees() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - matches: [{path: {type: PathPrefix, value: /prefix}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rule.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs:
    - name: v1
      port: 80
      filters:
      - type: URLRewrite
        urlRewrite: {hostname: v1.example.com}
",
    ));
    assert!(b.is_valid(), "{:#?}", b.diagnostics);
    let headers: Vec<String> = Vec::new();
    let e = explain(
        &b,
        &Query { to: "echo", namespace: "default", method: "GET", path: "/prefix/one/two?x=1", headers: &headers, grpc: None },
    )
    .unwrap();
    assert_eq!((e.backends[0].path.as_deref(), e.backends[0].host.as_deref()), (Some("/one/two?x=1"), Some("v1.example.com")));
}

/// The CRD's rules across a rule: a redirect takes no backendRefs, not both redirect and
/// rewrite, ReplacePrefixMatch needs one PathPrefix match, no redirect on a backendRef.
#[test]
fn redirect_and_rewrite_rules_are_validated_as_the_crd_does() {
    let errors = |rules: &str| -> Vec<String> {
        let b = with_services(&route("r", "{group: \"\", kind: Service, name: echo, port: 80}", rules));
        b.errors().map(|d| d.to_string()).collect()
    };
    let e =
        errors("  - filters: [{type: RequestRedirect, requestRedirect: {port: 81}}]\n    backendRefs: [{name: v1, port: 80}]\n");
    assert!(e.iter().any(|e| e.contains("takes no backendRefs")), "{e:#?}");
    let e = errors(
        "  - filters: [{type: RequestRedirect, requestRedirect: {port: 81}}, {type: URLRewrite, urlRewrite: {hostname: a.example}}]\n",
    );
    assert!(e.iter().any(|e| e.contains("not both")), "{e:#?}");
    let e = errors(
        "  - matches: [{path: {value: /a}}, {path: {value: /b}}]\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]\n    backendRefs: [{name: v1, port: 80}]\n",
    );
    assert!(e.iter().any(|e| e.contains("exactly one match, and it must be a PathPrefix")), "{e:#?}");
    let e = errors("  - backendRefs: [{name: v1, port: 80, filters: [{type: RequestRedirect, requestRedirect: {port: 81}}]}]\n");
    assert!(e.iter().any(|e| e.contains("put it on the rule")), "{e:#?}");
    let e = errors("  - filters: [{type: RequestRedirect, requestRedirect: {statusCode: 304}}]\n");
    assert!(e.iter().any(|e| e.contains("304 is not one of 301, 302, 303, 307, 308")), "{e:#?}");
}

/// A rule's `name` is kept and shown by `explain`; two rules of one route may not share one.
#[test]
fn named_rules_show_in_explain_and_must_be_unique() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - name: canary\n    matches: [{headers: [{name: x-canary, value: \"yes\"}]}]\n    backendRefs: [{name: v2, port: 80}]\n  - name: stable\n    backendRefs: [{name: v1, port: 80}]\n",
    ));
    assert!(b.is_valid(), "{:#?}", b.diagnostics);
    let ask = |headers: &[&str]| {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        explain(&b, &Query { to: "echo", namespace: "default", method: "GET", path: "/", headers: &headers, grpc: None })
            .unwrap()
            .rule_name
    };
    assert_eq!(ask(&["x-canary: yes"]).as_deref(), Some("canary"));
    assert_eq!(ask(&[]).as_deref(), Some("stable"));
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - name: same\n    backendRefs: [{name: v2, port: 80}]\n  - name: same\n    backendRefs: [{name: v1, port: 80}]\n",
    ));
    assert!(b.errors().any(|e| e.to_string().contains("\"same\" is already the name of spec.rules[0]")), "{:#?}", b.diagnostics);
}

/// A filter meshroute does not implement drops its rule, as the API prescribes for a partly
/// invalid route: the rule still takes its requests and answers 500, the route's other rules
/// are served, and the status says PartiallyInvalid; a route left with no rule is not accepted.
#[test]
fn an_unsupported_filter_drops_its_rule_and_the_rest_is_served() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - matches: [{path: {value: /mirrored}}]
    filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Filter, name: f}}]
    backendRefs: [{name: v1, port: 80}]
  - backendRefs: [{name: v2, port: 80}]
",
    ));
    assert!(b.is_valid(), "{:#?}", b.diagnostics);
    assert_eq!(goes(&b, "echo", "/mirrored/x", &[]), "500");
    assert_eq!(goes(&b, "echo", "/other", &[]), "v2");
    assert_eq!(b.statuses[0].dropped.len(), 1);
    let text = crate::check::status_text(&b);
    assert!(text.contains("PartiallyInvalid: True (UnsupportedValue): Dropped Rule spec.rules[0]"), "{text}");
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - filters: [{type: CORS, cors: {allowOrigins: [\"*\"]}}]\n    backendRefs: [{name: v1, port: 80}]\n",
    ));
    let ParentStatus::Mesh { accepted, .. } = &b.statuses[0].parents[0] else { panic!() };
    assert_eq!((accepted.status, accepted.reason), (false, "UnsupportedValue"));
    assert_eq!(goes(&b, "echo", "/", &[]), "echo", "nothing attached: echo passes through");
}

/// A RequestMirror's backendRef resolves like a backendRef; one that does not is the route's
/// `ResolvedRefs: False` and a warning, and copies nothing: the rule itself is served as usual.
/// The rule's mirrors come first, then the backendRef's own.
#[test]
fn request_mirrors_resolve_into_the_table_and_an_unresolved_one_is_left_out_with_a_warning() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 80}, percent: 25}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: gone, port: 80}}}
    backendRefs:
    - name: v1
      port: 80
      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: echo, port: 80}}}]
",
    ));
    assert!(b.is_valid(), "{:#?}", b.diagnostics);
    assert_eq!(goes(&b, "echo", "/", &[]), "v1");
    let unresolved: Vec<(&str, &str)> = b.statuses[0].unresolved.iter().map(|u| (u.reason, u.path.as_str())).collect();
    assert_eq!(unresolved, [("BackendNotFound", "spec.rules[0].filters[1].requestMirror.backendRef")]);
    let warning = b.diagnostics.iter().map(ToString::to_string).find(|d| d.contains("ResolvedRefs")).unwrap_or_default();
    assert!(
        warning.contains("ResolvedRefs False (BackendNotFound): Service default/gone not found; no copies are sent"),
        "{warning}"
    );
    let rule = &b.table.routes[0].rules[0];
    let mirrors = |f: &meshroute_filter::document::FiltersDoc| {
        f.mirrors.iter().map(|m| (m.cluster.clone(), m.fraction)).collect::<Vec<_>>()
    };
    let quarter = Some(meshroute_filter::document::FractionDoc { numerator: 25, denominator: 100 });
    assert_eq!(mirrors(&rule.filters), [("outbound|80||v2.default.svc.cluster.local".to_owned(), quarter)]);
    assert_eq!(mirrors(&rule.backends[0].filters), [("outbound|80||echo.default.svc.cluster.local".to_owned(), None)]);
    let e = explain(&b, &Query { to: "echo", namespace: "default", method: "GET", path: "/", headers: &[], grpc: None }).unwrap();
    let shown: Vec<(String, f64)> = e.backends[0].mirrors.iter().map(|m| (m.name.clone(), m.percent)).collect();
    assert_eq!(shown, [("v2".to_owned(), 25.0), ("echo".to_owned(), 100.0)]);
}

/// Native mode mirrors per route: backendRefs of a split that mirror differently are warned of.
#[test]
fn backend_refs_that_mirror_differently_are_a_warning_for_native_mode() {
    let b = with_services(&route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        "  - backendRefs:
    - name: v1
      port: 80
      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: echo, port: 80}}}]
    - {name: v2, port: 80}
",
    ));
    let warnings: Vec<String> = b.diagnostics.iter().map(ToString::to_string).filter(|d| d.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("spec.rules[0].backendRefs: its backendRefs mirror differently"), "{}", warnings[0]);
}

/// What proxyless gRPC clients cannot honour is a warning on the routes they call (GRPCRoutes,
/// HTTPRoutes on ports declared HTTP/2), never on an HTTPRoute of a plain HTTP port.
#[test]
fn proxyless_gaps_are_warnings_on_the_routes_grpc_clients_call_only() {
    let modifier = "[{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: b}]}}]";
    let grpc = format!(
        "---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: g}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: grpc-plain}}]
  rules:
  - filters: {modifier}
    backendRefs: [{{name: grpc-plain, port: 8080}}]
"
    );
    let http = route(
        "r",
        "{group: \"\", kind: Service, name: echo, port: 80}",
        &format!("  - filters: {modifier}\n    backendRefs: [{{name: v1, port: 80}}]\n"),
    );
    let mut b = with_services(&format!("{http}{grpc}"));
    crate::check::with_proxyless_gaps(&mut b);
    let proxyless: Vec<String> =
        b.diagnostics.iter().map(ToString::to_string).filter(|d| d.contains("proxyless gRPC clients")).collect();
    assert_eq!(proxyless.len(), 1, "{proxyless:#?}");
    assert!(proxyless[0].contains("warning: GRPCRoute default/g: spec.rules[0].filters"), "{}", proxyless[0]);
}
