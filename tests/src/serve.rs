//! What the test backends share: accepting connections and serving each one with HTTP/1.1 or
//! cleartext HTTP/2 (told apart per connection), reporting the request headers a backend saw,
//! keeping a record of the requests it received ([`Received`]), and reading the response
//! headers a request asks its backend to send.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Serves every connection accepted on `listener` with `answer` until the task is dropped.
/// Accept errors (such as running out of file descriptors) are reported and retried rather than
/// ending the server; `backend` names it in those reports.
pub(crate) async fn serve_connections<F, Fut, B>(backend: &str, listener: TcpListener, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                eprintln!("backend {backend}: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Answers go out as they are written, not held back for the client's delayed ACK of the
        // previous segment (a real server sets this too; without it an HTTP/2 answer written in
        // several pieces can wait 40 ms for the client's ACK).
        let _ = stream.set_nodelay(true);
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(request).await) }
            });
            // A client closing its connection mid-request is not the server's problem.
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Request headers as a backend reports them: names in lower case, repeated headers joined with
/// `, `, values that are not UTF-8 made readable.
pub(crate) fn seen_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        seen.entry(name.as_str().to_owned())
            .and_modify(|known| {
                known.push_str(", ");
                known.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    seen
}

/// One request as a backend received it, for a test to read after the fact: what a proxy sent
/// to a backend whose answer the client never sees (a mirror) is only known this way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// The method; `POST` for every gRPC call.
    pub method: String,
    /// The path with its query string; for a gRPC call its full method, `/SERVICE/METHOD`.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Every header line, names in lower case, values as text (made readable if not UTF-8);
    /// lines of one name together, in the order they came, names in the order each first came.
    /// For a gRPC call these are its metadata. Over HTTP/2 the `:authority` is reported as a
    /// `host` line, first, as the echo backend's answer reports it (unless a `host` header came
    /// as well).
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    fn new<B>(request: &Request<B>) -> SeenRequest {
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        if let Some(authority) = request.uri().authority() {
            if !request.headers().contains_key(hyper::header::HOST) {
                headers.insert(0, ("host".to_owned(), authority.to_string()));
            }
        }
        SeenRequest {
            method: request.method().as_str().to_owned(),
            path: request.uri().path_and_query().map_or("/", |path| path.as_str()).to_owned(),
            version: format!("{:?}", request.version()),
            headers,
        }
    }

    /// The value of header `name` (any case), its lines joined with `, ` as the echo backend's
    /// answer reports it; none when it did not come.
    pub fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let lines: Vec<&str> = self.headers.iter().filter(|(known, _)| *known == name).map(|(_, value)| value.as_str()).collect();
        (!lines.is_empty()).then(|| lines.join(", "))
    }

    /// The values of header `name` whether on several lines or folded onto one, as
    /// [`crate::client::header_values`] reads them; none when it did not come.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        crate::client::header_values(self.header(name).as_deref())
    }

    /// The headers whose names start with `prefix` (lower case).
    pub fn headers_starting_with(&self, prefix: &str) -> Vec<&(String, String)> {
        self.headers.iter().filter(|(name, _)| name.starts_with(prefix)).collect()
    }
}

impl fmt::Display for SeenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.method, self.path, self.version)?;
        for (i, (name, value)) in self.headers.iter().enumerate() {
            write!(f, "{} {name}: {value}", if i == 0 { " with" } else { "," })?;
        }
        Ok(())
    }
}

/// The record a backend keeps of the requests it received, in the order they arrived: each is
/// recorded as soon as its head is read, before the backend waits or answers, so a request the
/// backend answers slowly, with an error, or never (the client went away) is recorded all the
/// same. Cheap to clone; every clone reads and writes the same record, kept for the backend's
/// lifetime.
#[derive(Clone, Debug, Default)]
pub struct Received(Arc<Mutex<Vec<SeenRequest>>>);

impl Received {
    /// An empty record.
    pub fn new() -> Received {
        Received::default()
    }

    pub(crate) fn record<B>(&self, request: &Request<B>) {
        let seen = SeenRequest::new(request);
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(seen);
    }

    /// Every request received so far, oldest first.
    pub fn all(&self) -> Vec<SeenRequest> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// The request header through which a client asks a test backend to send response headers of
/// its choosing: each `name=value` makes the backend add the response header `name: value`.
/// Several may be given, on several lines or comma-separated on one line.
pub const RESPONSE_HEADER_REQUEST: &str = "x-echo-response-header";

/// The response headers that `headers` ask for through [`RESPONSE_HEADER_REQUEST`], in order;
/// an error names the first item that is not a valid `name=value`.
pub(crate) fn requested_response_headers(headers: &HeaderMap) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut requested = Vec::new();
    for line in headers.get_all(RESPONSE_HEADER_REQUEST) {
        let line = line.to_str().map_err(|_| format!("{RESPONSE_HEADER_REQUEST}: {line:?} is not text"))?;
        for item in line.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let parsed = item.split_once('=').and_then(|(name, value)| {
                Some((HeaderName::from_bytes(name.trim().as_bytes()).ok()?, HeaderValue::from_str(value.trim()).ok()?))
            });
            requested.push(parsed.ok_or_else(|| format!("{RESPONSE_HEADER_REQUEST}: {item:?} is not a valid name=value"))?);
        }
    }
    Ok(requested)
}
