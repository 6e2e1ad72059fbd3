//! Request matching through Envoy, case by case as in the Gateway API conformance suite
//! (`conformance/tests/mesh/*.go` and the HTTPRoute matching tests it shares with gateways),
//! with the suite's manifests attached to a Service instead of a Gateway.

use meshroute_e2e::mesh::Mesh;

/// MeshTrafficSplit: exact paths pick the backend; anything else on the Service is unmatched.
#[test]
fn mesh_split_by_exact_path() {
    let mesh = Mesh::conformance("mesh_split_by_exact_path")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh-split
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
  rules:
  - matches:
    - path:
        type: Exact
        value: /v1
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - path:
        type: Exact
        value: /v2
    backendRefs:
    - name: echo-v2
      port: 80
"#,
        )
        .start();

    mesh.get("echo", "/v1").expect_backend("echo-v1");
    mesh.get("echo", "/v2").expect_backend("echo-v2");
    // The parentRef has no port, so the route holds on every port of the Service.
    mesh.get("echo:8080", "/v1").expect_backend("echo-v1");
    mesh.get("echo:8080", "/v2").expect_backend("echo-v2");
    // A Service with routes answers 404 to what none of them matches.
    mesh.get("echo", "/").expect_status(404);
    mesh.get("echo", "/v3").expect_status(404);
    mesh.get("echo", "/v1/").expect_status(404);
    mesh.get("echo:8080", "/v1/x").expect_status(404);
}

/// MeshHTTPRouteMatching: PathPrefix is segment-wise, and each rule's matches are ORed.
#[test]
fn mesh_path_prefix_or_header() {
    let mesh = Mesh::conformance("mesh_path_prefix_or_header")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh-matching
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 80
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    - headers:
      - name: version
        value: one
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /v2
    - headers:
      - name: version
        value: two
    backendRefs:
    - name: echo-v2
      port: 8080
"#,
        )
        .start();

    mesh.get("echo", "/").expect_backend("echo-v1");
    mesh.get("echo", "/example").expect_backend("echo-v1");
    mesh.get("echo", "/").header("Version", "one").expect_backend("echo-v1");
    mesh.get("echo", "/v2").expect_backend("echo-v2");
    mesh.get("echo", "/v2/example").expect_backend("echo-v2");
    mesh.get("echo", "/").header("Version", "two").expect_backend("echo-v2");
    mesh.get("echo", "/v2/").expect_backend("echo-v2");
    // Not a path segment prefix, so not /v2.
    mesh.get("echo", "/v2example").expect_backend("echo-v1");
    mesh.get("echo", "/foo/v2/example").expect_backend("echo-v1");
    // A query string is not part of the path.
    mesh.get("echo", "/v2?x=/").expect_backend("echo-v2");
    mesh.get("echo", "/v2example?x=/v2").expect_backend("echo-v1");
}

/// HTTPExactPathMatching: an Exact path is the whole path, byte for byte.
#[test]
fn exact_path_matching() {
    let mesh = Mesh::conformance("exact_path_matching")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: exact-matching
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 80
  rules:
  - matches:
    - path:
        type: Exact
        value: /one
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - path:
        type: Exact
        value: /two
    backendRefs:
    - name: echo-v2
      port: 80
"#,
        )
        .start();

    mesh.get("echo", "/one").expect_backend("echo-v1");
    mesh.get("echo", "/two").expect_backend("echo-v2");
    mesh.get("echo", "/one?x=1").expect_backend("echo-v1");
    mesh.get("echo", "/").expect_status(404);
    mesh.get("echo", "/one/example").expect_status(404);
    mesh.get("echo", "/two/").expect_status(404);
    mesh.get("echo", "/Two").expect_status(404);
    mesh.get("echo", "/twofold").expect_status(404);
}

/// HTTPRoutePathMatchOrder: Exact beats any prefix, and the longest prefix wins, whatever the
/// order of the rules.
#[test]
fn path_match_order() {
    let mesh = Mesh::conformance("path_match_order")
        .service("echo-v3")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: path-matching-order
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 80
  rules:
  - matches:
    - path:
        type: Exact
        value: /match
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - path:
        type: Exact
        value: /match/exact
    backendRefs:
    - name: echo-v2
      port: 80
  - matches:
    - path:
        type: Exact
        value: /match/exact/one
    backendRefs:
    - name: echo-v3
      port: 80
  - matches:
    - path:
        type: PathPrefix
        value: /match/
    backendRefs:
    - name: echo-v3
      port: 80
  - matches:
    - path:
        type: PathPrefix
        value: /match/prefix/
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - path:
        type: PathPrefix
        value: /match/prefix/one
    backendRefs:
    - name: echo-v2
      port: 80
"#,
        )
        .start();

    mesh.get("echo", "/match/exact/one").expect_backend("echo-v3");
    mesh.get("echo", "/match/exact").expect_backend("echo-v2");
    mesh.get("echo", "/match").expect_backend("echo-v1");
    mesh.get("echo", "/match/prefix/one/any").expect_backend("echo-v2");
    mesh.get("echo", "/match/prefix/any").expect_backend("echo-v1");
    mesh.get("echo", "/match/any").expect_backend("echo-v3");
    // A trailing slash in a prefix value is ignored: /match/ matches /match/ and below.
    mesh.get("echo", "/match/").expect_backend("echo-v3");
    mesh.get("echo", "/match/prefix").expect_backend("echo-v1");
    mesh.get("echo", "/match/prefix/onex").expect_backend("echo-v1");
    mesh.get("echo", "/matchbox").expect_status(404);
}

/// HTTPRouteHeaderMatching: headers within a match are ANDed, matches are ORed, more matching
/// headers win, and between equally specific rules the first one wins.
#[test]
fn header_matching_with_ties() {
    let mesh = Mesh::conformance("header_matching_with_ties")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: header-matching
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 80
  rules:
  # Matches "version: one"
  - matches:
    - headers:
      - name: version
        value: one
    backendRefs:
    - name: echo-v1
      port: 80
  # Matches "version: two"
  - matches:
    - headers:
      - name: version
        value: two
    backendRefs:
    - name: echo-v2
      port: 80
  # Matches "version: two" AND "color: orange"
  - matches:
    - headers:
      - name: version
        value: two
      - name: color
        value: orange
    backendRefs:
    - name: echo-v1
      port: 80
  # Matches "color: blue" OR "color: green"
  - matches:
    - headers:
      - name: color
        value: blue
    - headers:
      - name: color
        value: green
    backendRefs:
    - name: echo-v1
      port: 80
  # Matches "color: red" OR "color: yellow"
  - matches:
    - headers:
      - name: color
        value: red
    - headers:
      - name: color
        value: yellow
    backendRefs:
    - name: echo-v2
      port: 80
"#,
        )
        .start();

    mesh.get("echo", "/").header("Version", "one").expect_backend("echo-v1");
    mesh.get("echo", "/").header("Version", "two").expect_backend("echo-v2");
    // Two matching headers beat one.
    mesh.get("echo", "/").header("Version", "two").header("Color", "orange").expect_backend("echo-v1");
    // A tie (one header each for "version: two" and "color: blue"): the earlier rule wins.
    mesh.get("echo", "/").header("Version", "two").header("Color", "blue").expect_backend("echo-v2");
    mesh.get("echo", "/").header("Color", "orange").expect_status(404);
    mesh.get("echo", "/").header("Some-Other-Header", "one").expect_status(404);
    mesh.get("echo", "/").header("Color", "blue").expect_backend("echo-v1");
    mesh.get("echo", "/").header("Color", "green").expect_backend("echo-v1");
    mesh.get("echo", "/").header("Color", "red").expect_backend("echo-v2");
    mesh.get("echo", "/").header("Color", "yellow").expect_backend("echo-v2");
    mesh.get("echo", "/").header("Color", "purple").expect_status(404);
    // Header names are case-insensitive (the client sends them in title case, the route has them
    // in lower case).
    mesh.get("echo", "/").header("VERSION", "one").expect_backend("echo-v1");
    mesh.get("echo", "/").expect_status(404);
}

/// MeshHTTPRouteQueryParamMatching: query parameters by exact name and value, combined with the
/// other match types.
#[test]
fn query_param_matching() {
    let mesh = Mesh::conformance("query_param_matching")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh-query-param-matching
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 80
  rules:
  - matches:
    - queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - queryParams:
      - name: animal
        value: dolphin
    backendRefs:
    - name: echo-v2
      port: 8080

  # Combinations with core match types.
  - matches:
    - path:
        type: PathPrefix
        value: /path1
      queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - headers:
      - name: version
        value: one
      queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: echo-v2
      port: 8080

  # Match of the form (cond1 AND cond2) OR (cond3 AND cond4 AND cond5)
  - matches:
    - path:
        type: PathPrefix
        value: /path3
      queryParams:
      - name: animal
        value: shark
    - path:
        type: PathPrefix
        value: /path4
      headers:
      - name: version
        value: three
      queryParams:
      - name: animal
        value: kraken
    backendRefs:
    - name: echo-v1
      port: 8080

  # Matches for checking precedence.
  - matches:
    - path:
        type: PathPrefix
        value: /path5
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - queryParams:
      - name: animal
        value: hydra
    backendRefs:
    - name: echo-v2
      port: 8080
"#,
        )
        .start();

    mesh.get("echo", "/?animal=whale").expect_backend("echo-v1");
    mesh.get("echo", "/?animal=dolphin").expect_backend("echo-v2");
    mesh.get("echo", "/?animal=whale&otherparam=irrelevant").expect_backend("echo-v1");
    mesh.get("echo", "/?animal=dolphin&color=yellow").expect_backend("echo-v2");
    mesh.get("echo", "/?color=blue").expect_status(404);
    mesh.get("echo", "/?animal=dog").expect_status(404);
    mesh.get("echo", "/?animal=whaledolphin").expect_status(404);
    mesh.get("echo", "/").expect_status(404);
    // Query parameter names and values are case-sensitive.
    mesh.get("echo", "/?Animal=whale").expect_status(404);
    mesh.get("echo", "/?animal=Whale").expect_status(404);

    // Combinations with core match types; a path match outranks a header match.
    mesh.get("echo", "/path1?animal=whale").expect_backend("echo-v1");
    mesh.get("echo", "/?animal=whale").header("version", "one").expect_backend("echo-v2");

    // Matches are ORed: either one of them is enough.
    mesh.get("echo", "/path3?animal=shark").expect_backend("echo-v1");
    mesh.get("echo", "/path4?animal=kraken").header("version", "three").expect_backend("echo-v1");

    // Fields within a match are ANDed: a subset is not enough.
    mesh.get("echo", "/?animal=shark").expect_status(404);
    mesh.get("echo", "/path4?animal=kraken").expect_status(404);

    // A longer path prefix outranks query parameters.
    mesh.get("echo", "/path5?animal=hydra").expect_backend("echo-v1");
}

/// HTTPRouteMethodMatching: the method alone, and combined with paths and headers.
#[test]
fn method_matching() {
    let mesh = Mesh::conformance("method_matching")
        .service("echo-v3")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: method-matching
  namespace: default
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 80
  rules:
  - matches:
    - method: POST
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - method: GET
    backendRefs:
    - name: echo-v2
      port: 80

  # Combinations with core match types.
  - matches:
    - path:
        type: PathPrefix
        value: /path1
      method: GET
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - headers:
      - name: version
        value: one
      method: PUT
    backendRefs:
    - name: echo-v2
      port: 80
  - matches:
    - path:
        type: PathPrefix
        value: /path2
      headers:
      - name: version
        value: two
      method: POST
    backendRefs:
    - name: echo-v3
      port: 80

  # Match of the form (cond1 AND cond2) OR (cond3 AND cond4 AND cond5)
  - matches:
    - path:
        type: PathPrefix
        value: /path3
      method: PATCH
    - path:
        type: PathPrefix
        value: /path4
      headers:
      - name: version
        value: three
      method: DELETE
    backendRefs:
    - name: echo-v1
      port: 80

  # Matches for checking precedence.
  - matches:
    - path:
        type: PathPrefix
        value: /path5
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - method: PATCH
    backendRefs:
    - name: echo-v2
      port: 80
  - matches:
    - headers:
      - name: version
        value: four
    backendRefs:
    - name: echo-v3
      port: 80
"#,
        )
        .start();

    mesh.request("POST", "echo", "/").expect_backend("echo-v1");
    mesh.request("GET", "echo", "/").expect_backend("echo-v2");
    mesh.request("HEAD", "echo", "/").expect_status(404);

    // Combinations with core match types.
    mesh.request("GET", "echo", "/path1").expect_backend("echo-v1");
    mesh.request("PUT", "echo", "/").header("version", "one").expect_backend("echo-v2");
    mesh.request("POST", "echo", "/path2").header("version", "two").expect_backend("echo-v3");

    // Matches are ORed: either one of them is enough.
    mesh.request("PATCH", "echo", "/path3").expect_backend("echo-v1");
    mesh.request("DELETE", "echo", "/path4").header("version", "three").expect_backend("echo-v1");

    // Fields within a match are ANDed: a subset is not enough.
    mesh.request("PUT", "echo", "/").expect_status(404);
    mesh.request("DELETE", "echo", "/path4").expect_status(404);

    // A path prefix outranks a method, and a method outranks a header.
    mesh.request("PATCH", "echo", "/path5").expect_backend("echo-v1");
    mesh.request("PATCH", "echo", "/").header("version", "four").expect_backend("echo-v2");
}

/// The precedence ladder across routes attached to one Service: Exact path, then the longest
/// prefix, then method, headers and query parameters, then the oldest route, then the route's
/// namespace/name, then rule order. Every pair below matches the same request, and the route
/// that should lose is written first and named to sort first wherever that could mislead.
#[test]
fn precedence_across_routes() {
    let mesh = Mesh::conformance("precedence_across_routes")
        .routes(
            r#"
# An Exact path beats a prefix, even from an older route.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: a-old-prefix
  namespace: default
  creationTimestamp: "2020-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /exact}
    - path: {type: PathPrefix, value: /long}
      headers:
      - {name: version, value: one}
      - {name: color, value: blue}
    backendRefs:
    - {name: echo-v2, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: b-new-exact
  namespace: default
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: Exact, value: /exact}
    # A longer prefix beats a shorter one with more headers.
    - path: {type: PathPrefix, value: /long/er}
    backendRefs:
    - {name: echo-v1, port: 80}
---
# Identical matches: the oldest route wins over the one whose name sorts first.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: c-newer
  namespace: default
  creationTimestamp: "2024-06-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /age}
    backendRefs:
    - {name: echo-v2, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: d-older
  namespace: default
  creationTimestamp: "2023-06-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /age}
    backendRefs:
    - {name: echo-v1, port: 80}
---
# Identical matches and creation times: namespace/name in alphabetical order, whatever the
# order of the documents; within one route, the first rule.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: f-second
  namespace: default
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /name}
    backendRefs:
    - {name: echo-v2, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: e-first
  namespace: default
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /name}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /rules}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /rules}
    backendRefs:
    - {name: echo-v2, port: 80}
---
# Method beats headers, and headers beat query parameters, across routes.
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: g-old-query
  namespace: default
  creationTimestamp: "2020-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /fields}
      queryParams:
      - {name: animal, value: whale}
      - {name: color, value: blue}
    backendRefs:
    - {name: echo-v2, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: h-new-fields
  namespace: default
  creationTimestamp: "2024-01-01T00:00:00Z"
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /fields}
      headers:
      - {name: version, value: one}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /fields}
      method: POST
    backendRefs:
    - {name: echo, port: 80}
"#,
        )
        .start();

    mesh.get("echo", "/exact").expect_backend("echo-v1");
    mesh.get("echo", "/exact/more").expect_backend("echo-v2");
    mesh.get("echo", "/long/er").header("version", "one").header("color", "blue").expect_backend("echo-v1");
    mesh.get("echo", "/long").header("version", "one").header("color", "blue").expect_backend("echo-v2");
    mesh.get("echo", "/age").expect_backend("echo-v1");
    mesh.get("echo", "/name").expect_backend("echo-v1");
    mesh.get("echo", "/rules").expect_backend("echo-v1");
    mesh.get("echo", "/fields?animal=whale&color=blue").header("version", "one").expect_backend("echo-v1");
    mesh.request("POST", "echo", "/fields?animal=whale&color=blue").header("version", "one").expect_backend("echo");
    mesh.get("echo", "/fields?animal=whale&color=blue").expect_backend("echo-v2");
    mesh.get("echo", "/fields").expect_status(404);
}

/// RegularExpression matches on path, header values and query values must match the whole
/// value, as Envoy's own regex matchers do.
#[test]
fn regular_expression_matching() {
    let mesh = Mesh::conformance("regular_expression_matching")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: regex-matching
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: RegularExpression, value: "/v[0-9]+"}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /h}
      headers:
      - {type: RegularExpression, name: version, value: "t.o"}
    backendRefs:
    - {name: echo-v2, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /q}
      queryParams:
      - {type: RegularExpression, name: animal, value: "(whale|dolphin)s?"}
    backendRefs:
    - {name: echo, port: 8080}
"#,
        )
        .start();

    mesh.get("echo", "/v1").expect_backend("echo-v1");
    mesh.get("echo", "/v12").expect_backend("echo-v1");
    mesh.get("echo", "/v12?x=/y").expect_backend("echo-v1");
    mesh.get("echo", "/v12/x").expect_status(404);
    mesh.get("echo", "/xv1").expect_status(404);
    mesh.get("echo", "/v").expect_status(404);

    mesh.get("echo", "/h").header("version", "two").expect_backend("echo-v2");
    mesh.get("echo", "/h/x").header("version", "too").expect_backend("echo-v2");
    mesh.get("echo", "/h").header("version", "twoo").expect_status(404);
    mesh.get("echo", "/h").header("version", "xtwo").expect_status(404);
    mesh.get("echo", "/h").expect_status(404);

    mesh.get("echo", "/q?animal=whales").expect_backend("echo");
    mesh.get("echo", "/q?color=red&animal=dolphin").expect_backend("echo");
    mesh.get("echo", "/q?animal=shark").expect_status(404);
    mesh.get("echo", "/q?animal=bluewhale").expect_status(404);
    mesh.get("echo", "/q").expect_status(404);
}
