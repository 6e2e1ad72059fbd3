//! A small HTTP client for talking to a mesh: a [`Request`] names the Service it is for and
//! the address it is sent to, a [`Reply`] tells which backend answered and what that backend saw,
//! and a [`Tally`] counts where many requests went.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::echo::{ATTEMPTS_HEADER, BACKEND_HEADER};
use crate::serve::seen_headers;

/// No answer within this long means the system under test hung; it is not a timing assertion.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// One request to one Service address.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The Service as a test names it, `NAME:PORT`, for messages.
    pub service: String,
    /// Where the request is sent: the Service's ClusterIP and port.
    pub address: SocketAddr,
    /// Path with an optional query string.
    pub path: String,
    /// Extra request headers, in order; a `host` header here replaces the default.
    pub headers: Vec<(String, String)>,
    /// Cleartext HTTP/2 with prior knowledge instead of HTTP/1.1. The `host` header is not sent
    /// then: HTTP/2 names the host in `:authority`, which is the address.
    pub http2: bool,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = if self.http2 { " over h2c" } else { "" };
        write!(f, "{} {} to {} ({}){protocol}", self.method, self.path, self.service, self.address)?;
        for (i, (name, value)) in self.headers.iter().enumerate() {
            write!(f, "{} {name}: {value}", if i == 0 { " with" } else { "," })?;
        }
        Ok(())
    }
}

/// What came back.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// The `x-echo-backend` response header: which echo backend answered, if any did.
    pub backend: Option<String>,
    /// The echo backend's report, when the body is one.
    pub echo: Option<Echo>,
    /// The response headers, as [`Echo::headers`] holds the request's.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// An echo backend's report of the request it received.
#[derive(Clone, Debug, Deserialize)]
pub struct Echo {
    pub backend: String,
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// The tries the backend has seen for the request's `x-echo-attempt-key`, this one included;
    /// none without a key.
    #[serde(default)]
    pub attempts: Option<u64>,
}

/// The values in a header as the test backends and [`Reply::headers`] report it, in order: one
/// per line the header came on and one per comma-separated item of a line, since a proxy that
/// adds a value to a header may put it on a line of its own (`old` and `new`) or fold it into
/// the existing line (`old,new`); both give `["old", "new"]`. No header gives none. Only for
/// values without commas of their own.
pub fn header_values(reported: Option<&str>) -> Vec<String> {
    reported.into_iter().flat_map(|text| text.split(',')).map(|value| value.trim().to_owned()).collect()
}

impl Reply {
    /// The value of a request header as the backend received it (names are lower case).
    pub fn seen_header(&self, name: &str) -> Option<&str> {
        self.echo.as_ref()?.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The values of a request header as the backend received it, whether on several lines or
    /// folded onto one ([`header_values`]); none when the backend did not see it.
    pub fn seen_header_values(&self, name: &str) -> Vec<String> {
        header_values(self.seen_header(name))
    }

    /// The value of a response header as the client received it, repeated lines joined with `, `.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The values of a response header as the client received it, whether on several lines or
    /// folded onto one ([`header_values`]); none when there was no such header.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        header_values(self.header(name))
    }

    /// The `x-echo-attempts` response header: how many tries of the request's
    /// `x-echo-attempt-key` the backend that answered has seen, this one included (whatever the
    /// status); none when no backend answered or the request had no key.
    pub fn attempts(&self) -> Option<u64> {
        self.header(ATTEMPTS_HEADER)?.parse().ok()
    }

    /// A short label for counting outcomes: the backend's name, or `HTTP <status>` when no
    /// backend answered successfully.
    pub fn outcome(&self) -> String {
        match (&self.backend, self.status) {
            (Some(backend), 200) => backend.clone(),
            (Some(backend), status) => format!("HTTP {status} from {backend}"),
            (None, status) => format!("HTTP {status}"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.backend {
            Some(backend) => write!(f, "{} from backend {backend}", self.status)?,
            None => write!(f, "{} from no backend", self.status)?,
        }
        const SHOWN: usize = 400;
        if !self.body.is_empty() {
            let body: String = self.body.chars().take(SHOWN).collect();
            let more = if self.body.chars().count() > SHOWN { "..." } else { "" };
            write!(f, ", body: {body}{more}")?;
        }
        Ok(())
    }
}

/// Outcome counts over many requests, keyed by [`Reply::outcome`].
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub counts: BTreeMap<String, usize>,
}

impl Tally {
    pub fn add(&mut self, outcome: String) {
        *self.counts.entry(outcome).or_default() += 1;
    }

    pub fn count(&self, outcome: &str) -> usize {
        self.counts.get(outcome).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.counts.iter().map(|(outcome, n)| format!("{outcome}: {n}")).collect();
        write!(f, "{{{}}} of {}", parts.join(", "), self.total())
    }
}

/// A pooling client for HTTP/1.1 and cleartext HTTP/2; cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    http1: Client<HttpConnector, Full<Bytes>>,
    http2: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// HTTP/1.1 header names go out in title case (`Version: one`), as many clients send them.
    pub fn new() -> Self {
        Self {
            http1: Client::builder(TokioExecutor::new()).http1_title_case_headers(true).build_http(),
            http2: Client::builder(TokioExecutor::new()).http2_only(true).build_http(),
        }
    }

    /// Sends `request`; an error means there was no HTTP answer at all.
    pub async fn send(&self, request: &Request) -> Result<Reply, String> {
        let uri: Uri = format!("http://{}{}", request.address, request.path)
            .parse()
            .map_err(|error| format!("bad request target {:?}: {error}", request.path))?;
        let mut outgoing = hyper::Request::new(Full::new(Bytes::new()));
        *outgoing.method_mut() = request.method.clone();
        *outgoing.uri_mut() = uri;
        for (name, value) in &request.headers {
            if request.http2 && name.eq_ignore_ascii_case("host") {
                continue;
            }
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|error| format!("header {name:?}: {error}"))?;
            let value = HeaderValue::from_str(value).map_err(|error| format!("header value {value:?}: {error}"))?;
            outgoing.headers_mut().append(name, value);
        }
        let exchange = async {
            let client = if request.http2 { &self.http2 } else { &self.http1 };
            let response = client.request(outgoing).await.map_err(|error| format!("{error:?}"))?;
            let status = response.status().as_u16();
            let headers = seen_headers(response.headers());
            let backend = headers.get(BACKEND_HEADER).cloned();
            let body = response.into_body().collect().await.map_err(|error| format!("reading the body: {error}"))?;
            let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
            let echo = serde_json::from_str(&body).ok();
            Ok(Reply { status, backend, echo, headers, body })
        };
        tokio::time::timeout(ANSWER_DEADLINE, exchange).await.map_err(|_| format!("no answer within {ANSWER_DEADLINE:?}"))?
    }

    /// `GET url` for a plain-text answer (Envoy's admin interface): status and body.
    pub async fn get_text(&self, url: &str) -> Result<(u16, String), String> {
        let uri: Uri = url.parse().map_err(|error| format!("bad url {url:?}: {error}"))?;
        let exchange = async {
            let response = self.http1.get(uri).await.map_err(|error| format!("{error}"))?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|error| format!("{error}"))?;
            Ok((status, String::from_utf8_lossy(&body.to_bytes()).into_owned()))
        };
        tokio::time::timeout(ANSWER_DEADLINE, exchange).await.map_err(|_| format!("no answer within {ANSWER_DEADLINE:?}"))?
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A header given twice goes out on two lines over HTTP/1.1, in order, not folded into one:
    /// the tests of repeated headers depend on it.
    #[tokio::test]
    async fn a_repeated_header_goes_out_on_separate_lines() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|error| panic!("listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap_or_else(|error| panic!("accept: {error}"));
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                let n = stream.read(&mut buffer).await.unwrap_or_else(|error| panic!("read: {error}"));
                assert!(n > 0, "the client closed before the end of its request head");
                head.extend_from_slice(&buffer[..n]);
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            String::from_utf8_lossy(&head).into_owned()
        });
        let request = Request {
            method: Method::GET,
            service: "raw".to_owned(),
            address,
            path: "/".to_owned(),
            headers: vec![("x-env".to_owned(), "prod".to_owned()), ("x-env".to_owned(), "canary".to_owned())],
            http2: false,
        };
        let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
        assert_eq!(reply.status, 200);
        let head = server.await.unwrap_or_else(|error| panic!("{error}"));
        let lines: Vec<&str> = head.lines().filter(|line| line.to_ascii_lowercase().starts_with("x-env:")).collect();
        assert_eq!(lines, ["X-Env: prod", "X-Env: canary"], "request head:\n{head}");
    }

    /// A redirect comes back to the test as it is, status and Location, and is not followed:
    /// the tests of RequestRedirect assert on the proxy's own answer. The server answers one
    /// request and then stops listening, so a client that followed the redirect would get no
    /// answer at all.
    #[tokio::test]
    async fn a_redirect_is_returned_not_followed() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|error| panic!("listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
        let location = format!("http://{address}/elsewhere");
        let answer = format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap_or_else(|error| panic!("accept: {error}"));
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                let n = stream.read(&mut buffer).await.unwrap_or_else(|error| panic!("read: {error}"));
                assert!(n > 0, "the client closed before the end of its request head");
                head.extend_from_slice(&buffer[..n]);
            }
            let _ = stream.write_all(answer.as_bytes()).await;
            drop(listener);
        });
        let request = Request {
            method: Method::GET,
            service: "raw".to_owned(),
            address,
            path: "/first".to_owned(),
            headers: Vec::new(),
            http2: false,
        };
        let reply = HttpClient::new().send(&request).await.unwrap_or_else(|error| panic!("{request}: {error}"));
        assert_eq!((reply.status, reply.header("location")), (302, Some(location.as_str())), "{request}: {reply}");
        server.await.unwrap_or_else(|error| panic!("{error}"));
    }
}
