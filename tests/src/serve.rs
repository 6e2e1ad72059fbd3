//! What the test backends share: accepting connections and serving each one with HTTP/1.1 or
//! cleartext HTTP/2 (told apart per connection), reporting the request headers a backend saw,
//! and reading the response headers a request asks its backend to send.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::future::Future;
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
