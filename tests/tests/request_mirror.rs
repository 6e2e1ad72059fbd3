//! The Gateway API's `RequestMirror` filter through Envoy, on HTTPRoute and GRPCRoute rules
//! (`rules[].filters`: every request the rule takes) and on backendRefs
//! (`rules[].backendRefs[].filters`: only the requests sent to that backend).
//!
//! A mirrored request is forwarded as usual, and a copy of it goes to the mirror's backend:
//! same method, path, query and headers as the request the primary backend got (the route's
//! header changes included, the Host unchanged), never meshroute's own headers. The client only
//! ever sees the primary's answer; the mirror's answer, its slowness or its absence change
//! nothing. `percent` (0 to 100) or `fraction` (`numerator` over `denominator`, 100 when left
//! out) copy only that share of the requests; neither means every request.
//!
//! The client never sees what a mirror received, so these tests read the backends' own records
//! ([`Mesh::received`]). Copies are sent as the original is forwarded and arrive on their own
//! time: [`Mesh::expect_received`] waits for them with a deadline, then waits for the record to
//! settle, so that both a missing copy and an extra one fail. Each request carries a header of
//! its own ([`SEQ`]) by which its copy is found.

use std::collections::BTreeSet;
use std::time::Duration;

use meshroute_e2e::echo::SeenRequest;
use meshroute_e2e::mesh::{Backend, ExplainedMirror, Mesh, Mode, SELECTION_HEADER};

/// The request header, unique per request, by which a copy is matched to the request it copies.
const SEQ: &str = "x-test-seq";

/// The requests each HTTP case is sent with: HTTP/1.1 and cleartext HTTP/2.
const PROTOCOLS: [bool; 2] = [false, true];

/// The prefix of meshroute's own headers, which no backend may see.
const MESHROUTE_HEADERS: &str = "x-meshroute-";

/// The one request of `record` whose [`SEQ`] header is `seq`.
#[track_caller]
fn by_seq<'r>(record: &'r [SeenRequest], seq: &str) -> &'r SeenRequest {
    let found: Vec<&SeenRequest> = record.iter().filter(|request| request.header(SEQ).as_deref() == Some(seq)).collect();
    match found[..] {
        [request] => request,
        _ => panic!("expected one request with {SEQ}: {seq}, found {}: {found:#?}", found.len()),
    }
}

/// The [`SEQ`] values of the requests in `record`.
fn seqs(record: &[SeenRequest]) -> BTreeSet<String> {
    record.iter().filter_map(|request| request.header(SEQ)).collect()
}

/// The copy is the request the primary got: same method, path and query, the same Host, the same
/// value (or absence) of each header in `names`; and neither saw a header of meshroute's own.
#[track_caller]
fn assert_copy_of(copy: &SeenRequest, primary: &SeenRequest, names: &[&str]) {
    let context = format!("\n  copy:    {copy}\n  primary: {primary}");
    assert_eq!((copy.method.as_str(), copy.path.as_str()), (primary.method.as_str(), primary.path.as_str()), "{context}");
    assert_eq!(copy.header("host"), primary.header("host"), "the Host (no -shadow suffix){context}");
    assert!(copy.header("host").is_some_and(|host| !host.contains("-shadow")), "{context}");
    for name in names {
        assert_eq!(copy.header(name), primary.header(name), "header {name}{context}");
    }
    for request in [copy, primary] {
        assert_eq!(request.headers_starting_with(MESHROUTE_HEADERS), Vec::<&(String, String)>::new(), "{context}");
    }
}

/// A rule's mirror gets a copy of every request the rule takes, HTTP/1.1 and h2c alike, with the
/// method, path, query and headers the primary got: the client's, as the rule's
/// RequestHeaderModifier changed them, and the same Host; neither sees the selection header,
/// even when the client sends one naming the mirror's cluster. The client gets the primary's
/// answer. A route on another Service, in the same directory, is served as before and mirrors
/// nothing; `check --strict` finds nothing to warn about.
#[test]
fn rule_mirror_copies_every_request_with_the_headers_the_primary_saw() {
    let mesh = Mesh::builder("rule_mirror_copies_every_request_with_the_headers_the_primary_saw")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .service("echo-other")
        .service("echo-mirror")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mirrored
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-route-set, value: route}
        add:
        - {name: x-route-add, value: route}
        remove: [x-remove-me]
    - type: RequestMirror
      requestMirror:
        backendRef: {name: echo-mirror, port: 80}
    backendRefs:
    - {name: echo-v1, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: unrelated
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo-other, port: 80}
  rules:
  - backendRefs:
    - {name: echo-v2, port: 80}
"#,
        )
        .start();

    let spoof = "outbound|80||echo-mirror.default.svc.cluster.local";
    let mut sent = Vec::new();
    for http2 in PROTOCOLS {
        for method in ["GET", "POST", "DELETE"] {
            let seq = format!("{method}-h2c-{http2}");
            let call = mesh
                .request(method, "echo", "/mirrored/path?q=1&r=two")
                .header(SEQ, &seq)
                .header("x-client", "client")
                .header("x-route-set", "client")
                .header("x-route-add", "client")
                .header("x-remove-me", "client")
                .header(SELECTION_HEADER, spoof);
            let reply = if http2 { call.http2() } else { call }.expect_backend("echo-v1");
            assert_eq!(reply.echo.as_ref().map(|echo| echo.backend.as_str()), Some("echo-v1"), "the primary's answer");
            sent.push(seq);
        }
    }
    mesh.get("echo-other", "/other").expect_backend("echo-v2");

    let copies = mesh.expect_received("echo-mirror", sent.len());
    let primaries = mesh.expect_received("echo-v1", sent.len());
    for seq in &sent {
        let (copy, primary) = (by_seq(&copies, seq), by_seq(&primaries, seq));
        assert_copy_of(copy, primary, &[SEQ, "x-client", "x-route-set", "x-route-add", "x-remove-me", SELECTION_HEADER]);
        assert_eq!(copy.path, "/mirrored/path?q=1&r=two", "{copy}");
        assert_eq!(copy.header_values("x-client"), ["client"], "{copy}");
        assert_eq!(copy.header_values("x-route-set"), ["route"], "{copy}");
        assert_eq!(copy.header_values("x-route-add"), ["client", "route"], "{copy}");
        assert_eq!(copy.header("x-remove-me"), None, "{copy}");
    }
    mesh.expect_received("echo-v2", 1);

    let (code, text) = mesh.check(true);
    assert_eq!(code, Some(0), "a supported mirror to a Service that exists is nothing to warn about:\n{text}");
}

/// A mirror that answers 500, one that answers only after seconds, one whose backend is down
/// (connections refused) and one without endpoints change nothing for the client: every request
/// gets the primary's 200, as soon as the primary answers. The failing and the slow mirror still
/// got their copies.
#[test]
fn a_failing_slow_or_dead_mirror_never_changes_the_clients_answer() {
    const SLOW: Duration = Duration::from_secs(3);
    let mesh = Mesh::builder("a_failing_slow_or_dead_mirror_never_changes_the_clients_answer")
        .service("echo")
        .service("echo-v1")
        .service("mirror-failing")
        .service("mirror-slow")
        .service("mirror-down")
        .service("mirror-unready")
        .backend("mirror-failing", Backend::Failing(500))
        .backend("mirror-slow", Backend::Slow(SLOW))
        .backend("mirror-down", Backend::Down)
        .backend("mirror-unready", Backend::NoEndpoints)
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bad-mirrors
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /failing}
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror-failing, port: 80}}}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /slow}
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror-slow, port: 80}}}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /down}
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror-down, port: 80}}}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /unready}
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror-unready, port: 80}}}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    const EACH: usize = 4;
    for path in ["/failing", "/slow", "/down", "/unready"] {
        for http2 in PROTOCOLS {
            for _ in 0..EACH {
                let call = mesh.get("echo", path);
                let (reply, elapsed) = if http2 { call.http2() } else { call }.send_timed();
                assert_eq!((reply.status, reply.backend.as_deref()), (200, Some("echo-v1")), "{path} h2c: {http2}: {reply}");
                // Far below the slow mirror's delay: the answer did not wait for the mirror's.
                assert!(elapsed < SLOW / 2, "{path} h2c: {http2}: answered after {elapsed:?}");
            }
        }
    }
    let copies = PROTOCOLS.len() * EACH;
    assert!(mesh.expect_received("mirror-failing", copies).iter().all(|copy| copy.path == "/failing"));
    assert!(mesh.expect_received("mirror-slow", copies).iter().all(|copy| copy.path == "/slow"));
    mesh.expect_received("echo-v1", 4 * copies);
}

/// A route on Service `echo` to `echo-v1` whose one rule mirrors to `echo-mirror` with the
/// given `requestMirror` fields besides its backendRef (`percent: 50`, `fraction: {...}`, or
/// none).
fn sampled_route(sampling: &str) -> String {
    let sampling = if sampling.is_empty() { String::new() } else { format!("\n        {sampling}") };
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: sampled
  namespace: default
spec:
  parentRefs:
  - {{group: "", kind: Service, name: echo, port: 80}}
  rules:
  - filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {{name: echo-mirror, port: 80}}{sampling}
    backendRefs:
    - {{name: echo-v1, port: 80}}
"#
    )
}

/// A mesh of `echo`, `echo-v1` and `echo-mirror` under [`sampled_route`].
fn sampled_mesh(name: &str, sampling: &str) -> Mesh {
    Mesh::builder(name).service("echo").service("echo-v1").service("echo-mirror").routes(&sampled_route(sampling)).start()
}

/// Sends `n` requests to `echo` and asserts the primary answered each.
#[track_caller]
fn send_all(mesh: &Mesh, n: usize) {
    let tally = mesh.get("echo", "/sampled").spread(n);
    assert_eq!(tally.count("echo-v1"), n, "{tally}");
}

/// `percent: 0` copies no request at all.
#[test]
fn percent_0_mirrors_nothing() {
    let mesh = sampled_mesh("percent_0_mirrors_nothing", "percent: 0");
    send_all(&mesh, 50);
    mesh.expect_received("echo-mirror", 0);
}

/// `percent: 100` copies every request, and so does a mirror that names no share at all.
#[test]
fn percent_100_or_none_mirrors_every_request() {
    for (case, sampling) in [("percent_100", "percent: 100"), ("no_percent", "")] {
        let mesh = sampled_mesh(&format!("mirrors_every_request_{case}"), sampling);
        send_all(&mesh, 50);
        mesh.expect_received("echo-mirror", 50);
    }
}

/// `percent: 50` copies about half the requests. Over 200 requests the copies follow
/// Binomial(200, 0.5): mean 100, standard deviation 7.1; 60..=140 is 5.6 deviations either
/// side, missed with probability 6e-9.
#[test]
fn percent_50_mirrors_about_half() {
    let mesh = sampled_mesh("percent_50_mirrors_about_half", "percent: 50");
    send_all(&mesh, 200);
    let copies = mesh.received_settled("echo-mirror").len();
    assert!((60..=140).contains(&copies), "{copies} of 200 requests mirrored at 50%");
}

/// `fraction: {numerator: 1, denominator: 4}` copies about a quarter of the requests, and
/// `fraction: {numerator: 30}` (denominator 100) about 30%. Over 200 requests: Binomial(200,
/// 0.25), mean 50, deviation 6.1, bounds 20..=85, missed with probability 4e-8; Binomial(200,
/// 0.3), mean 60, deviation 6.5, bounds 25..=100, missed with probability 3e-9.
#[test]
fn fraction_mirrors_its_share() {
    for (case, sampling, bounds) in [
        ("quarter", "fraction: {numerator: 1, denominator: 4}", 20..=85),
        ("thirty_percent", "fraction: {numerator: 30}", 25..=100),
    ] {
        let mesh = sampled_mesh(&format!("fraction_mirrors_its_share_{case}"), sampling);
        send_all(&mesh, 200);
        let copies = mesh.received_settled("echo-mirror").len();
        assert!(bounds.contains(&copies), "{copies} of 200 requests mirrored with {sampling}, expected {bounds:?}");
    }
}

/// Two RequestMirror filters on one rule: each mirror gets a copy of every request.
#[test]
fn two_mirrors_on_one_rule_both_receive_every_copy() {
    let mesh = Mesh::builder("two_mirrors_on_one_rule_both_receive_every_copy")
        .service("echo")
        .service("echo-v1")
        .service("mirror-a")
        .service("mirror-b")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: two-mirrors
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: mirror-a, port: 80}
    - type: RequestMirror
      requestMirror:
        backendRef: {name: mirror-b, namespace: default, port: 80}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    let sent: BTreeSet<String> = (0..20).map(|i| format!("two-{i}")).collect();
    for seq in &sent {
        mesh.get("echo", "/two?x=y").header(SEQ, seq).expect_backend("echo-v1");
    }
    let primaries = mesh.expect_received("echo-v1", sent.len());
    for mirror in ["mirror-a", "mirror-b"] {
        let copies = mesh.expect_received(mirror, sent.len());
        assert_eq!(seqs(&copies), sent, "{mirror}");
        for seq in &sent {
            assert_copy_of(by_seq(&copies, seq), by_seq(&primaries, seq), &[SEQ]);
        }
    }
}

/// A 1:1 split of `echo` over echo-v1, which mirrors to `echo-mirror`, and echo-v2, which does
/// not.
const SPLIT_WITH_BACKEND_MIRROR: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: split
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
      - type: RequestMirror
        requestMirror:
          backendRef: {name: echo-mirror, port: 80}
    - {name: echo-v2, port: 80, weight: 1}
"#;

/// A backendRef's mirror copies only the requests sent to that backend: with the filter,
/// exactly the requests echo-v1 answered reach the mirror, none of echo-v2's. Envoy's own routes
/// cannot mirror one cluster of a split: in native mode the requests are still split as before,
/// and `meshroute check` warns that the rule's backendRefs carry a RequestMirror Envoy's routes
/// cannot apply (in either mode, since check does not know which one Envoy will run), so that
/// `--strict` fails.
#[test]
fn backend_ref_mirror_copies_only_the_requests_sent_to_that_backend() {
    let mesh = Mesh::builder("backend_ref_mirror_copies_only_the_requests_sent_to_that_backend")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .service("echo-mirror")
        .routes(SPLIT_WITH_BACKEND_MIRROR)
        .start();

    // 1:1 over 60 requests: both backends answer some but for a chance of 2^-59.
    let mut answered_by_v1 = BTreeSet::new();
    let mut answered_by_v2 = 0;
    for i in 0..60 {
        let seq = format!("split-{i}");
        let reply = mesh.get("echo", "/split").header(SEQ, &seq).expect_one_of(&["echo-v1", "echo-v2"]);
        if reply.backend.as_deref() == Some("echo-v1") {
            answered_by_v1.insert(seq);
        } else {
            answered_by_v2 += 1;
        }
    }
    assert!(!answered_by_v1.is_empty() && answered_by_v2 > 0, "v1 answered {answered_by_v1:?}, v2 {answered_by_v2}");

    if mesh.mode() == Mode::Filter {
        let copies = mesh.expect_received("echo-mirror", answered_by_v1.len());
        assert_eq!(seqs(&copies), answered_by_v1, "the mirror got a copy of exactly the requests echo-v1 answered");
        let primaries = mesh.received("echo-v1");
        for seq in &answered_by_v1 {
            assert_copy_of(by_seq(&copies, seq), by_seq(&primaries, seq), &[SEQ]);
        }
    }

    let (code, text) = mesh.check(true);
    assert_eq!(code, Some(1), "--strict fails on the warning:\n{text}");
    let warning = text
        .lines()
        .find(|line| line.contains("warning") && line.contains("RequestMirror"))
        .unwrap_or_else(|| panic!("no warning about the RequestMirror of a split:\n{text}"));
    assert!(warning.contains("backendRefs"), "the warning names the rule's backendRefs: {warning}");
}

/// A backendRef's mirror on a rule with one backend copies every request, as a rule's does, in
/// both modes, with nothing to warn about.
#[test]
fn backend_ref_mirror_on_a_single_backend_mirrors_every_request() {
    let mesh = Mesh::builder("backend_ref_mirror_on_a_single_backend_mirrors_every_request")
        .service("echo")
        .service("echo-v1")
        .service("echo-mirror")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: single
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - backendRefs:
    - name: echo-v1
      port: 80
      filters:
      - type: RequestMirror
        requestMirror:
          backendRef: {name: echo-mirror, port: 80}
"#,
        )
        .start();

    let mut sent = BTreeSet::new();
    for http2 in PROTOCOLS {
        for i in 0..5 {
            let seq = format!("single-{i}-h2c-{http2}");
            let call = mesh.get("echo", "/single?n=1").header(SEQ, &seq).header("x-client", "client");
            if http2 { call.http2() } else { call }.expect_backend("echo-v1");
            sent.insert(seq);
        }
    }
    let copies = mesh.expect_received("echo-mirror", sent.len());
    assert_eq!(seqs(&copies), sent);
    let primaries = mesh.received("echo-v1");
    for seq in &sent {
        assert_copy_of(by_seq(&copies, seq), by_seq(&primaries, seq), &[SEQ, "x-client"]);
    }
    let (code, text) = mesh.check(true);
    assert_eq!(code, Some(0), "{text}");
}

/// A mirror whose backendRef names a Service that does not exist: the requests are forwarded
/// to the primary as usual and the client sees nothing wrong; `check` reports the mirror's
/// backendRef as `ResolvedRefs: False (BackendNotFound)`, a warning.
#[test]
fn a_mirror_to_a_missing_service_is_reported_and_the_primary_still_answers() {
    let mesh = Mesh::builder("a_mirror_to_a_missing_service_is_reported_and_the_primary_still_answers")
        .service("echo")
        .service("echo-v1")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: missing-mirror
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: no-such-mirror, port: 80}
    backendRefs:
    - {name: echo-v1, port: 80}
"#,
        )
        .start();

    for http2 in PROTOCOLS {
        for _ in 0..5 {
            let call = mesh.get("echo", "/anything");
            if http2 { call.http2() } else { call }.expect_backend("echo-v1");
        }
    }
    mesh.expect_received("echo-v1", 2 * 5);

    let (code, text) = mesh.check(false);
    assert_eq!(code, Some(0), "an unresolved mirror is a warning, not an error:\n{text}");
    assert!(text.contains("ResolvedRefs: False (BackendNotFound)"), "{text}");
    assert!(
        text.lines().any(|line| line.contains("warning") && line.contains("BackendNotFound") && line.contains("no-such-mirror")),
        "a warning names the missing mirror:\n{text}"
    );
    assert!(text.contains("requestMirror"), "the warning names the mirror's field:\n{text}");
    assert!(!text.contains("not supported"), "{text}");
    let (code, text) = mesh.check(true);
    assert_eq!(code, Some(1), "--strict fails on the warning:\n{text}");
}

/// A GRPCRoute's mirror gets a copy of each call, unary and streaming: the same full method,
/// the client's metadata and the rule's header change, the same `:authority`. The client gets
/// the primary's answers.
#[test]
fn grpc_mirror_copies_each_call_with_its_method_and_metadata() {
    let mesh = Mesh::builder("grpc_mirror_copies_each_call_with_its_method_and_metadata")
        .grpc_service("grpc-echo")
        .grpc_service("grpc-echo-v1")
        .grpc_service("grpc-mirror")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: grpc-mirrored
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: grpc-echo, port: 8080}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - {name: x-route-set, value: route}
    - type: RequestMirror
      requestMirror:
        backendRef: {name: grpc-mirror, port: 8080}
    backendRefs:
    - {name: grpc-echo-v1, port: 8080}
"#,
        )
        .start();

    let response = mesh
        .grpc("grpc-echo", "EchoTwo")
        .metadata(SEQ, "unary")
        .metadata("x-client", "client")
        .metadata("x-route-set", "client")
        .expect_backend_response("grpc-echo-v1");
    let answer = response.get_ref();
    assert_eq!(answer.metadata.get("x-route-set").map(String::as_str), Some("route"), "{answer:?}");
    mesh.grpc("grpc-echo", "EchoStream")
        .metadata(SEQ, "stream")
        .metadata("x-client", "client")
        .expect_stream("grpc-echo-v1", &["one", "two", "three"]);

    let copies = mesh.expect_grpc_received("grpc-mirror", 2);
    let primaries = mesh.expect_grpc_received("grpc-echo-v1", 2);
    for (seq, method) in [("unary", "EchoTwo"), ("stream", "EchoStream")] {
        let (copy, primary) = (by_seq(&copies, seq), by_seq(&primaries, seq));
        assert_eq!(copy.path, format!("/echo_basic.grpcecho.GrpcEcho/{method}"), "{copy}");
        assert_copy_of(copy, primary, &[SEQ, "x-client", "x-route-set", "content-type"]);
        assert_eq!(copy.header_values("x-client"), ["client"], "{copy}");
        assert_eq!(copy.header_values("x-route-set"), ["route"], "{copy}");
    }
}

/// `meshroute explain` lists, on each backend a request may go to, where that request is
/// mirrored: the rule's mirrors, then the backendRef's own, each with its share as a percentage
/// (100 when the filter names none, `fraction` 1/4 as 25). What it says about the first case is
/// what Envoy does.
#[test]
fn explain_lists_the_mirrors_of_each_backend() {
    let mesh = Mesh::builder("explain_lists_the_mirrors_of_each_backend")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .service("mirror-a")
        .service("mirror-b")
        .routes(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: explained
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /all}
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: mirror-a, port: 80}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /split}
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {name: mirror-a, port: 80}
        percent: 50
    backendRefs:
    - name: echo-v1
      port: 80
      filters:
      - type: RequestMirror
        requestMirror:
          backendRef: {name: mirror-b, namespace: default, port: 80}
          fraction: {numerator: 1, denominator: 4}
    - {name: echo-v2, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /plain}
    backendRefs:
    - {name: echo-v2, port: 80}
"#,
        )
        .start();

    let mirror =
        |name: &str, percent: f64| ExplainedMirror { name: name.to_owned(), namespace: "default".to_owned(), port: 80, percent };
    let explained_mirrors = |path: &str| -> Vec<(String, Vec<ExplainedMirror>)> {
        let explained = mesh.get("echo", path).explain();
        assert_eq!(explained.status, 200, "explain {path}: {explained:?}");
        explained.backends.into_iter().map(|backend| (backend.name, backend.mirrors.unwrap_or_default())).collect()
    };

    assert_eq!(explained_mirrors("/all"), [("echo-v1".to_owned(), vec![mirror("mirror-a", 100.0)])]);
    assert_eq!(
        explained_mirrors("/split"),
        [
            ("echo-v1".to_owned(), vec![mirror("mirror-a", 50.0), mirror("mirror-b", 25.0)]),
            ("echo-v2".to_owned(), vec![mirror("mirror-a", 50.0)]),
        ]
    );
    assert_eq!(explained_mirrors("/plain"), [("echo-v2".to_owned(), vec![])]);

    // Envoy agrees on the first case.
    mesh.get("echo", "/all").header(SEQ, "explained").expect_backend("echo-v1");
    assert_eq!(seqs(&mesh.expect_received("mirror-a", 1)), BTreeSet::from(["explained".to_owned()]));
}
