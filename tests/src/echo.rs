//! The echo backend: a real HTTP server (HTTP/1.1 and cleartext HTTP/2, told apart per
//! connection) that answers every request with who it is and what it saw. A test learns from
//! the answer which backend a request reached and what the proxy forwarded to it.
//!
//! The answer is JSON, `{"backend": NAME, "method": ..., "path": PATH_WITH_QUERY, "headers":
//! {name: value}}`, with the response header `x-echo-backend: NAME`. Header names are lower
//! case; repeated headers are joined with `, `.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use serde_json::json;
use tokio::net::TcpListener;

use crate::serve::{seen_headers, serve_connections};

/// The response header naming the backend that answered.
pub const BACKEND_HEADER: &str = "x-echo-backend";

/// Serves echo answers as backend `name` on `listener` until the task is dropped.
///
/// Fails at once if `name` cannot be sent as a header value.
pub async fn serve(name: String, listener: TcpListener) -> io::Result<()> {
    let header = HeaderValue::from_str(&name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("backend name {name:?} is not a valid header value")))?;
    let backend = Arc::new(Backend { name: name.clone(), header });
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
}

impl Backend {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        // Read the body to its end so that the connection can carry the next request.
        let _ = body.collect().await;

        let mut headers = seen_headers(&parts.headers);
        // HTTP/2 carries the host as `:authority`, not as a header; report it as `host`.
        if let Some(authority) = parts.uri.authority() {
            headers.entry("host".to_owned()).or_insert_with(|| authority.to_string());
        }

        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        let answer = json!({
            "backend": self.name,
            "method": parts.method.as_str(),
            "path": path,
            "headers": headers,
        });
        let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().insert(BACKEND_HEADER, self.header.clone());
        response
    }
}
