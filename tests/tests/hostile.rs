//! Hostile requests through real Envoy: very long paths and header values, thousands of headers
//! and query parameters, bytes that are not UTF-8, percent-encoded tricks, requests without a
//! Host, absurd methods. Each is routed correctly (the backend that answers is the one the route
//! set picks for the request the backend saw) or refused by Envoy with a clean 4xx, never a 5xx;
//! after each, a normal request is still routed, and at the end the filter has not panicked and
//! its VM was never restarted.
//!
//! Requests Envoy's own client libraries would refuse to write go out over a raw TCP socket.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use meshroute_e2e::client::Echo;
use meshroute_e2e::mesh::Mesh;

const ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: hostile
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v1}
    backendRefs:
    - {name: echo-v1, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /v1}
      queryParams: [{name: q, value: "1"}]
    - headers: [{name: version, value: two}]
    backendRefs:
    - {name: echo-v2, port: 80}
  - matches:
    - path: {type: RegularExpression, value: "/re/[a-z]+"}
    backendRefs:
    - {name: echo-v2, port: 80}
"#;

/// The backend the route set above picks for a request as the backend received it, or `None`
/// for no match (404). Written from the Gateway API rules, not from the filter's code.
fn expected(path_and_query: &str, version: Option<&str>) -> Option<&'static str> {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let regex = path.strip_prefix("/re/").is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase()));
    // Query parameters are compared as sent, not percent-decoded, as Envoy's router does.
    let q = query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "q").then_some(value)
    });
    let v1 = path == "/v1" || path.starts_with("/v1/");
    if regex || (v1 && q == Some("1")) {
        Some("echo-v2")
    } else if v1 {
        Some("echo-v1")
    } else if version == Some("two") {
        Some("echo-v2")
    } else {
        None
    }
}

/// An HTTP/1 answer read off a raw socket.
#[derive(Debug)]
struct RawReply {
    status: u16,
    backend: Option<String>,
    echo: Option<Echo>,
    head: String,
}

/// Sends `request` as is on a new connection and reads the answer until Envoy closes it (every
/// request here says `Connection: close` or is one Envoy refuses). `None`: no answer at all.
fn send_raw(address: SocketAddr, request: &[u8]) -> Option<RawReply> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    // Envoy may answer and close before reading a request that is too large: not an error.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let body = &answer[split + 4..];
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(body)
    } else {
        body.to_vec()
    };
    let echo = serde_json::from_slice(&body).ok();
    Some(RawReply { status, backend: header("x-echo-backend"), echo, head })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..end]).trim(), 16).unwrap_or(0);
        if size == 0 || body.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&body[end + 2..end + 2 + size]);
        body = &body[(end + 2 + size + 2).min(body.len())..];
    }
    out
}

/// How a hostile request must come out.
enum Want {
    /// Exactly this backend, having seen the request unchanged.
    Backend(&'static str),
    /// Routed as the backend saw it, or refused by Envoy with a 4xx.
    RoutedOrRefused,
    /// Refused with a 4xx, from Envoy or from the filter.
    Refused,
}

struct Hostile<'m> {
    mesh: &'m Mesh,
    address: SocketAddr,
    outcomes: Vec<String>,
}

impl Hostile<'_> {
    #[track_caller]
    fn check(&mut self, what: &str, request: &[u8], want: Want) {
        let reply = send_raw(self.address, request).unwrap_or_else(|| panic!("{what}: no HTTP answer at all"));
        let outcome = match (&reply.backend, reply.status) {
            (Some(backend), status) => format!("{status} from {backend}"),
            (None, status) => format!("{status} from Envoy"),
        };
        assert!(reply.status < 500, "{what}: a 5xx ({outcome}):\n{}\n{}", reply.head, self.mesh.envoy_log_tail());
        match (&want, &reply.backend) {
            (Want::Refused, _) | (Want::RoutedOrRefused, None) => {
                assert!(
                    (400..500).contains(&reply.status) && reply.backend.is_none(),
                    "{what}: expected a 4xx from Envoy, got {outcome}\n{}",
                    reply.head
                );
            }
            (Want::Backend(_) | Want::RoutedOrRefused, Some(backend)) => {
                let echo = reply.echo.as_ref().unwrap_or_else(|| panic!("{what}: {outcome} without an echo report"));
                assert_eq!(reply.status, 200, "{what}: {outcome}");
                let should = expected(&echo.path, echo.headers.get("version").map(String::as_str));
                assert_eq!(
                    should,
                    Some(backend.as_str()),
                    "{what}: {backend} answered the request it saw as {} {:.200}",
                    echo.method,
                    echo.path
                );
                if let Want::Backend(want) = want {
                    assert_eq!(backend, want, "{what}");
                }
            }
            (Want::Backend(want), None) => panic!("{what}: expected {want}, got {outcome}\n{}", reply.head),
        }
        self.outcomes.push(format!("{what}: {outcome}"));
        // The filter still routes.
        self.mesh.get("echo", "/v1/after").expect_backend("echo-v1");
        self.mesh.get("echo", "/v1/after?q=1").expect_backend("echo-v2");
    }
}

fn get(target: &[u8], headers: &[&[u8]]) -> Vec<u8> {
    request(b"GET", target, b"HTTP/1.1", &[&[b"host: echo" as &[u8]], headers].concat())
}

fn request(method: &[u8], target: &[u8], version: &[u8], headers: &[&[u8]]) -> Vec<u8> {
    let mut out = [method, b" ", target, b" ", version, b"\r\n"].concat();
    for header in headers {
        out.extend_from_slice(header);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out
}

#[test]
fn hostile_requests_are_routed_or_refused_and_never_kill_the_filter() {
    let mesh = Mesh::conformance("hostile_requests").routes(ROUTES).start();
    let address: SocketAddr = mesh.address_of("echo").parse().unwrap_or_else(|e| panic!("{e}"));
    let created_before = wasm_vms_created(&mesh);
    let mut h = Hostile { mesh: &mesh, address, outcomes: Vec::new() };

    // Sizes: Envoy's default limit for the request line and headers together is 60 KiB.
    let path_59k = format!("/v1/{}", "a".repeat(59 * 1024));
    h.check("59 KiB path", &get(path_59k.as_bytes(), &[]), Want::Backend("echo-v1"));
    let path_70k = format!("/v1/{}", "a".repeat(70 * 1024));
    h.check("70 KiB path", &get(path_70k.as_bytes(), &[]), Want::Refused);
    let long_value = format!("x-long: {}", "b".repeat(50 * 1024));
    h.check("50 KiB header value", &get(b"/", &[long_value.as_bytes(), b"version: two"]), Want::Backend("echo-v2"));
    let over = format!("x-long: {}", "b".repeat(64 * 1024));
    h.check("64 KiB header value", &get(b"/", &[over.as_bytes(), b"version: two"]), Want::Refused);

    // Counts: Envoy's default limit is 100 headers.
    let some: Vec<String> = (0..90).map(|i| format!("x-h{i}: {i}")).collect();
    let mut headers: Vec<&[u8]> = some.iter().map(|h| h.as_bytes()).collect();
    headers.push(b"version: two");
    h.check("92 headers", &get(b"/", &headers), Want::Backend("echo-v2"));
    let many: Vec<String> = (0..5_000).map(|i| format!("x-h{i}: {i}")).collect();
    let headers: Vec<&[u8]> = many.iter().map(|h| h.as_bytes()).collect();
    h.check("5,000 headers", &get(b"/v1", &headers), Want::Refused);

    let query: String = (0..3_000).map(|i| format!("p{i}={i}&")).collect();
    h.check("3,000 query parameters before q=1", &get(format!("/v1?{query}q=1").as_bytes(), &[]), Want::Backend("echo-v2"));
    let query: String = (0..10_000).map(|i| format!("p{i}=1&")).collect();
    h.check("10,000 query parameters", &get(format!("/v1?{query}q=1").as_bytes(), &[]), Want::RoutedOrRefused);
    h.check("q given twice, first wins", &get(b"/v1?q=2&q=1", &[]), Want::Backend("echo-v1"));

    // Bytes that are not UTF-8, and control characters.
    h.check("path with bytes FF FE", &get(b"/v1/\xff\xfe", &[]), Want::RoutedOrRefused);
    h.check("path with a NUL", &get(b"/v1/\x00x", &[]), Want::Refused);
    h.check("version header not UTF-8", &get(b"/", &[b"version: tw\xff"]), Want::RoutedOrRefused);
    h.check(
        "binary header beside version: two",
        &get(b"/", &[b"x-bin: \xff\xfe\x80\xc3", b"version: two"]),
        Want::Backend("echo-v2"),
    );
    h.check("header value with a NUL", &get(b"/v1", &[b"x-nul: a\x00b"]), Want::Refused);
    h.check("query not UTF-8 once decoded", &get(b"/v1?q=%ff%fe", &[]), Want::Backend("echo-v1"));
    h.check("query name not UTF-8", &get(b"/v1?%ff=1&q=1", &[]), Want::Backend("echo-v2"));

    // Percent-encoding and dot segments: Envoy normalizes the path (normalize_path,
    // merge_slashes) and keeps %2F; the filter must route what Envoy forwards.
    for path in [
        "/v1%2Fa",
        "/v1%2fa",
        "/%76%31/a",
        "/%2e%2e/v1/a",
        "/a/%2e%2e/v1",
        "/a/%2E%2E/v1",
        "/v1/./a",
        "//v1//a",
        "/x/../v1",
        "/v1/..",
        "/v1/../re/abc",
        "/re/%61bc",
        "/re/ABC",
        "/V1",
        "/v1%00",
        "/v1%",
        "/v1/%zz",
        "/v1#frag",
        "/v1?q=%31",
        "/v1?q=1#x",
    ] {
        h.check(&format!("path {path}"), &get(path.as_bytes(), &[]), Want::RoutedOrRefused);
    }
    h.check("absolute-form target", &get(b"http://elsewhere/v1/x", &[]), Want::RoutedOrRefused);
    h.check("OPTIONS *", &request(b"OPTIONS", b"*", b"HTTP/1.1", &[b"host: echo"]), Want::RoutedOrRefused);

    // No Host.
    h.check("HTTP/1.1 without Host", &request(b"GET", b"/v1", b"HTTP/1.1", &[]), Want::RoutedOrRefused);
    h.check("HTTP/1.0 without Host", &request(b"GET", b"/v1", b"HTTP/1.0", &[]), Want::RoutedOrRefused);
    h.check("empty Host", &request(b"GET", b"/v1", b"HTTP/1.1", &[b"host:"]), Want::RoutedOrRefused);
    h.check("two Hosts", &request(b"GET", b"/v1", b"HTTP/1.1", &[b"host: a", b"host: b"]), Want::RoutedOrRefused);

    // Absurd methods.
    h.check("method FOOBAR", &request(b"FOOBAR", b"/v1", b"HTTP/1.1", &[b"host: echo"]), Want::RoutedOrRefused);
    h.check("method get", &request(b"get", b"/v1", b"HTTP/1.1", &[b"host: echo"]), Want::RoutedOrRefused);
    let long_method = "M".repeat(4096);
    h.check("4 KiB method", &request(long_method.as_bytes(), b"/v1", b"HTTP/1.1", &[b"host: echo"]), Want::RoutedOrRefused);
    h.check("method with a control byte", &request(b"G\x01T", b"/v1", b"HTTP/1.1", &[b"host: echo"]), Want::Refused);
    h.check("no method", &request(b"", b"/v1", b"HTTP/1.1", &[b"host: echo"]), Want::Refused);
    h.check("selection header from the client", &get(b"/", &[b"x-meshroute-cluster: echo-v2"]), Want::Refused);

    // The same over HTTP/2 (hyper, so only what it will write).
    mesh.get("echo", &path_59k).http2().expect_backend("echo-v1");
    let query: String = (0..3_000).map(|i| format!("p{i}={i}&")).collect();
    mesh.get("echo", &format!("/v1?{query}q=1")).http2().expect_backend("echo-v2");
    let mut call = mesh.get("echo", "/").http2().header("version", "two");
    for i in 0..90 {
        call = call.header(&format!("x-h{i}"), &"c".repeat(300));
    }
    call.expect_backend("echo-v2");
    let reply = mesh.get("echo", "//v1/./a/../b").http2().send();
    assert_eq!((reply.status, reply.backend.as_deref()), (200, Some("echo-v1")), "{reply}");
    assert_eq!(reply.echo.map(|e| e.path).as_deref(), Some("/v1/b"), "Envoy forwards the normalized path");
    let mut call = mesh.get("echo", "/");
    for _ in 0..80 {
        call = call.header("version", "one");
    }
    call.header("version", "two").expect_backend("echo-v2");

    println!("outcomes:\n  {}", h.outcomes.join("\n  "));
    let log = std::fs::read_to_string(mesh.work_dir().join("envoy.log")).unwrap_or_default();
    assert!(!log.contains("panic"), "the filter panicked:\n{}", mesh.envoy_log_tail());
    assert_eq!(wasm_vms_created(&mesh), created_before, "a wasm VM was restarted");
}

/// Envoy's count of wasm VMs created so far; a VM that died and was reloaded adds to it.
fn wasm_vms_created(mesh: &Mesh) -> u64 {
    mesh.stats("wasm").iter().filter(|(name, _)| name.ends_with(".created")).map(|(_, n)| n).sum()
}
