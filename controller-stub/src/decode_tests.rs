//! One test per validation rule, each with the exact message a user sees.

use super::decode_text;

const ROUTE_HEAD: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo-route
spec:
  parentRefs:
  - name: echo-service
    kind: Service
    group: \"\"
";

/// The errors for an HTTPRoute whose `rules:` section is `rules` (indented as under spec).
fn route_errors(rules: &str) -> Vec<String> {
    decode_text("routes/echo.yaml", &format!("{ROUTE_HEAD}  rules:\n{rules}")).1
}

fn one(errors: Vec<String>) -> String {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap_or_default()
}

#[test]
fn weight_out_of_range_names_file_line_resource_and_field() {
    let e =
        route_errors("  - backendRefs:\n    - name: a\n      port: 80\n    - name: b\n      port: 80\n      weight: 1000001\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:16: HTTPRoute default/echo-route: spec.rules[0].backendRefs[1].weight: must be between 0 and 1000000"
    );
}

#[test]
fn negative_weight_is_refused() {
    let e = route_errors("  - backendRefs:\n    - name: a\n      port: 80\n      weight: -1\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:14: HTTPRoute default/echo-route: spec.rules[0].backendRefs[0].weight: must be between 0 and 1000000"
    );
}

#[test]
fn service_backend_needs_a_port() {
    let e = route_errors("  - backendRefs:\n    - name: a\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:12: HTTPRoute default/echo-route: spec.rules[0].backendRefs[0].port: required for a Service backend"
    );
}

#[test]
fn port_out_of_range_is_refused() {
    let e = route_errors("  - backendRefs:\n    - name: a\n      port: 70000\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].backendRefs[0].port: must be between 1 and 65535"
    );
}

#[test]
fn path_must_be_absolute() {
    let e = route_errors("  - matches:\n    - path:\n        type: PathPrefix\n        value: v2\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:14: HTTPRoute default/echo-route: spec.rules[0].matches[0].path.value: must be an absolute path (start with '/')"
    );
}

#[test]
fn path_with_double_slash_is_refused() {
    let e = route_errors("  - matches:\n    - path:\n        type: Exact\n        value: /a//b\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:14: HTTPRoute default/echo-route: spec.rules[0].matches[0].path.value: must not contain '//'"
    );
}

#[test]
fn path_with_query_is_refused() {
    let e = route_errors("  - matches:\n    - path:\n        value: /a?b=1\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].matches[0].path.value: must not contain '?' (match query parameters with queryParams)"
    );
}

#[test]
fn path_with_encoded_slash_is_refused() {
    let e = route_errors("  - matches:\n    - path:\n        value: /a%2Fb\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].matches[0].path.value: must not contain '%2f' or '%2F'"
    );
}

#[test]
fn path_type_enum() {
    let e = route_errors("  - matches:\n    - path:\n        type: Prefix\n        value: /a\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].matches[0].path.type: \"Prefix\" is not one of Exact, PathPrefix, RegularExpression"
    );
}

#[test]
fn regex_must_compile_with_the_filter_regex_engine() {
    let e = route_errors("  - matches:\n    - path:\n        type: RegularExpression\n        value: \"/a(\"\n");
    let e = one(e);
    assert!(
        e.starts_with(
            "routes/echo.yaml:14: HTTPRoute default/echo-route: spec.rules[0].matches[0].path.value: invalid regex \"/a(\": "
        ),
        "{e}"
    );
}

#[test]
fn header_regex_must_compile() {
    let e =
        route_errors("  - matches:\n    - headers:\n      - type: RegularExpression\n        name: x\n        value: \"[\"\n");
    assert!(one(e).starts_with(
        "routes/echo.yaml:15: HTTPRoute default/echo-route: spec.rules[0].matches[0].headers[0].value: invalid regex"
    ));
}

#[test]
fn header_name_must_be_a_token() {
    let e = route_errors("  - matches:\n    - headers:\n      - name: x version\n        value: v2\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].matches[0].headers[0].name: \"x version\" is not a valid header name (an RFC 7230 token: letters, digits and !#$%&'*+-.^_`|~)"
    );
}

/// HTTPHeaderMatch: only the first entry of a name (case-insensitively) counts; later ones MUST
/// be ignored. A warning names the ignored one; the route stays valid.
#[test]
fn a_repeated_header_name_is_ignored_with_a_warning() {
    let text = format!("{ROUTE_HEAD}  rules:\n  - matches:\n    - headers:\n      - name: X-V\n        value: a\n      - name: x-v\n        value: b\n");
    let (m, diagnostics) = decode_text("routes/echo.yaml", &text);
    assert_eq!(
        one(diagnostics),
        "routes/echo.yaml:15: warning: HTTPRoute default/echo-route: spec.rules[0].matches[0].headers[1]: ignored: \
         spec.rules[0].matches[0].headers[0] already matches \"x-v\", and only the first match of a name counts"
    );
    let headers = &m.http_routes[0].rules[0].matches[0].headers;
    assert_eq!(headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect::<Vec<_>>(), [("X-V", "a")]);
}

/// HTTPQueryParamMatch: the same for query parameters, whose names are compared exactly.
#[test]
fn a_repeated_query_parameter_name_is_ignored_with_a_warning() {
    let text = format!(
        "{ROUTE_HEAD}  rules:\n  - matches:\n    - queryParams:\n      - {{name: a, value: one}}\n      - {{name: A, value: two}}\n      - {{name: a, value: three}}\n"
    );
    let (m, diagnostics) = decode_text("routes/echo.yaml", &text);
    assert_eq!(
        one(diagnostics),
        "routes/echo.yaml:15: warning: HTTPRoute default/echo-route: spec.rules[0].matches[0].queryParams[2]: ignored: \
         spec.rules[0].matches[0].queryParams[0] already matches \"a\", and only the first match of a name counts"
    );
    let params = &m.http_routes[0].rules[0].matches[0].query_params;
    assert_eq!(params.iter().map(|q| q.value.as_str()).collect::<Vec<_>>(), ["one", "two"]);
}

#[test]
fn header_value_must_be_a_string() {
    let e = route_errors("  - matches:\n    - headers:\n      - name: x-v\n        value: 2\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:14: HTTPRoute default/echo-route: spec.rules[0].matches[0].headers[0].value: must be a string, found the number 2 (quote it)"
    );
}

#[test]
fn method_enum() {
    let e = route_errors("  - matches:\n    - method: get\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:12: HTTPRoute default/echo-route: spec.rules[0].matches[0].method: \"get\" is not one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH (did you mean GET?)"
    );
}

#[test]
fn too_many_headers() {
    let headers: String = (0..17).map(|i| format!("      - name: h{i}\n        value: v\n")).collect();
    let e = route_errors(&format!("  - matches:\n    - headers:\n{headers}"));
    assert_eq!(
        one(e),
        "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].matches[0].headers: must have at most 16 items, has 17"
    );
}

#[test]
fn too_many_rules() {
    let rules: String = (0..17).map(|_| "  - backendRefs: []\n").collect();
    let e = route_errors(&rules);
    assert_eq!(one(e), "routes/echo.yaml:11: HTTPRoute default/echo-route: spec.rules: must have at most 16 items, has 17");
}

#[test]
fn too_many_backend_refs() {
    let refs: String = (0..17).map(|i| format!("    - name: b{i}\n      port: 80\n")).collect();
    let e = route_errors(&format!("  - backendRefs:\n{refs}"));
    assert_eq!(
        one(e),
        "routes/echo.yaml:12: HTTPRoute default/echo-route: spec.rules[0].backendRefs: must have at most 16 items, has 17"
    );
}

#[test]
fn too_many_parent_refs() {
    let parents: String = (0..33).map(|i| format!("  - name: s{i}\n    kind: Service\n    group: \"\"\n")).collect();
    let text = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n  parentRefs:\n{parents}"
    );
    let e = decode_text("r.yaml", &text).1;
    assert_eq!(one(e), "r.yaml:7: HTTPRoute default/r: spec.parentRefs: must have at most 32 items, has 33");
}

#[test]
fn too_many_matches_in_one_rule() {
    let matches: String = (0..65).map(|i| format!("    - path:\n        value: /p{i}\n")).collect();
    let e = route_errors(&format!("  - matches:\n{matches}"));
    assert_eq!(
        one(e),
        "routes/echo.yaml:12: HTTPRoute default/echo-route: spec.rules[0].matches: must have at most 64 items, has 65"
    );
}

#[test]
fn too_many_matches_in_one_route() {
    let matches: String = (0..60).map(|i| format!("    - path:\n        value: /p{i}\n")).collect();
    let rules: String = (0..3).map(|_| format!("  - matches:\n{matches}")).collect();
    let e = route_errors(&rules);
    assert_eq!(
        one(e),
        "routes/echo.yaml:11: HTTPRoute default/echo-route: spec.rules: the rules have 180 matches in all; a route may have at most 128"
    );
}

#[test]
fn unknown_field_with_near_miss_hint() {
    let e = route_errors("  - backendRef:\n    - name: a\n      port: 80\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:11: HTTPRoute default/echo-route: spec.rules[0]: unknown field \"backendRef\" (did you mean \"backendRefs\"?)"
    );
}

/// A filter type meshroute does not implement yet is never ignored: a warning on its `type`
/// says its rule is dropped.
#[test]
fn unsupported_filters_drop_their_rule_with_a_warning() {
    let e = route_errors("  - filters:\n    - type: CORS\n      cors: {allowOrigins: [\"*\"]}\n");
    assert_eq!(
        one(e),
        "routes/echo.yaml:12: warning: HTTPRoute default/echo-route: spec.rules[0].filters[0].type: CORS is not supported by meshroute yet: \
         the rule is dropped and the requests it would take get 500"
    );
}

/// HTTPRequestMirrorFilter as the CRD validates it: a backendRef with a port, at most one of
/// `percent` (0 to 100) and `fraction` (numerator at most denominator, denominator above 0);
/// repeated RequestMirror filters are allowed.
#[test]
fn request_mirror_filters_are_validated_as_the_crd_does() {
    let ok = route_errors(
        "  - filters:\n    - type: RequestMirror\n      requestMirror: {backendRef: {name: m, port: 80}, percent: 50}\n    - type: RequestMirror\n      requestMirror: {backendRef: {name: n, port: 80}, fraction: {numerator: 1}}\n",
    );
    assert_eq!(ok.len(), 2, "{ok:#?}");
    assert!(ok.iter().all(|e| e.contains(": note: ") && e.contains("the static Istio EnvoyFilter layout does not")), "{ok:#?}");
    for (mirror, expected) in [
        ("{}", "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestMirror.backendRef: required"),
        (
            "{backendRef: {name: m}}",
            "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestMirror.backendRef.port: required for a Service backend",
        ),
        (
            "{backendRef: {name: m, port: 80}, percent: 101}",
            "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestMirror.percent: must be between 0 and 100",
        ),
        (
            "{backendRef: {name: m, port: 80}, percent: 5, fraction: {numerator: 1}}",
            "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestMirror.fraction: only one of percent or fraction may be specified",
        ),
        (
            "{backendRef: {name: m, port: 80}, fraction: {numerator: 3, denominator: 2}}",
            "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestMirror.fraction: numerator 3 must be less than or equal to denominator 2",
        ),
        (
            "{backendRef: {name: m, port: 80}, fraction: {numerator: 0, denominator: 0}}",
            "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestMirror.fraction.denominator: must be between 1 and 2147483647",
        ),
    ] {
        let rules = format!("  - filters:\n    - type: RequestMirror\n      requestMirror: {mirror}\n");
        let errors = route_errors(&rules).into_iter().filter(|e| !e.contains(": note: ")).collect();
        assert_eq!(one(errors), expected, "{mirror}");
    }
}

/// HTTPHeaderFilter as the CRD validates it: the type's own field is required and every other
/// one forbidden, a modifier type at most once, names unique ignoring case, `host` refused.
#[test]
fn header_modifier_filters_are_validated_as_the_crd_does() {
    let ok = route_errors(
        "  - filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier:\n        set: [{name: x-a, value: one}]\n        add: [{name: x-b, value: two}]\n        remove: [x-c]\n    backendRefs:\n    - name: v1\n      port: 80\n      filters:\n      - type: ResponseHeaderModifier\n        responseHeaderModifier: {set: [{name: x-d, value: three}]}\n",
    );
    assert!(ok.is_empty(), "{ok:#?}");
    for (filters, expected) in [
        (
            "    - type: RequestHeaderModifier\n",
            "routes/echo.yaml:12: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestHeaderModifier: required",
        ),
        (
            "    - type: RequestHeaderModifier\n      requestHeaderModifier: {}\n      responseHeaderModifier: {}\n",
            "routes/echo.yaml:14: HTTPRoute default/echo-route: spec.rules[0].filters[0].responseHeaderModifier: must not be set when type is RequestHeaderModifier",
        ),
        (
            "    - type: RequestHeaderModifier\n      requestHeaderModifier: {}\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {}\n",
            "routes/echo.yaml:14: HTTPRoute default/echo-route: spec.rules[0].filters[1].type: RequestHeaderModifier filter cannot be repeated",
        ),
        (
            "    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: [{name: X-A, value: a}, {name: x-a, value: b}]}\n",
            "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestHeaderModifier.set[1].name: \"x-a\" is already spec.rules[0].filters[0].requestHeaderModifier.set[0]",
        ),
        (
            "    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: [{name: Host, value: a}]}\n",
            "routes/echo.yaml:13: HTTPRoute default/echo-route: spec.rules[0].filters[0].requestHeaderModifier.set[0].name: Host cannot be changed by a header modifier (Envoy refuses it); rewrite it with URLRewrite's hostname",
        ),
    ] {
        assert_eq!(one(route_errors(&format!("  - filters:\n{filters}"))), expected, "{filters}");
    }
}

#[test]
fn product_page_apiversion_without_version_gets_a_hint() {
    let text = include_str!("../tests/fixtures/product-page/httproute.yaml");
    let (m, e) = decode_text("product-page/httproute.yaml", text);
    assert_eq!(
        one(e),
        "product-page/httproute.yaml:1: HTTPRoute default/echo-route: apiVersion: \"gateway.networking.k8s.io\" has no version; did you mean gateway.networking.k8s.io/v1?"
    );
    // Decoding carried on as v1, so every other problem would have been reported too; a route
    // that does not validate is never published.
    assert!(m.http_routes.is_empty());
}

#[test]
fn product_page_grpcroute_text_gets_one_error_per_typo_with_a_hint() {
    let text = include_str!("../tests/fixtures/product-page/grpcroute.yaml");
    let (m, mut errors) = decode_text("product-page/grpcroute.yaml", text);
    errors.sort_by_key(|e| e.split(':').nth(1).and_then(|line| line.parse::<usize>().ok()));
    assert_eq!(
        errors,
        [
            "product-page/grpcroute.yaml:1: GRPCRoute default/echo-route: apiVersion: \"gateway.networking.k8s.io\" has no version; did you mean gateway.networking.k8s.io/v1?",
            "product-page/grpcroute.yaml:11: invalid YAML: this list item is indented 3 spaces, and the other items of its list (line 18) 2: the items of one list must all start in the same column",
            "product-page/grpcroute.yaml:13: invalid YAML: missing space after \"service:\": \"service:echo_basic.grpcecho.GrpcEcho\" reads as one string, not a key and its value; write \"service: echo_basic.grpcecho.GrpcEcho\"",
            "product-page/grpcroute.yaml:20: invalid YAML: missing space after \"service:\": \"service:echo_basic.grpcecho.GrpcEcho\" reads as one string, not a key and its value; write \"service: echo_basic.grpcecho.GrpcEcho\"",
        ]
    );
    // The repaired route was decoded, which is how its apiVersion came to be checked; what
    // repaired text holds is a guess, never published.
    assert!(m.grpc_routes.is_empty());
}

#[test]
fn yaml_that_cannot_be_repaired_gets_the_parser_error() {
    let e = one(decode_text("b.yaml", "a: [1, 2\nb: 3\n").1);
    assert!(e.starts_with("b.yaml:"), "{e}");
    assert!(e.contains(": invalid YAML: "), "{e}");
}

#[test]
fn glued_service_key_as_a_scalar_gets_the_hint() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: g\nspec:\n  rules:\n  - matches:\n    - method:\n        service:echo_basic.grpcecho.GrpcEcho\n";
    assert_eq!(
        one(decode_text("g.yaml", text).1),
        "g.yaml:9: GRPCRoute default/g: spec.rules[0].matches[0].method: must be a mapping, found the string \"service:echo_basic.grpcecho.GrpcEcho\" (missing space after \"service:\")"
    );
}

#[test]
fn grpc_method_match_needs_service_or_method() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: g\nspec:\n  rules:\n  - matches:\n    - method:\n        type: Exact\n";
    assert_eq!(
        one(decode_text("g.yaml", text).1),
        "g.yaml:9: GRPCRoute default/g: spec.rules[0].matches[0].method: one or both of 'service' or 'method' must be specified"
    );
}

#[test]
fn grpc_service_syntax() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata:\n  name: g\nspec:\n  rules:\n  - matches:\n    - method:\n        service: echo/Echo\n";
    assert_eq!(
        one(decode_text("g.yaml", text).1),
        "g.yaml:9: GRPCRoute default/g: spec.rules[0].matches[0].method.service: \"echo/Echo\" is not a valid gRPC service name (a dotted name like echo_basic.grpcecho.GrpcEcho)"
    );
}

#[test]
fn product_page_grpcroute_with_typos_fixed_decodes() {
    let text = include_str!("../tests/fixtures/product-page/grpcroute.yaml")
        .replace("apiVersion:  gateway.networking.k8s.io\n", "apiVersion: gateway.networking.k8s.io/v1\n")
        .replace("   - matches", "  - matches")
        .replace("service:echo", "service: echo");
    let (m, e) = decode_text("g.yaml", &text);
    assert!(e.is_empty(), "{e:#?}");
    let rule = &m.grpc_routes[0].rules[1];
    let method = rule.matches[0].method.as_ref().unwrap();
    assert_eq!(method.service.as_deref(), Some("echo_basic.grpcecho.GrpcEcho"));
    assert_eq!(method.method.as_deref(), Some("EchoTwo"));
    assert_eq!(rule.backend_refs[0].port, Some(8080));
}

/// A directory holds more than routes: kinds that play no part are skipped with a note, Gateway
/// API kinds meshroute does not serve are noted as such, cluster-scoped objects are named
/// without a namespace, and only a misspelling of a kind meshroute reads is an error.
#[test]
fn other_kinds_are_noted_and_only_misspellings_are_errors() {
    let note = |text: &str| one(decode_text("d.yaml", text).1);
    assert_eq!(
        note("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n"),
        "d.yaml:2: note: Deployment default/d: skipped: plays no part in mesh routing"
    );
    assert_eq!(
        note("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n"),
        "d.yaml:2: note: Namespace prod: skipped: plays no part in mesh routing"
    );
    assert_eq!(
        note("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ops}\ndata: {a: b}\n"),
        "d.yaml:2: note: ConfigMap ops/c: skipped: plays no part in mesh routing"
    );
    for kind in ["Gateway", "TCPRoute", "ReferenceGrant"] {
        assert_eq!(
            note(&format!("apiVersion: gateway.networking.k8s.io/v1\nkind: {kind}\nmetadata: {{name: g}}\nspec: {{}}\n")),
            format!("d.yaml:2: note: {kind} default/g: skipped: meshroute serves HTTPRoutes and GRPCRoutes attached to Services (the mesh), not {kind}")
        );
    }
    for (kind, meant) in [("HTTPRoutes", "HTTPRoute"), ("GrpcRoute", "GRPCRoute"), ("Servic", "Service")] {
        let e = one(decode_text("d.yaml", &format!("apiVersion: v1\nkind: {kind}\nmetadata: {{name: r}}\n")).1);
        assert!(
            e.starts_with(&format!(
                "d.yaml:2: {kind} default/r: kind: kind \"{kind}\" is not one meshroute reads (did you mean {meant}?)"
            )),
            "{e}"
        );
    }
}

#[test]
fn wrong_apiversion_for_a_known_kind() {
    let e = one(decode_text("s.yaml", "apiVersion: v2\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n").1);
    assert_eq!(e, "s.yaml:1: Service default/s: apiVersion: \"v2\" is not supported for Service; use v1");
}

#[test]
fn name_is_required_and_dns1123() {
    let e =
        one(decode_text("s.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: x\nspec:\n  ports:\n  - port: 80\n").1);
    assert_eq!(e, "s.yaml:4: metadata.name: required");
    let e = one(decode_text(
        "r.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: Echo_Route\nspec: {}\n",
    )
    .1);
    assert_eq!(
        e,
        "r.yaml:4: HTTPRoute default/Echo_Route: metadata.name: \"Echo_Route\" is not a valid name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (RFC 1123)"
    );
}

#[test]
fn creation_timestamp_must_be_rfc3339() {
    let e = one(
        decode_text("r.yaml", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\n  creationTimestamp: yesterday\nspec: {}\n").1,
    );
    assert_eq!(
        e,
        "r.yaml:5: HTTPRoute default/r: metadata.creationTimestamp: \"yesterday\" is not an RFC 3339 timestamp (like 2024-05-01T10:00:00Z)"
    );
}

#[test]
fn duplicate_resources_name_both_places() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: default\nspec:\n  ports:\n  - port: 81\n";
    assert_eq!(one(decode_text("s.yaml", text).1), "s.yaml:12: Service default/s: defined twice: also at s.yaml:4");
}

#[test]
fn service_ports_targetport_appprotocol_and_headless() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  clusterIP: None\n  ports:\n  - name: http\n    port: 80\n    targetPort: web\n    appProtocol: http\n  - name: dns\n    port: 53\n    protocol: UDP\n  - name: grpc\n    port: 8080\n    targetPort: 9090\n";
    let (m, e) = decode_text("s.yaml", text);
    assert!(e.is_empty(), "{e:#?}");
    let s = &m.services[0];
    assert!(s.cluster_ips.is_empty());
    assert_eq!(s.ports.len(), 2, "the UDP port is left out");
    assert_eq!(s.ports[0].target_port, Some(crate::model::TargetPort::Name("web".into())));
    assert_eq!(s.ports[0].app_protocol.as_deref(), Some("http"));
    assert_eq!(s.ports[1].target_port, Some(crate::model::TargetPort::Number(9090)));
}

#[test]
fn service_port_names_required_when_several() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n  - name: b\n    port: 81\n";
    assert_eq!(
        one(decode_text("s.yaml", text).1),
        "s.yaml:7: Service default/s: spec.ports[0].name: required when the Service has more than one port"
    );
}

#[test]
fn service_cluster_ip_must_be_an_ip() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  clusterIP: 10.0.0.300\n  ports:\n  - port: 80\n";
    assert_eq!(
        one(decode_text("s.yaml", text).1),
        "s.yaml:6: Service default/s: spec.clusterIP: \"10.0.0.300\" is not an IP address"
    );
}

#[test]
fn two_services_cannot_share_a_cluster_ip() {
    let svc = |n: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {n}\nspec:\n  clusterIP: 10.0.0.1\n  ports:\n  - port: 80\n")
    };
    let text = format!("{}---\n{}", svc("a"), svc("b"));
    assert_eq!(
        one(decode_text("s.yaml", &text).1),
        "s.yaml:13: Service default/b: spec.clusterIP: ClusterIP 10.0.0.1 is also the ClusterIP of Service default/a (s.yaml:4)"
    );
}

#[test]
fn endpoint_slice_needs_the_service_name_label() {
    let text = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: e\naddressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n";
    assert_eq!(
        one(decode_text("e.yaml", text).1),
        "e.yaml:4: EndpointSlice default/e: metadata.labels: the label kubernetes.io/service-name is required: it names the Service these endpoints serve"
    );
}

#[test]
fn endpoint_slice_decodes_ports_addresses_and_readiness() {
    let text = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: e\n  labels:\n    kubernetes.io/service-name: echo-v1\naddressType: IPv4\nports:\n- name: http\n  port: 8080\nendpoints:\n- addresses: [\"127.0.0.1\"]\n- addresses: [\"127.0.0.2\"]\n  conditions:\n    ready: false\n";
    let (m, e) = decode_text("e.yaml", text);
    assert!(e.is_empty(), "{e:#?}");
    let s = &m.endpoint_slices[0];
    assert_eq!(s.service_name, "echo-v1");
    assert_eq!(s.ports, vec![crate::model::EndpointPort { name: Some("http".into()), port: 8080 }]);
    assert!(s.endpoints[0].ready && !s.endpoints[1].ready);
}

#[test]
fn endpoint_address_must_match_address_type() {
    let text = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: e\n  labels:\n    kubernetes.io/service-name: s\naddressType: IPv4\nendpoints:\n- addresses:\n  - \"::1\"\n";
    assert_eq!(
        one(decode_text("e.yaml", text).1),
        "e.yaml:10: EndpointSlice default/e: endpoints[0].addresses[0]: \"::1\" is not an IPv4 address"
    );
}

#[test]
fn defaults_are_applied_as_the_api_server_does() {
    let text = format!("{ROUTE_HEAD}  rules:\n  - backendRefs:\n    - name: a\n      port: 80\n");
    let (m, e) = decode_text("r.yaml", &text);
    assert!(e.is_empty(), "{e:#?}");
    let route = &m.http_routes[0];
    assert_eq!(route.parent_refs[0].namespace, "default");
    let rule = &route.rules[0];
    assert_eq!(rule.matches.len(), 1);
    assert_eq!(rule.matches[0].path.as_ref().map(|p| p.value.as_str()), Some("/"));
    assert_eq!(rule.backend_refs[0].weight, 1);
    assert_eq!(rule.backend_refs[0].kind, "Service");
    assert_eq!(rule.backend_refs[0].group, "");
}

#[test]
fn parent_refs_to_the_same_parent_need_distinct_ports() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r\nspec:\n  parentRefs:\n  - {kind: Service, group: \"\", name: s}\n  - {kind: Service, group: \"\", name: s}\n";
    assert_eq!(
        one(decode_text("r.yaml", text).1),
        "r.yaml:8: HTTPRoute default/r: spec.parentRefs[1]: sectionName or port must be specified when parentRefs includes 2 or more references to the same parent"
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let e = route_errors("  - matches:\n    - method: FETCH\n    backendRefs:\n    - name: a\n      weight: 2000000\n");
    assert_eq!(e.len(), 3, "{e:#?}");
}
