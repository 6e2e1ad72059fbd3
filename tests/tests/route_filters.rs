//! The Gateway API's header modifier filters through Envoy: `RequestHeaderModifier` and
//! `ResponseHeaderModifier` on HTTPRoute and GRPCRoute rules (`rules[].filters`, every request
//! the rule takes) and on their backendRefs (`rules[].backendRefs[].filters`, only the requests
//! sent to that backend; where both change the same header, the backendRef's value wins).
//!
//! `set` replaces whatever the client (or, for responses, the backend) sent, `add` keeps it and
//! adds a value, `remove` drops the header; names are case-insensitive, and a header both
//! removed and set ends up set. Every outcome is asserted on what the echo backend saw and what
//! the client received, never on `meshroute explain`. A value added to a header that is already
//! there may arrive on a line of its own or folded into the existing line; the harness's
//! `header_values` reads both as the same list.

use meshroute_e2e::echo::RESPONSE_HEADER_REQUEST;
use meshroute_e2e::grpc;
use meshroute_e2e::mesh::Mesh;

/// The requests each HTTP case is checked with: HTTP/1.1 (header names go out in title case,
/// `X-Remove-Me`) and cleartext HTTP/2 (names in lower case).
const PROTOCOLS: [bool; 2] = [false, true];

/// `set` overwrites the value the client sent, or adds the header when the client sent none;
/// the route's header name and the client's match whatever their case.
#[test]
fn request_header_set_replaces_the_clients_value_whatever_the_case() {
    let mesh = Mesh::builder("request_header_set_replaces_the_clients_value_whatever_the_case")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: set-headers
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-set, value: route}
        - {name: X-Set-Upper, value: route}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = || if http2 { mesh.get("echo", "/").http2() } else { mesh.get("echo", "/") };
        // The client's names go out as X-Set and X-Set-Upper over HTTP/1.1, in lower case over
        // HTTP/2: one of the two differs in case from the route's in each protocol.
        let reply = get().header("x-set", "client").header("x-set-upper", "client").expect_backend("echo-v1");
        assert_eq!(reply.seen_header_values("x-set"), ["route"], "h2c: {http2}: {reply}");
        assert_eq!(reply.seen_header_values("x-set-upper"), ["route"], "h2c: {http2}: {reply}");
        // Sent twice, in two cases: still one value, the route's.
        let reply = get().header("x-set", "first").header("X-SET", "second").expect_backend("echo-v1");
        assert_eq!(reply.seen_header_values("x-set"), ["route"], "h2c: {http2}: {reply}");
        // Not sent at all: set.
        let reply = get().expect_backend("echo-v1");
        assert_eq!(reply.seen_header_values("x-set"), ["route"], "h2c: {http2}: {reply}");
        assert_eq!(reply.seen_header_values("x-set-upper"), ["route"], "h2c: {http2}: {reply}");
    }
}

/// `add` keeps the value the client sent and adds the route's after it; without a client value
/// the route's is the only one.
#[test]
fn request_header_add_keeps_the_clients_value_and_adds_the_routes() {
    let mesh = Mesh::builder("request_header_add_keeps_the_clients_value_and_adds_the_routes")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: add-headers
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add:
        - {name: x-add, value: route}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = || if http2 { mesh.get("echo", "/").http2() } else { mesh.get("echo", "/") };
        let reply = get().header("x-add", "client").expect_backend("echo-v1");
        assert_eq!(reply.seen_header_values("x-add"), ["client", "route"], "h2c: {http2}: {reply}");
        let reply = get().expect_backend("echo-v1");
        assert_eq!(reply.seen_header_values("x-add"), ["route"], "h2c: {http2}: {reply}");
    }
}

/// `remove` drops the header whatever case the client sent it in (`X-Remove-Me` over HTTP/1.1
/// for `remove: [x-remove-me]`), every line of it, and whatever case the route names it in;
/// headers it does not name pass untouched.
#[test]
fn request_header_remove_drops_it_whatever_case_the_client_sent() {
    let mesh = Mesh::builder("request_header_remove_drops_it_whatever_case_the_client_sent")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: remove-headers
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        remove: [x-remove-me, X-Also-Remove]
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = || if http2 { mesh.get("echo", "/").http2() } else { mesh.get("echo", "/") };
        let reply = get()
            .header("X-Remove-Me", "secret")
            .header("x-also-remove", "secret")
            .header("x-keep", "kept")
            .expect_backend("echo-v1");
        assert_eq!(reply.seen_header("x-remove-me"), None, "h2c: {http2}: {reply}");
        assert_eq!(reply.seen_header("x-also-remove"), None, "h2c: {http2}: {reply}");
        assert_eq!(reply.seen_header_values("x-keep"), ["kept"], "h2c: {http2}: {reply}");
        // On two lines in two cases: both go.
        let reply = get().header("x-remove-me", "one").header("X-REMOVE-ME", "two").expect_backend("echo-v1");
        assert_eq!(reply.seen_header("x-remove-me"), None, "h2c: {http2}: {reply}");
    }
}

/// One RequestHeaderModifier with `set`, `add` and `remove` on several headers: every change
/// applies to the same request.
#[test]
fn several_request_header_changes_on_one_rule_apply_together() {
    let mesh = Mesh::builder("several_request_header_changes_on_one_rule_apply_together")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: many-changes
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-set-one, value: one}
        - {name: x-set-two, value: two}
        add:
        - {name: x-add-one, value: one}
        - {name: x-add-two, value: two}
        remove: [x-gone-one, x-gone-two]
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = || if http2 { mesh.get("echo", "/").http2() } else { mesh.get("echo", "/") };
        let reply = get()
            .header("x-set-one", "client")
            .header("x-add-two", "client")
            .header("x-gone-one", "client")
            .header("x-gone-two", "client")
            .header("x-untouched", "client")
            .expect_backend("echo-v1");
        let seen = |name: &str| reply.seen_header_values(name);
        assert_eq!(seen("x-set-one"), ["one"], "h2c: {http2}: {reply}");
        assert_eq!(seen("x-set-two"), ["two"], "h2c: {http2}: {reply}");
        assert_eq!(seen("x-add-one"), ["one"], "h2c: {http2}: {reply}");
        assert_eq!(seen("x-add-two"), ["client", "two"], "h2c: {http2}: {reply}");
        assert_eq!(seen("x-gone-one"), Vec::<String>::new(), "h2c: {http2}: {reply}");
        assert_eq!(seen("x-gone-two"), Vec::<String>::new(), "h2c: {http2}: {reply}");
        assert_eq!(seen("x-untouched"), ["client"], "h2c: {http2}: {reply}");
    }
}

/// Removal comes before `set` and `add` (Envoy's order): a header both removed and set ends up
/// with the route's value, and one both removed and added ends up with the route's value alone.
#[test]
fn a_header_both_removed_and_set_ends_up_set() {
    let mesh = Mesh::builder("a_header_both_removed_and_set_ends_up_set")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: remove-then-set
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-both-set, value: route}
        add:
        - {name: x-both-added, value: route}
        remove: [x-both-set, x-both-added]
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = || if http2 { mesh.get("echo", "/").http2() } else { mesh.get("echo", "/") };
        let reply = get().header("x-both-set", "client").header("x-both-added", "client").expect_backend("echo-v1");
        assert_eq!(reply.seen_header_values("x-both-set"), ["route"], "h2c: {http2}: {reply}");
        assert_eq!(reply.seen_header_values("x-both-added"), ["route"], "h2c: {http2}: {reply}");
        let reply = get().expect_backend("echo-v1");
        assert_eq!(reply.seen_header_values("x-both-set"), ["route"], "h2c: {http2}: {reply}");
        assert_eq!(reply.seen_header_values("x-both-added"), ["route"], "h2c: {http2}: {reply}");
    }
}

/// A backendRef's filter applies only to the requests sent to that backend: a rule split 1:1
/// over echo-v1 (whose backendRef sets `x-backend: one`) and echo-v2 (`x-backend: two`). Every
/// answer from echo-v1 saw `one` and every answer from echo-v2 saw `two`, whatever the client
/// sent. Both backends must answer at least once in 50 requests: at 1:1 the chance that one of
/// them never does is 2 × 2^-50 = 2^-49, so this cannot flake in practice.
#[test]
fn backend_ref_filters_apply_only_to_requests_sent_to_that_backend() {
    let mesh = Mesh::builder("backend_ref_filters_apply_only_to_requests_sent_to_that_backend")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: per-backend
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - backendRefs:
    - name: echo-v1
      port: 80
      weight: 1
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - {name: x-backend, value: one}
    - name: echo-v2
      port: 80
      weight: 1
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - {name: x-backend, value: two}
"#,
        )
        .start();

    const REQUESTS: usize = 50;
    let (mut from_v1, mut from_v2) = (0, 0);
    for i in 0..REQUESTS {
        let call = mesh.get("echo", "/");
        // Half the requests bring a value of their own, which the backendRef's set replaces.
        let call = if i % 2 == 0 { call.header("x-backend", "client") } else { call };
        let reply = call.expect_one_of(&["echo-v1", "echo-v2"]);
        // expect_one_of has checked that echo-v1 or echo-v2 answered.
        let (backend, expected) = if reply.backend.as_deref() == Some("echo-v1") {
            from_v1 += 1;
            ("echo-v1", "one")
        } else {
            from_v2 += 1;
            ("echo-v2", "two")
        };
        assert_eq!(reply.seen_header_values("x-backend"), [expected], "request {i}: {backend} answered: {reply}");
    }
    assert!(
        from_v1 > 0 && from_v2 > 0,
        "both backends should answer some of {REQUESTS} requests split 1:1: echo-v1 {from_v1}, echo-v2 {from_v2}"
    );
}

/// Where the rule and a backendRef both set the same header, the backendRef's value (the more
/// specific) wins; the rule's other changes still apply to that backend's requests, and a
/// backendRef without a filter of its own gets the rule's value.
#[test]
fn backend_ref_filter_wins_over_the_rules_on_the_same_header() {
    let mesh = Mesh::builder("backend_ref_filter_wins_over_the_rules_on_the_same_header")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rule-and-backend
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /specific}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-level, value: rule}
        - {name: x-rule-only, value: rule}
    backendRefs:
    - name: echo-v1
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - {name: x-level, value: backend}
  - matches:
    - path: {type: PathPrefix, value: /general}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-level, value: rule}
    backendRefs:
    - {name: echo-v2, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = |path| if http2 { mesh.get("echo", path).http2() } else { mesh.get("echo", path) };
        let reply = get("/specific").header("x-level", "client").expect_backend("echo-v1");
        assert_eq!(reply.seen_header_values("x-level"), ["backend"], "h2c: {http2}: {reply}");
        assert_eq!(reply.seen_header_values("x-rule-only"), ["rule"], "h2c: {http2}: {reply}");
        let reply = get("/general").header("x-level", "client").expect_backend("echo-v2");
        assert_eq!(reply.seen_header_values("x-level"), ["rule"], "h2c: {http2}: {reply}");
    }
}

/// ResponseHeaderModifier changes the response the client receives: `set` replaces the header
/// the backend sent (or adds it when the backend sent none), `add` keeps the backend's value and
/// adds the route's, `remove` drops it whatever case the route names it in. The backend is
/// asked to send its headers with `x-echo-response-header`.
#[test]
fn response_header_modifier_sets_adds_and_removes_what_the_client_receives() {
    let mesh = Mesh::builder("response_header_modifier_sets_adds_and_removes_what_the_client_receives")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: response-headers
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - {name: x-set, value: route}
        add:
        - {name: x-add, value: route}
        remove: [X-Remove-Me]
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = || if http2 { mesh.get("echo", "/").http2() } else { mesh.get("echo", "/") };
        let reply = get()
            .header(RESPONSE_HEADER_REQUEST, "x-set=backend, x-add=backend, x-remove-me=backend, x-untouched=backend")
            .expect_backend("echo-v1");
        assert_eq!(reply.header_values("x-set"), ["route"], "h2c: {http2}: {:?}", reply.headers);
        assert_eq!(reply.header_values("x-add"), ["backend", "route"], "h2c: {http2}: {:?}", reply.headers);
        assert_eq!(reply.header("x-remove-me"), None, "h2c: {http2}: {:?}", reply.headers);
        assert_eq!(reply.header_values("x-untouched"), ["backend"], "h2c: {http2}: {:?}", reply.headers);

        // The backend sends none of them: set and add both add the route's value.
        let reply = get().expect_backend("echo-v1");
        assert_eq!(reply.header_values("x-set"), ["route"], "h2c: {http2}: {:?}", reply.headers);
        assert_eq!(reply.header_values("x-add"), ["route"], "h2c: {http2}: {:?}", reply.headers);
        assert_eq!(reply.header("x-remove-me"), None, "h2c: {http2}: {:?}", reply.headers);
    }
}

/// A split between a backendRef with filters of its own and one that does not resolve: the
/// unresolved share answers 500 from the proxy with the rule's ResponseHeaderModifier applied,
/// and the other share gets the rule's change and its own. 60 requests at 1:1: the odds that
/// one share never comes up are 2 × 2^-60.
#[test]
fn response_header_modifier_applies_to_the_500_of_an_unresolved_share_of_a_split() {
    let mesh = Mesh::builder("response_header_modifier_applies_to_the_500_of_an_unresolved_share")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: half-broken
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - {name: x-route, value: half-broken}
    backendRefs:
    - name: echo-v1
      port: 80
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - {name: x-backend, value: v1}
    - {name: no-such-service, port: 80}
"#,
        )
        .start();

    let (mut answered, mut refused) = (0, 0);
    for _ in 0..60 {
        let reply = mesh.get("echo", "/").send();
        assert_eq!(reply.header_values("x-route"), ["half-broken"], "{} {:?}", reply.status, reply.headers);
        match reply.status {
            200 => {
                assert_eq!(reply.backend.as_deref(), Some("echo-v1"));
                assert_eq!(reply.seen_header_values("x-backend"), ["v1"], "{:?}", reply.echo);
                answered += 1;
            }
            500 => {
                assert_eq!(reply.backend, None, "a 500 from the proxy, not a backend");
                refused += 1;
            }
            other => panic!("status {other}: {:?}", reply.headers),
        }
    }
    assert!(answered > 0 && refused > 0, "{answered} answered, {refused} refused");
}

/// A rule whose only backend does not resolve (a Service that does not exist) answers 500 from
/// the proxy, and its ResponseHeaderModifier applies to that local answer too.
#[test]
fn response_header_modifier_applies_to_the_local_500_of_an_unresolved_backend() {
    let mesh = Mesh::builder("response_header_modifier_applies_to_the_local_500_of_an_unresolved_backend")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: broken-backend
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /broken}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - {name: x-route, value: broken}
        add:
        - {name: x-added, value: broken}
    backendRefs:
    - {name: no-such-service, port: 80}
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - {name: x-route, value: working}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = |path| if http2 { mesh.get("echo", path).http2() } else { mesh.get("echo", path) };
        let reply = get("/broken").expect_status(500);
        assert_eq!(reply.header_values("x-route"), ["broken"], "h2c: {http2}: {:?}", reply.headers);
        assert_eq!(reply.header_values("x-added"), ["broken"], "h2c: {http2}: {:?}", reply.headers);
        // The rule that resolves still answers, with its own change.
        let reply = get("/").expect_backend("echo-v1");
        assert_eq!(reply.header_values("x-route"), ["working"], "h2c: {http2}: {:?}", reply.headers);
        assert_eq!(reply.header("x-added"), None, "h2c: {http2}: {:?}", reply.headers);
    }
}

/// A GRPCRoute's RequestHeaderModifier changes the metadata the gRPC backend sees: `set`
/// replaces the client's value, `add` keeps it and adds the route's, `remove` drops it, at rule
/// level and on the backendRef, whose value wins where both set the same header.
#[test]
fn grpc_request_header_modifier_changes_the_metadata_the_backend_sees() {
    let mesh = Mesh::builder("grpc_request_header_modifier_changes_the_metadata_the_backend_sees")
        .grpc_service("grpc-echo")
        .grpc_service("grpc-echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: grpc-request-headers
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: grpc-echo, port: 8080}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: Echo}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-set, value: route}
        - {name: x-level, value: rule}
        add:
        - {name: x-add, value: route}
        remove: [x-remove-me]
    backendRefs:
    - name: grpc-echo-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - {name: x-level, value: backend}
"#,
        )
        .start();

    let response = mesh
        .grpc("grpc-echo", "Echo")
        .metadata("x-set", "client")
        .metadata("x-add", "client")
        .metadata("x-remove-me", "client")
        .metadata("x-level", "client")
        .metadata("x-untouched", "client")
        .expect_backend_response("grpc-echo-v1");
    let answer = response.get_ref();
    let seen = |name: &str| meshroute_e2e::client::header_values(answer.metadata.get(name).map(String::as_str));
    assert_eq!(seen("x-set"), ["route"], "{answer:?}");
    assert_eq!(seen("x-add"), ["client", "route"], "{answer:?}");
    assert_eq!(seen("x-remove-me"), Vec::<String>::new(), "{answer:?}");
    assert_eq!(seen("x-level"), ["backend"], "{answer:?}");
    assert_eq!(seen("x-untouched"), ["client"], "{answer:?}");
}

/// A GRPCRoute's ResponseHeaderModifier changes the response metadata the gRPC client receives:
/// `set` replaces what the backend sent, `add` keeps it and adds the route's, `remove` drops it.
#[test]
fn grpc_response_header_modifier_changes_the_metadata_the_client_receives() {
    let mesh = Mesh::builder("grpc_response_header_modifier_changes_the_metadata_the_client_receives")
        .grpc_service("grpc-echo")
        .grpc_service("grpc-echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: grpc-response-headers
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: grpc-echo, port: 8080}
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - {name: x-set, value: route}
        add:
        - {name: x-add, value: route}
        remove: [x-remove-me]
    backendRefs:
    - {name: grpc-echo-v1, port: 8080}
"#,
        )
        .start();

    let response = mesh
        .grpc("grpc-echo", "Echo")
        .metadata(RESPONSE_HEADER_REQUEST, "x-set=backend, x-add=backend, x-remove-me=backend, x-untouched=backend")
        .expect_backend_response("grpc-echo-v1");
    let received = |name: &str| grpc::header_values(response.metadata().as_ref(), name);
    assert_eq!(received("x-set"), ["route"], "{:?}", response.metadata());
    assert_eq!(received("x-add"), ["backend", "route"], "{:?}", response.metadata());
    assert_eq!(received("x-remove-me"), Vec::<String>::new(), "{:?}", response.metadata());
    assert_eq!(received("x-untouched"), ["backend"], "{:?}", response.metadata());

    // The backend sends none of them: set and add both add the route's value.
    let response = mesh.grpc("grpc-echo", "Echo").expect_backend_response("grpc-echo-v1");
    let received = |name: &str| grpc::header_values(response.metadata().as_ref(), name);
    assert_eq!(received("x-set"), ["route"], "{:?}", response.metadata());
    assert_eq!(received("x-add"), ["route"], "{:?}", response.metadata());
}

/// A filter meshroute does not implement yet (CORS here) drops its rule, as the Gateway
/// API prescribes for a partly invalid route: requests that rule would take get 500 from the
/// proxy and never reach a backend; the route's other rules and every other route are served.
#[test]
fn an_unsupported_filter_drops_its_rule_and_leaves_the_rest_live() {
    let mesh = Mesh::builder("an_unsupported_filter_drops_its_rule_and_leaves_the_rest_live")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: partly
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /mirrored}
    filters:
    - type: CORS
      cors:
        allowOrigins: ["https://example.com"]
    backendRefs:
    - {name: echo-v1, port: 80}
  - backendRefs:
    - {name: echo-v1, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: other
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-v2, port: 80}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        let get = |path| if http2 { mesh.get("echo", path).http2() } else { mesh.get("echo", path) };
        let reply = get("/mirrored/x").expect_status(500);
        assert_eq!(reply.backend, None, "h2c: {http2}: the dropped rule answers itself");
        get("/anything").expect_backend("echo-v1");
    }
    mesh.get("echo-v2", "/").expect_backend("echo-v1");
    let (code, text) = mesh.check(false);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("PartiallyInvalid: True (UnsupportedValue)"), "{text}");
}
