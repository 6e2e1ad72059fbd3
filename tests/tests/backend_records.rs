//! The harness itself: what the mesh's backends record of the requests they receive
//! ([`Mesh::received`]), and the backends a test can make fail, be slow or be gone
//! ([`Backend`]). The tests of mirrors read those records, since the client never sees a
//! mirror's answer; here every request is one the client sent, so the records can be checked
//! against what the client knows.

use std::time::Duration;

use hyper::Method;
use meshroute_e2e::client::{HttpClient, Request};
use meshroute_e2e::mesh::{Backend, Mesh, Port};

const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: to-v1
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - backendRefs:
    - {name: echo-v1, port: 80}
"#;

/// A request sent straight to a backend, and one routed to it through Envoy, each appear in
/// that backend's record with their method, path, query and headers, and in no other's; a
/// gRPC call appears in its gRPC backend's record with its full method and metadata.
#[test]
fn backends_record_every_request_they_receive() {
    let mesh = Mesh::builder("backends_record_every_request_they_receive")
        .service("echo")
        .service("echo-v1")
        .grpc_service("grpc-echo")
        .routes(ROUTE)
        .start();
    assert!(mesh.received("echo-v1").is_empty());

    // Straight to the backend, not through Envoy.
    let direct = Request {
        method: Method::PUT,
        service: "echo-v1 (its backend)".to_owned(),
        address: mesh.service("echo-v1").http_endpoint.unwrap_or_else(|| panic!("echo-v1 has an HTTP backend")),
        path: "/direct?x=1".to_owned(),
        headers: vec![("x-mark".to_owned(), "direct".to_owned())],
        http2: false,
    };
    let reply = mesh.runtime().block_on(HttpClient::new().send(&direct)).unwrap_or_else(|error| panic!("{direct}: {error}"));
    assert_eq!((reply.status, reply.backend.as_deref()), (200, Some("echo-v1")), "{direct}: {reply}");
    let seen = mesh.expect_received("echo-v1", 1);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("PUT", "/direct?x=1"), "{}", seen[0]);
    assert_eq!(seen[0].header("x-mark").as_deref(), Some("direct"), "{}", seen[0]);

    // Through Envoy, over HTTP/1.1 and h2c: what the backend recorded is what it answered with.
    for http2 in [false, true] {
        let call = mesh.get("echo", "/through?y=2").header("X-Mark", "routed");
        let reply = if http2 { call.http2() } else { call }.expect_backend("echo-v1");
        let seen = mesh.received("echo-v1");
        let last = seen.last().unwrap_or_else(|| panic!("echo-v1 recorded nothing"));
        assert_eq!((last.method.as_str(), last.path.as_str()), ("GET", "/through?y=2"), "{last}");
        assert_eq!(last.header("x-mark").as_deref(), Some("routed"), "{last}");
        let echo = reply.echo.as_ref().unwrap_or_else(|| panic!("no report: {reply}"));
        for (name, value) in &echo.headers {
            assert_eq!(last.header(name).as_deref(), Some(value.as_str()), "header {name}: {last} / {reply}");
        }
    }
    mesh.expect_received("echo-v1", 3);
    // The frontend's own backend received nothing: every request was routed away from it.
    mesh.expect_received("echo", 0);

    mesh.grpc("grpc-echo", "EchoTwo").metadata("x-mark", "grpc").expect_backend("grpc-echo");
    let calls = mesh.expect_grpc_received("grpc-echo", 1);
    assert_eq!((calls[0].method.as_str(), calls[0].path.as_str()), ("POST", "/echo_basic.grpcecho.GrpcEcho/EchoTwo"));
    assert_eq!(calls[0].header("x-mark").as_deref(), Some("grpc"), "{}", calls[0]);
    assert!(mesh.received("echo-v1").iter().all(|request| request.header("x-mark").as_deref() != Some("grpc")));
}

/// A failing backend answers every request with its status, a slow one only after its delay,
/// both recording what they received; a backend that is down refuses connections and one
/// without ready endpoints has none, so the proxy answers for both and their records stay empty.
#[test]
fn a_backend_can_fail_be_slow_or_be_gone() {
    const DELAY: Duration = Duration::from_millis(300);
    let mesh = Mesh::builder("a_backend_can_fail_be_slow_or_be_gone")
        .service("echo-failing")
        .service("echo-slow")
        .service("echo-down")
        .service_with("echo-unready", &[Port::Http(80), Port::Grpc(8080)])
        .backend("echo-failing", Backend::Failing(500))
        .backend("echo-slow", Backend::Slow(DELAY))
        .backend("echo-down", Backend::Down)
        .backend("echo-unready", Backend::NoEndpoints)
        .start();

    mesh.get("echo-failing", "/f").expect_backend_status("echo-failing", 500);
    assert_eq!(mesh.expect_received("echo-failing", 1)[0].path, "/f");

    let (reply, elapsed) = mesh.get("echo-slow", "/s").send_timed();
    assert_eq!((reply.status, reply.backend.as_deref()), (200, Some("echo-slow")), "{reply}");
    assert!(elapsed >= DELAY, "answered after {elapsed:?}");
    assert_eq!(mesh.expect_received("echo-slow", 1)[0].path, "/s");

    for service in ["echo-down", "echo-unready"] {
        let reply = mesh.get(service, "/").send();
        assert_eq!((reply.status, reply.backend.as_deref()), (503, None), "{service}: {reply}");
        mesh.expect_received(service, 0);
    }
    let status = mesh.grpc("echo-unready", "Echo").send().map(|response| response.into_inner()).err();
    assert_eq!(status.map(|status| status.code()), Some(tonic::Code::Unavailable));
    mesh.expect_grpc_received("echo-unready", 0);
}
