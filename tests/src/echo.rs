//! The echo backend: a real HTTP server (HTTP/1.1 and cleartext HTTP/2, told apart per
//! connection) that answers every request with who it is and what it saw. A test learns from
//! the answer which backend a request reached and what the proxy forwarded to it.
//!
//! The answer is JSON, `{"backend": NAME, "method": ..., "path": PATH_WITH_QUERY, "headers":
//! {name: value}}`, with the response header `x-echo-backend: NAME`. Header names are lower
//! case; repeated headers are joined with `, `.
//!
//! A request may ask for response headers of its choosing, since a test of what a proxy does to
//! response headers needs the backend to send some: each `x-echo-response-header: name=value`
//! ([`RESPONSE_HEADER_REQUEST`]) adds `name: value` to the answer; an item that is not a valid
//! `name=value` gets a 400 instead.
//!
//! A request may also ask the backend to be slow or to fail, since timeouts and retries can only
//! be seen against a backend that is slow or fails:
//!
//! - `x-echo-delay-ms: N` ([`DELAY_REQUEST`]): wait N milliseconds before answering (after
//!   reading the request).
//! - `x-echo-fail: CODE` ([`FAIL_REQUEST`]): answer with status CODE instead of 200; the answer
//!   is otherwise the usual one (the JSON report and `x-echo-backend`), so a test can tell a
//!   backend's failure from the proxy's.
//! - `x-echo-attempt-key: KEY` ([`ATTEMPT_KEY_REQUEST`]): count the requests carrying KEY, the
//!   tries of one logical request, and report the count, this try included, in the response
//!   header `x-echo-attempts` ([`ATTEMPTS_HEADER`]) and the report's `attempts`, whatever the
//!   status. A request is counted as it arrives, before any delay, so a try the proxy gave up
//!   on is counted too. Counts are kept per backend (per [`serve`], that is per process for the
//!   `meshroute-echo` binary) for its lifetime; keys should be unique ([`attempt_key`]).
//! - `x-echo-fail-first: K` ([`FAIL_FIRST_REQUEST`], needs a key): fail only the first K tries
//!   of the key, with the status of `x-echo-fail` (503 without it), and answer the later ones
//!   with 200. Without it, `x-echo-fail` fails every try.
//!
//! Each of these headers may be given once; a value that is not a number (or, for
//! `x-echo-fail`, not a status code) gets a 400, as does `x-echo-fail-first` without a key.
//!
//! A backend can also be slow or failing on its own, whatever the request asks ([`Behaviour`],
//! [`serve_as`]): a copy of a request that a proxy sends to a second backend (a mirror) carries
//! the headers the first one got, so only the backend itself can make the two answer
//! differently.
//!
//! Every backend keeps a record of the requests it received ([`Received`]): method, path with
//! query and every header line. A test reads there what reached a backend whose answer the
//! client never sees.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

use crate::serve::{requested_response_headers, seen_headers, serve_connections};
pub use crate::serve::{Received, SeenRequest, RESPONSE_HEADER_REQUEST};

/// The response header naming the backend that answered.
pub const BACKEND_HEADER: &str = "x-echo-backend";

/// The request header asking the backend to wait this many milliseconds before answering.
pub const DELAY_REQUEST: &str = "x-echo-delay-ms";

/// The request header asking the backend to answer with this status instead of 200.
pub const FAIL_REQUEST: &str = "x-echo-fail";

/// The request header naming the logical request a try belongs to; the backend counts the
/// tries per key and reports the count in [`ATTEMPTS_HEADER`].
pub const ATTEMPT_KEY_REQUEST: &str = "x-echo-attempt-key";

/// The request header asking the backend to fail only the first K tries of the request's key.
pub const FAIL_FIRST_REQUEST: &str = "x-echo-fail-first";

/// The response header with the number of tries the backend has seen for the request's key,
/// the one answered included.
pub const ATTEMPTS_HEADER: &str = "x-echo-attempts";

/// The status a try fails with under [`FAIL_FIRST_REQUEST`] when [`FAIL_REQUEST`] names none
/// (`StatusCode::SERVICE_UNAVAILABLE`).
pub const DEFAULT_FAIL_STATUS: u16 = 503;

/// A key no other call of this process (nor, in practice, of another process) returns, for
/// [`ATTEMPT_KEY_REQUEST`]: `LABEL-PID-NANOS-SEQUENCE`.
pub fn attempt_key(label: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos());
    format!("{label}-{}-{nanos}-{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed))
}

/// What a backend does to every request on its own, on top of what the request asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Waits this long before answering, before any delay the request asks for.
    pub delay: Duration,
    /// Answers every request with this status instead of the one it would have given (the answer
    /// is otherwise the usual one, with the report and `x-echo-backend`); a malformed request
    /// still gets its 400.
    pub status: Option<u16>,
}

/// Serves echo answers as backend `name` on `listener` until the task is dropped.
///
/// Fails at once if `name` cannot be sent as a header value.
pub async fn serve(name: String, listener: TcpListener) -> io::Result<()> {
    serve_as(name, listener, Behaviour::default(), Received::new()).await
}

/// Serves echo answers as [`serve`] does, behaving as `behaviour` says and recording every
/// request it receives in `received`.
///
/// Fails at once if `name` cannot be sent as a header value or `behaviour.status` is not a
/// status code.
pub async fn serve_as(name: String, listener: TcpListener, behaviour: Behaviour, received: Received) -> io::Result<()> {
    let header = HeaderValue::from_str(&name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("backend name {name:?} is not a valid header value")))?;
    let status = behaviour
        .status
        .map(|code| {
            StatusCode::from_u16(code)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("backend {name}: {code} is not a status code")))
        })
        .transpose()?;
    let backend =
        Arc::new(Backend { name: name.clone(), header, attempts: Attempts::default(), delay: behaviour.delay, status, received });
    let answer = move |request| {
        let backend = Arc::clone(&backend);
        async move { backend.answer(request).await }
    };
    serve_connections(&name, listener, answer).await;
    Ok(())
}

struct Backend {
    name: String,
    header: HeaderValue,
    /// Tries seen per [`ATTEMPT_KEY_REQUEST`] key.
    attempts: Attempts,
    /// [`Behaviour::delay`].
    delay: Duration,
    /// [`Behaviour::status`].
    status: Option<StatusCode>,
    received: Received,
}

/// What a request asks of the backend's behaviour ([`DELAY_REQUEST`] and the rest), its failing
/// status of type `S`: an HTTP [`StatusCode`] here, a gRPC code for the gRPC echo backend
/// ([`crate::grpc`]), which reads the same headers as its request metadata.
pub(crate) struct Asked<S> {
    pub(crate) delay: Duration,
    fail: Option<S>,
    fail_first: Option<u64>,
    pub(crate) key: Option<String>,
}

impl Asked<StatusCode> {
    fn from_headers(headers: &HeaderMap) -> Result<Asked<StatusCode>, String> {
        Asked::parse(headers, "an HTTP status code", |text| {
            text.parse::<u16>().ok().and_then(|code| StatusCode::from_u16(code).ok())
        })
    }
}

impl<S: Copy> Asked<S> {
    /// Reads the headers, `x-echo-fail`'s value with `status` (`what` it should be, for the
    /// complaint when it is not).
    pub(crate) fn parse(headers: &HeaderMap, what: &str, status: impl Fn(&str) -> Option<S>) -> Result<Asked<S>, String> {
        let delay = single(headers, DELAY_REQUEST)?.map(|text| number(DELAY_REQUEST, text)).transpose()?;
        let fail = single(headers, FAIL_REQUEST)?
            .map(|text| status(text).ok_or_else(|| format!("{FAIL_REQUEST}: {text:?} is not {what}")))
            .transpose()?;
        let fail_first = single(headers, FAIL_FIRST_REQUEST)?.map(|text| number(FAIL_FIRST_REQUEST, text)).transpose()?;
        let key = single(headers, ATTEMPT_KEY_REQUEST)?.map(str::to_owned);
        if fail_first.is_some() && key.is_none() {
            return Err(format!("{FAIL_FIRST_REQUEST} needs {ATTEMPT_KEY_REQUEST} to count the tries by"));
        }
        Ok(Asked { delay: Duration::from_millis(delay.unwrap_or(0)), fail, fail_first, key })
    }

    /// The status to answer the `attempt`-th try of the key (1 for the first) with: `ok`, or
    /// the failing one (`failing` when `x-echo-fail` names none).
    pub(crate) fn status(&self, attempt: Option<u64>, ok: S, failing: S) -> S {
        let failing = self.fail.unwrap_or(failing);
        match (self.fail_first, attempt) {
            (Some(first), Some(attempt)) if attempt <= first => failing,
            (Some(_), _) => ok,
            (None, _) => self.fail.unwrap_or(ok),
        }
    }
}

/// The tries a backend has seen per [`ATTEMPT_KEY_REQUEST`] key.
#[derive(Default)]
pub(crate) struct Attempts(Mutex<HashMap<String, u64>>);

impl Attempts {
    /// Counts a try of the request's key, if it has one; the count, this try included.
    pub(crate) fn count<S>(&self, asked: &Asked<S>) -> Option<u64> {
        asked.key.as_ref().map(|key| {
            let mut attempts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let seen = attempts.entry(key.clone()).or_default();
            *seen += 1;
            *seen
        })
    }
}

/// The value of a header given at most once, as text.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, String> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(format!("{name} given more than once"));
    }
    value.to_str().map(|text| Some(text.trim())).map_err(|_| format!("{name}: {value:?} is not text"))
}

fn number(name: &str, text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("{name}: {text:?} is not a whole number"))
}

impl Backend {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        self.received.record(&request);
        let (parts, body) = request.into_parts();
        // Read the body to its end so that the connection can carry the next request.
        let _ = body.collect().await;

        let mut headers = seen_headers(&parts.headers);
        // HTTP/2 carries the host as `:authority`, not as a header; report it as `host`.
        if let Some(authority) = parts.uri.authority() {
            headers.entry("host".to_owned()).or_insert_with(|| authority.to_string());
        }

        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        let (requested, asked) = match (requested_response_headers(&parts.headers), Asked::from_headers(&parts.headers)) {
            (Ok(requested), Ok(asked)) => (requested, asked),
            (Err(why), _) | (_, Err(why)) => return self.bad_request(why),
        };
        // Counted as it arrives: a try the proxy gives up on during the delay still counts.
        let attempt = self.attempts.count(&asked);
        let delay = self.delay + asked.delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }

        let mut answer = json!({
            "backend": self.name,
            "method": parts.method.as_str(),
            "path": path,
            "headers": headers,
        });
        if let Some(attempt) = attempt {
            answer["attempts"] = attempt.into();
        }
        let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
        *response.status_mut() =
            self.status.unwrap_or_else(|| asked.status(attempt, StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE));
        for (name, value) in requested {
            response.headers_mut().append(name, value);
        }
        if let Some(attempt) = attempt {
            response.headers_mut().insert(ATTEMPTS_HEADER, HeaderValue::from(attempt));
        }
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().insert(BACKEND_HEADER, self.header.clone());
        response
    }

    fn bad_request(&self, why: String) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(why)));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response.headers_mut().insert(BACKEND_HEADER, self.header.clone());
        response
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hyper::Method;

    use super::*;
    use crate::client::{HttpClient, Request};

    async fn start(name: &str) -> std::net::SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|error| panic!("listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
        tokio::spawn(serve(name.to_owned(), listener));
        address
    }

    fn get(address: std::net::SocketAddr, headers: &[(&str, &str)], http2: bool) -> Request {
        Request {
            method: Method::GET,
            service: "echo".to_owned(),
            address,
            path: "/".to_owned(),
            headers: headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
            http2,
        }
    }

    /// Each `x-echo-response-header: name=value`, on a line of its own or comma-separated, adds
    /// that response header, repeated names on lines of their own; the answer is otherwise the
    /// usual one.
    #[tokio::test]
    async fn a_request_chooses_response_headers() {
        let address = start("echo-v1").await;
        for http2 in [false, true] {
            let request = get(
                address,
                &[(RESPONSE_HEADER_REQUEST, "x-one=1"), (RESPONSE_HEADER_REQUEST, "x-two=2, x-one=again, X-Upper=3")],
                http2,
            );
            let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
            assert_eq!((reply.status, reply.backend.as_deref()), (200, Some("echo-v1")), "{request}: {reply}");
            assert_eq!(reply.header_values("x-one"), ["1", "again"], "{request}: {:?}", reply.headers);
            assert_eq!(reply.header("x-two"), Some("2"), "{request}: {:?}", reply.headers);
            assert_eq!(reply.header("x-upper"), Some("3"), "{request}: {:?}", reply.headers);
            assert!(reply.echo.is_some(), "{request}: {reply}");
        }
    }

    /// `x-echo-delay-ms` holds the answer back at least that long; `x-echo-fail` answers with
    /// its status, still with the backend's name and report.
    #[tokio::test]
    async fn a_request_chooses_a_delay_and_a_failing_status() {
        let address = start("echo-v1").await;
        for http2 in [false, true] {
            let request = get(address, &[(DELAY_REQUEST, "200")], http2);
            let started = std::time::Instant::now();
            let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
            let elapsed = started.elapsed();
            assert_eq!((reply.status, reply.backend.as_deref()), (200, Some("echo-v1")), "{request}: {reply}");
            // Only a lower bound: the backend waited; how much longer the machine took is no concern.
            assert!(elapsed >= Duration::from_millis(200), "{request}: answered after {elapsed:?}");

            for code in ["503", "500", "429"] {
                let request = get(address, &[(FAIL_REQUEST, code)], http2);
                let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
                assert_eq!(
                    (reply.status.to_string(), reply.backend.as_deref()),
                    (code.to_owned(), Some("echo-v1")),
                    "{request}: {reply}"
                );
                assert_eq!(reply.echo.as_ref().map(|echo| echo.backend.as_str()), Some("echo-v1"), "{request}: {reply}");
                assert_eq!(reply.attempts(), None, "{request}: no key, no count: {reply}");
            }
        }
    }

    /// `x-echo-fail-first: K` fails the first K tries of a key with `x-echo-fail`'s status (503
    /// without it) and answers later ones with 200; every answer counts the key's tries, and
    /// each key counts on its own.
    #[tokio::test]
    async fn fail_first_fails_only_the_first_tries_of_a_key_and_counts_them() {
        let address = start("echo-v1").await;
        let client = HttpClient::new();
        let (key, other) = (attempt_key("fail-first"), attempt_key("fail-first"));
        assert_ne!(key, other);
        let mut seen = Vec::new();
        for http2 in [false, true, false] {
            let request = get(address, &[(FAIL_FIRST_REQUEST, "2"), (FAIL_REQUEST, "500"), (ATTEMPT_KEY_REQUEST, &key)], http2);
            let reply = client.send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
            assert_eq!(reply.backend.as_deref(), Some("echo-v1"), "{request}: {reply}");
            assert_eq!(reply.echo.as_ref().and_then(|echo| echo.attempts), reply.attempts(), "{request}: {reply}");
            seen.push((reply.status, reply.attempts()));
        }
        assert_eq!(seen, [(500, Some(1)), (500, Some(2)), (200, Some(3))]);

        let request = get(address, &[(FAIL_FIRST_REQUEST, "1"), (ATTEMPT_KEY_REQUEST, &other)], false);
        let reply = client.send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
        assert_eq!((reply.status, reply.attempts()), (DEFAULT_FAIL_STATUS, Some(1)), "{request}: {reply}");
    }

    /// With `x-echo-fail` and a key but no `x-echo-fail-first`, every try fails, and every
    /// failing answer carries the count: what a client sees last tells how many tries there were.
    #[tokio::test]
    async fn tries_are_counted_when_every_try_fails() {
        let address = start("echo-v1").await;
        let key = attempt_key("always");
        for expected in 1..=3 {
            let request = get(address, &[(FAIL_REQUEST, "503"), (ATTEMPT_KEY_REQUEST, &key)], false);
            let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
            assert_eq!((reply.status, reply.attempts()), (503, Some(expected)), "{request}: {reply}");
        }
    }

    /// Every request is recorded as it arrives, HTTP/1.1 and HTTP/2 alike: its method, path with
    /// query, protocol and every header line, names in lower case, repeated lines kept apart.
    #[tokio::test]
    async fn every_request_is_recorded_with_its_method_path_and_header_lines() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|error| panic!("listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
        let received = Received::new();
        tokio::spawn(serve_as("echo-v1".to_owned(), listener, Behaviour::default(), received.clone()));
        assert_eq!(received.count(), 0);
        for http2 in [false, true] {
            let mut request = get(address, &[("host", "echo"), ("X-Twice", "a"), ("x-twice", "b"), ("x-once", "1")], http2);
            request.method = Method::PUT;
            request.path = "/a/b?c=d&e".to_owned();
            let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
            assert_eq!((reply.status, reply.backend.as_deref()), (200, Some("echo-v1")), "{request}: {reply}");
        }
        let seen = received.all();
        assert_eq!(seen.len(), 2, "{seen:#?}");
        for (request, version) in seen.iter().zip(["HTTP/1.1", "HTTP/2.0"]) {
            assert_eq!(
                (request.method.as_str(), request.path.as_str(), request.version.as_str()),
                ("PUT", "/a/b?c=d&e", version)
            );
            let lines = |name: &str| -> Vec<&str> {
                request.headers.iter().filter(|(known, _)| known == name).map(|(_, value)| value.as_str()).collect()
            };
            assert_eq!(lines("x-twice"), ["a", "b"], "{request}");
            assert_eq!(request.header("X-Twice").as_deref(), Some("a, b"), "{request}");
            assert_eq!(request.header_values("x-twice"), ["a", "b"], "{request}");
            assert_eq!(lines("x-once"), ["1"], "{request}");
            assert_eq!(request.header("x-absent"), None, "{request}");
        }
        // HTTP/1.1 sends the Host header; HTTP/2 names the host in `:authority`, the address.
        assert_eq!(seen[0].header("host").as_deref(), Some("echo"), "{}", seen[0]);
        assert_eq!(seen[1].header("host"), Some(address.to_string()), "{}", seen[1]);
    }

    /// A backend's own [`Behaviour`] applies to every request: it answers with its status and
    /// only after its delay, and still records each request.
    #[tokio::test]
    async fn a_backend_can_be_slow_or_failing_on_its_own() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|error| panic!("listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
        let received = Received::new();
        let behaviour = Behaviour { delay: Duration::from_millis(200), status: Some(500) };
        tokio::spawn(serve_as("echo-broken".to_owned(), listener, behaviour, received.clone()));
        for http2 in [false, true] {
            let request = get(address, &[], http2);
            let started = std::time::Instant::now();
            let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
            let elapsed = started.elapsed();
            assert_eq!((reply.status, reply.backend.as_deref()), (500, Some("echo-broken")), "{request}: {reply}");
            assert!(reply.echo.is_some(), "{request}: {reply}");
            assert!(elapsed >= Duration::from_millis(200), "{request}: answered after {elapsed:?}");
        }
        assert_eq!(received.count(), 2, "{:#?}", received.all());
    }

    #[tokio::test]
    async fn malformed_delay_or_failure_requests_get_a_400() {
        let address = start("echo-v1").await;
        let bad: [&[(&str, &str)]; 6] = [
            &[(DELAY_REQUEST, "soon")],
            &[(DELAY_REQUEST, "-1")],
            &[(FAIL_REQUEST, "oops")],
            &[(FAIL_REQUEST, "1000")],
            &[(FAIL_FIRST_REQUEST, "1")],
            &[(ATTEMPT_KEY_REQUEST, "a"), (ATTEMPT_KEY_REQUEST, "b")],
        ];
        for headers in bad {
            let request = get(address, headers, false);
            let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
            assert_eq!((reply.status, reply.backend.as_deref()), (400, Some("echo-v1")), "{request}: {reply}");
            assert!(reply.body.contains(headers[0].0), "{request}: {reply}");
        }
    }

    #[tokio::test]
    async fn a_malformed_response_header_request_gets_a_400() {
        let address = start("echo-v1").await;
        for item in ["no-equals-sign", "bad name=1", "=value"] {
            let request = get(address, &[(RESPONSE_HEADER_REQUEST, item)], false);
            let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
            assert_eq!((reply.status, reply.backend.as_deref()), (400, Some("echo-v1")), "{request}: {reply}");
            assert!(reply.body.contains(RESPONSE_HEADER_REQUEST), "{request}: {reply}");
        }
    }
}
