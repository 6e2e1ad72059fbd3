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

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

pub use crate::serve::RESPONSE_HEADER_REQUEST;
use crate::serve::{requested_response_headers, seen_headers, serve_connections};

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
        let requested = match requested_response_headers(&parts.headers) {
            Ok(requested) => requested,
            Err(why) => {
                let mut response = Response::new(Full::new(Bytes::from(why)));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                response.headers_mut().insert(BACKEND_HEADER, self.header.clone());
                return response;
            }
        };
        let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
        for (name, value) in requested {
            response.headers_mut().append(name, value);
        }
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
