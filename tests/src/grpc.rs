//! The gRPC echo backend and client: `echo_basic.grpcecho.GrpcEcho` (`proto/grpcecho.proto`),
//! served by tonic over cleartext HTTP/2, the way the product page's GRPCRoute expects it.
//!
//! Every answer carries the backend's name, the full method it served and the request metadata
//! it saw; every response, error or not, has the header `x-echo-backend: NAME` as the HTTP echo
//! backend's do, so a status that a backend gave is told apart from one the proxy gave. The
//! backend serves every method of the service, `EchoThree` included: routing, not the server,
//! decides what is unimplemented. A method the service does not have is answered
//! `UNIMPLEMENTED`, with that header.
//!
//! As the HTTP echo backend does, it adds the response headers a call asks for with
//! `x-echo-response-header: name=value` metadata ([`crate::echo::RESPONSE_HEADER_REQUEST`]); an
//! item that is not a valid `name=value` is answered `INVALID_ARGUMENT`.
//!
//! As the HTTP echo backend does, a call may ask the backend to be slow or to fail, with the same
//! request metadata, read the same way ([`crate::echo`]): `x-echo-delay-ms: N` waits N
//! milliseconds before answering; `x-echo-fail: CODE` answers with gRPC status CODE (a number,
//! 0 to 16) instead of OK; `x-echo-attempt-key: KEY` counts the tries of KEY and reports the
//! count, this try included, in the response metadata `x-echo-attempts` of every answer, failing
//! ones included; `x-echo-fail-first: K` (with a key) fails only the first K tries of the key,
//! with `x-echo-fail`'s status, UNAVAILABLE (14) without it. A try is counted as it arrives,
//! before its delay. A value that is not a number (or not a gRPC status code), a header given
//! twice, or `x-echo-fail-first` without a key is answered INVALID_ARGUMENT.
//!
//! As the HTTP echo backend does, it keeps a record of the calls it received ([`serve_recorded`],
//! [`Received`]): each call's full method as its path, and its metadata as its headers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::Service as _;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::echo::{Asked, Attempts, ATTEMPTS_HEADER, BACKEND_HEADER, FAIL_REQUEST};
use crate::serve::{requested_response_headers, seen_headers, serve_connections};
pub use crate::serve::{Received, SeenRequest};

/// The code generated from `proto/grpcecho.proto`.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("echo_basic.grpcecho");
}

use proto::grpc_echo_server::{GrpcEcho, GrpcEchoServer};
pub use proto::{EchoRequest, EchoResponse};

/// The service's full name, as GRPCRoute `method.service` names it.
pub const SERVICE: &str = "echo_basic.grpcecho.GrpcEcho";

/// The status a try fails with under `x-echo-fail-first` when `x-echo-fail` names none.
pub const DEFAULT_FAIL_CODE: Code = Code::Unavailable;

/// The gRPC status code numbered `text` (0 to 16), for `x-echo-fail`.
fn code_numbered(text: &str) -> Option<Code> {
    text.parse::<i32>().ok().filter(|number| (0..=16).contains(number)).map(Code::from_i32)
}

/// The trailer in which `EchoStream` says how many request messages arrived.
pub const MESSAGES_TRAILER: &str = "echo-messages";

/// The prefix of the trailers in which `EchoStream` reports the request's trailers.
pub const REQUEST_TRAILER_PREFIX: &str = "echo-request-trailer-";

/// The path of a call: `/SERVICE/METHOD` as given, or a method of [`SERVICE`] by its name.
pub fn method_path(method: &str) -> String {
    if method.starts_with('/') {
        method.to_owned()
    } else {
        format!("/{SERVICE}/{method}")
    }
}

/// Serves `echo_basic.grpcecho.GrpcEcho` as backend `name` on `listener` until the task is
/// dropped. Fails at once if `name` cannot be sent as a header value.
pub async fn serve(name: String, listener: TcpListener) -> io::Result<()> {
    serve_recorded(name, listener, Received::new()).await
}

/// Serves as [`serve`] does, recording every call it receives in `received` as the call
/// arrives, before it is answered (a streaming call once, when it starts).
pub async fn serve_recorded(name: String, listener: TcpListener, received: Received) -> io::Result<()> {
    let header = HeaderValue::from_str(&name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("backend name {name:?} is not a valid header value")))?;
    let server = GrpcEchoServer::new(Backend { name: name.clone() });
    let attempts = Arc::new(Attempts::default());
    let answer = move |mut request: hyper::Request<hyper::body::Incoming>| {
        let (mut server, header, attempts) = (server.clone(), header.clone(), Arc::clone(&attempts));
        received.record(&request);
        async move {
            // Generated servers dispatch on the path but do not hand it on; the answers report it.
            let served = ServedMethod(request.uri().path().to_owned());
            request.extensions_mut().insert(served);
            let requested = requested_response_headers(request.headers());
            let asked = Asked::parse(request.headers(), "a gRPC status code (0 to 16)", code_numbered);
            let mut attempt = None;
            let mut response = match (requested.as_ref().map_err(Clone::clone), asked) {
                (Ok(_), Ok(asked)) => {
                    // Counted as it arrives: a try the client gives up on during the delay counts.
                    attempt = attempts.count(&asked);
                    if !asked.delay.is_zero() {
                        tokio::time::sleep(asked.delay).await;
                    }
                    match asked.status(attempt, Code::Ok, DEFAULT_FAIL_CODE) {
                        Code::Ok => match server.call(request).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        },
                        code => Status::new(code, format!("{FAIL_REQUEST} asked for {code:?}")).into_http(),
                    }
                }
                (Err(why), _) | (_, Err(why)) => Status::invalid_argument(why).into_http(),
            };
            for (name, value) in requested.into_iter().flatten() {
                response.headers_mut().append(name, value);
            }
            if let Some(attempt) = attempt {
                response.headers_mut().insert(ATTEMPTS_HEADER, HeaderValue::from(attempt));
            }
            response.headers_mut().insert(BACKEND_HEADER, header);
            response
        }
    };
    serve_connections(&name, listener, answer).await;
    Ok(())
}

struct Backend {
    name: String,
}

/// The path of the call being served.
#[derive(Clone)]
struct ServedMethod(String);

impl Backend {
    fn answer<T>(&self, request: &Request<T>, message: String, sequence: u32) -> EchoResponse {
        let method = request.extensions().get::<ServedMethod>().map_or_else(String::new, |served| served.0.clone());
        EchoResponse {
            backend: self.name.clone(),
            method,
            message,
            metadata: seen_headers(&request.metadata().clone().into_headers()),
            sequence,
        }
    }

    fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let answer = self.answer(&request, request.get_ref().message.clone(), 0);
        Ok(Response::new(answer))
    }
}

#[tonic::async_trait]
impl GrpcEcho for Backend {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        self.unary(request)
    }

    async fn echo_two(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        self.unary(request)
    }

    async fn echo_three(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        self.unary(request)
    }

    type EchoStreamStream = ReceiverStream<Result<EchoResponse, Status>>;

    /// Answers each message as it arrives; the stream ends with an OK status whose trailers
    /// count the messages and repeat the request's trailers.
    async fn echo_stream(&self, request: Request<Streaming<EchoRequest>>) -> Result<Response<Self::EchoStreamStream>, Status> {
        let (sender, receiver) = mpsc::channel(16);
        let (metadata, extensions, mut messages) = request.into_parts();
        // Everything but the stream itself, to describe each answer with.
        let described = Request::from_parts(metadata, extensions, ());
        let backend = Backend { name: self.name.clone() };
        tokio::spawn(async move {
            let mut count = 0u32;
            loop {
                match messages.message().await {
                    Ok(Some(message)) => {
                        let answer = backend.answer(&described, message.message, count);
                        count += 1;
                        if sender.send(Ok(answer)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        let _ = sender.send(Err(status)).await;
                        return;
                    }
                }
            }
            let mut trailers = MetadataMap::new();
            trailers.insert(MESSAGES_TRAILER, MetadataValue::from(count));
            if let Ok(Some(request_trailers)) = messages.trailers().await {
                for (name, value) in &request_trailers.into_headers() {
                    let name = format!("{REQUEST_TRAILER_PREFIX}{name}");
                    if let (Ok(name), Ok(value)) =
                        (MetadataKey::from_bytes(name.as_bytes()), MetadataValue::try_from(value.as_bytes()))
                    {
                        trailers.append(name, value);
                    }
                }
            }
            // An OK status is how a tonic stream ends with trailers of its own.
            let _ = sender.send(Err(Status::with_metadata(Code::Ok, "", trailers))).await;
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}

/// No answer within this long means the system under test hung; it is not a timing assertion.
pub const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// A channel to `address` (`HOST:PORT`) that connects on first use. Needs a tokio runtime.
pub fn channel(address: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|error| format!("bad address {address:?}: {error}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(CALL_DEADLINE);
    Ok(endpoint.connect_lazy())
}

/// Adds `name: value` request metadata.
fn add_metadata(metadata: &mut MetadataMap, name: &str, value: &str) -> Result<(), Status> {
    let key = MetadataKey::from_bytes(name.as_bytes())
        .map_err(|_| Status::invalid_argument(format!("{name:?} is not a metadata name")))?;
    let value =
        MetadataValue::try_from(value).map_err(|_| Status::invalid_argument(format!("{value:?} is not a metadata value")))?;
    metadata.append(key, value);
    Ok(())
}

fn path_of(method: &str) -> Result<PathAndQuery, Status> {
    let path = method_path(method);
    path.parse().map_err(|_| Status::invalid_argument(format!("{path:?} is not a gRPC method path")))
}

/// A unary call of `method` ([`method_path`]) with `message` and `metadata`. The response's
/// metadata holds the answering backend's `x-echo-backend`; so does an error's, when a backend
/// gave it.
pub async fn unary(
    channel: Channel,
    method: &str,
    message: &str,
    metadata: &[(String, String)],
) -> Result<Response<EchoResponse>, Status> {
    let path = path_of(method)?;
    let mut request = Request::new(EchoRequest { message: message.to_owned() });
    for (name, value) in metadata {
        add_metadata(request.metadata_mut(), name, value)?;
    }
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|error| Status::unavailable(format!("not connected: {error}")))?;
    client.unary(request, path, ProstCodec::default()).await
}

/// What a streaming call returned: the answers in the order they came, and the trailers.
#[derive(Clone, Debug)]
pub struct StreamReply {
    /// The response headers' `x-echo-backend`.
    pub backend: Option<String>,
    pub answers: Vec<EchoResponse>,
    pub trailers: BTreeMap<String, String>,
}

/// A bidirectional streaming call of `method` that sends `messages` one at a time, each only
/// after the answer to the one before arrived, so that the call only completes if both
/// directions really stream.
pub async fn ping_pong(
    channel: Channel,
    method: &str,
    messages: &[&str],
    metadata: &[(String, String)],
) -> Result<StreamReply, Status> {
    let path = path_of(method)?;
    let (sender, receiver) = mpsc::channel::<EchoRequest>(1);
    let mut request = Request::new(ReceiverStream::new(receiver));
    for (name, value) in metadata {
        add_metadata(request.metadata_mut(), name, value)?;
    }
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|error| Status::unavailable(format!("not connected: {error}")))?;
    let mut pending = messages.iter();
    if let Some(first) = pending.next() {
        let _ = sender.send(EchoRequest { message: (*first).to_owned() }).await;
    }
    let response = client.streaming(request, path, ProstCodec::default()).await?;
    let backend = header_text(response.metadata().as_ref(), BACKEND_HEADER);
    let mut stream = response.into_inner();
    let mut answers = Vec::new();
    let mut sender = Some(sender);
    while answers.len() < messages.len() {
        match stream.message().await? {
            Some(answer) => answers.push(answer),
            None => break,
        }
        match pending.next() {
            Some(next) => {
                if let Some(sender) = &sender {
                    let _ = sender.send(EchoRequest { message: (*next).to_owned() }).await;
                }
            }
            // Every message is out: end the request stream.
            None => sender = None,
        }
    }
    drop(sender);
    while let Some(extra) = stream.message().await? {
        answers.push(extra);
    }
    let trailers = stream.trailers().await?.map(|trailers| seen_headers(&trailers.into_headers())).unwrap_or_default();
    Ok(StreamReply { backend, answers, trailers })
}

/// A bidirectional streaming call of `method` whose request sends all `messages` and then ends
/// with `trailers` — which a gRPC client library never sends, so this one builds the HTTP/2
/// request itself and lets tonic read the answer.
pub async fn stream_with_trailers(
    channel: Channel,
    method: &str,
    messages: &[&str],
    trailers: &[(&str, &str)],
) -> Result<StreamReply, Status> {
    let path = path_of(method)?;
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = messages
        .iter()
        .map(|message| Ok(Frame::data(length_prefixed(&EchoRequest { message: (*message).to_owned() }))))
        .collect();
    let mut trailer_map = HeaderMap::new();
    for (name, value) in trailers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Status::invalid_argument(format!("{name:?} is not a trailer name")))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| Status::invalid_argument(format!("{value:?} is not a trailer value")))?;
        trailer_map.append(name, value);
    }
    frames.push(Ok(Frame::trailers(trailer_map)));
    let body = tonic::body::Body::new(StreamBody::new(tokio_stream::iter(frames)));
    let request = tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(path.as_str())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .map_err(|error| Status::internal(format!("building the request: {error}")))?;

    let mut channel = channel;
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|error| Status::unavailable(format!("not connected: {error}")))?;
    let response = channel.call(request).await.map_err(|error| Status::unavailable(format!("{error}")))?;
    let backend = header_text(response.headers(), BACKEND_HEADER);
    // A trailers-only answer carries its status in the headers.
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != Code::Ok {
            return Err(status);
        }
    }
    let (parts, body) = response.into_parts();
    let mut stream = Streaming::<EchoResponse>::new_response(
        tonic::codec::Codec::decoder(&mut ProstCodec::<EchoRequest, EchoResponse>::default()),
        body,
        parts.status,
        None,
        None,
    );
    let mut answers = Vec::new();
    while let Some(answer) = stream.message().await? {
        answers.push(answer);
    }
    let trailers = stream.trailers().await?.map(|trailers| seen_headers(&trailers.into_headers())).unwrap_or_default();
    Ok(StreamReply { backend, answers, trailers })
}

/// A message in gRPC's framing: uncompressed flag, big-endian length, protobuf bytes.
fn length_prefixed(message: &EchoRequest) -> Bytes {
    let encoded = prost::Message::encode_to_vec(message);
    let mut framed = BytesMut::with_capacity(5 + encoded.len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    framed.put_slice(&encoded);
    framed.freeze()
}

/// The text of header `name`, if present.
pub fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// The values of header `name` on every line it came on, as [`crate::client::header_values`]
/// counts them (a line folded as `old,new` gives two); none when it is absent. For the response
/// metadata a client received: `header_values(response.metadata().as_ref(), name)`.
pub fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|line| crate::client::header_values(Some(&String::from_utf8_lossy(line.as_bytes()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::echo::{attempt_key, ATTEMPT_KEY_REQUEST, DELAY_REQUEST, FAIL_FIRST_REQUEST, RESPONSE_HEADER_REQUEST};

    async fn start(name: &str) -> Channel {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|error| panic!("listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
        tokio::spawn(serve(name.to_owned(), listener));
        channel(&address.to_string()).unwrap_or_else(|error| panic!("{error}"))
    }

    fn asking(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    /// The code and `x-echo-attempts` of a call's outcome, and that the backend gave it.
    async fn outcome(channel: &Channel, items: &[(&str, &str)]) -> (Code, Option<String>) {
        match unary(channel.clone(), "Echo", "hi", &asking(items)).await {
            Ok(response) => {
                assert_eq!(response.get_ref().backend, "grpc-v1", "{items:?}: {:?}", response.get_ref());
                (Code::Ok, header_text(response.metadata().as_ref(), ATTEMPTS_HEADER))
            }
            Err(status) => {
                let backend = header_text(status.metadata().as_ref(), BACKEND_HEADER);
                assert_eq!(backend.as_deref(), Some("grpc-v1"), "{items:?}: {status:?}");
                (status.code(), header_text(status.metadata().as_ref(), ATTEMPTS_HEADER))
            }
        }
    }

    /// `x-echo-delay-ms` holds the answer back at least that long; `x-echo-fail` answers with
    /// the gRPC status of that number, from the backend, with no count without a key.
    #[tokio::test]
    async fn a_call_chooses_a_delay_and_a_failing_status() {
        let channel = start("grpc-v1").await;
        let started = std::time::Instant::now();
        assert_eq!(outcome(&channel, &[(DELAY_REQUEST, "200")]).await, (Code::Ok, None));
        let elapsed = started.elapsed();
        // Only a lower bound: the backend waited; how much longer the machine took is no concern.
        assert!(elapsed >= Duration::from_millis(200), "answered after {elapsed:?}");
        for (number, code) in [("14", Code::Unavailable), ("13", Code::Internal), ("4", Code::DeadlineExceeded)] {
            assert_eq!(outcome(&channel, &[(FAIL_REQUEST, number)]).await, (code, None), "{FAIL_REQUEST}: {number}");
        }
    }

    /// `x-echo-fail-first: K` fails the first K tries of a key with `x-echo-fail`'s status
    /// (UNAVAILABLE without it) and answers later ones OK; every answer counts the key's tries,
    /// and each key counts on its own.
    #[tokio::test]
    async fn fail_first_fails_only_the_first_tries_of_a_key_and_counts_them() {
        let channel = start("grpc-v1").await;
        let (key, other) = (attempt_key("grpc-fail-first"), attempt_key("grpc-fail-first"));
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(outcome(&channel, &[(FAIL_FIRST_REQUEST, "2"), (FAIL_REQUEST, "13"), (ATTEMPT_KEY_REQUEST, &key)]).await);
        }
        let count = |n: &str| Some(n.to_owned());
        assert_eq!(seen, [(Code::Internal, count("1")), (Code::Internal, count("2")), (Code::Ok, count("3"))]);
        let first = outcome(&channel, &[(FAIL_FIRST_REQUEST, "1"), (ATTEMPT_KEY_REQUEST, &other)]).await;
        assert_eq!(first, (DEFAULT_FAIL_CODE, count("1")));
        assert_eq!(outcome(&channel, &[(FAIL_FIRST_REQUEST, "1"), (ATTEMPT_KEY_REQUEST, &other)]).await, (Code::Ok, count("2")));
        // With a key but no fail-first, every try fails and is counted.
        let always = attempt_key("grpc-always");
        for expected in ["1", "2", "3"] {
            let got = outcome(&channel, &[(FAIL_REQUEST, "14"), (ATTEMPT_KEY_REQUEST, &always)]).await;
            assert_eq!(got, (Code::Unavailable, count(expected)));
        }
    }

    #[tokio::test]
    async fn malformed_delay_or_failure_requests_get_invalid_argument() {
        let channel = start("grpc-v1").await;
        let bad: [&[(&str, &str)]; 7] = [
            &[(DELAY_REQUEST, "soon")],
            &[(DELAY_REQUEST, "-1")],
            &[(FAIL_REQUEST, "oops")],
            &[(FAIL_REQUEST, "17")],
            &[(FAIL_REQUEST, "503")],
            &[(FAIL_FIRST_REQUEST, "1")],
            &[(ATTEMPT_KEY_REQUEST, "a"), (ATTEMPT_KEY_REQUEST, "b")],
        ];
        for items in bad {
            let status = match unary(channel.clone(), "Echo", "hi", &asking(items)).await {
                Ok(response) => panic!("{items:?}: expected INVALID_ARGUMENT, got {:?}", response.get_ref()),
                Err(status) => status,
            };
            assert_eq!(status.code(), Code::InvalidArgument, "{items:?}: {status:?}");
            assert!(status.message().contains(items[0].0), "{items:?}: {status:?}");
            assert_eq!(header_text(status.metadata().as_ref(), BACKEND_HEADER).as_deref(), Some("grpc-v1"), "{status:?}");
        }
    }

    /// The gRPC echo backend reports the metadata it saw and adds the response headers a call
    /// asks for; a malformed request for one is answered INVALID_ARGUMENT by the backend.
    #[tokio::test]
    async fn a_call_chooses_response_headers_and_sees_its_metadata() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|error| panic!("listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
        tokio::spawn(serve("grpc-v1".to_owned(), listener));
        let channel = channel(&address.to_string()).unwrap_or_else(|error| panic!("{error}"));

        let metadata = [
            ("x-seen".to_owned(), "yes".to_owned()),
            (RESPONSE_HEADER_REQUEST.to_owned(), "x-one=1".to_owned()),
            (RESPONSE_HEADER_REQUEST.to_owned(), "x-one=again, x-two=2".to_owned()),
        ];
        let response =
            unary(channel.clone(), "Echo", "hi", &metadata).await.unwrap_or_else(|status| panic!("Echo failed: {status:?}"));
        assert_eq!(header_values(response.metadata().as_ref(), "x-one"), ["1", "again"], "{:?}", response.metadata());
        assert_eq!(header_values(response.metadata().as_ref(), "x-two"), ["2"], "{:?}", response.metadata());
        let answer = response.into_inner();
        assert_eq!((answer.backend.as_str(), answer.message.as_str()), ("grpc-v1", "hi"), "{answer:?}");
        assert_eq!(answer.metadata.get("x-seen").map(String::as_str), Some("yes"), "{answer:?}");

        let bad = [(RESPONSE_HEADER_REQUEST.to_owned(), "no-equals-sign".to_owned())];
        let status = match unary(channel, "Echo", "hi", &bad).await {
            Ok(response) => panic!("expected INVALID_ARGUMENT, got {:?}", response.get_ref()),
            Err(status) => status,
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(header_text(status.metadata().as_ref(), BACKEND_HEADER).as_deref(), Some("grpc-v1"), "{status:?}");
    }

    /// Every call is recorded as it arrives, unary or streaming: its full method as the path and
    /// its metadata as the headers.
    #[tokio::test]
    async fn every_call_is_recorded_with_its_method_and_metadata() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap_or_else(|error| panic!("listen: {error}"));
        let address = listener.local_addr().unwrap_or_else(|error| panic!("{error}"));
        let received = Received::new();
        tokio::spawn(serve_recorded("grpc-v1".to_owned(), listener, received.clone()));
        let channel = channel(&address.to_string()).unwrap_or_else(|error| panic!("{error}"));

        let metadata = [("x-seen".to_owned(), "yes".to_owned()), ("x-twice".to_owned(), "a".to_owned())];
        let mut twice = metadata.to_vec();
        twice.push(("x-twice".to_owned(), "b".to_owned()));
        unary(channel.clone(), "EchoTwo", "hi", &twice).await.unwrap_or_else(|status| panic!("EchoTwo failed: {status:?}"));
        ping_pong(channel, "EchoStream", &["one", "two"], &metadata)
            .await
            .unwrap_or_else(|status| panic!("EchoStream failed: {status:?}"));

        let seen = received.all();
        let methods: Vec<(&str, &str)> = seen.iter().map(|call| (call.method.as_str(), call.path.as_str())).collect();
        assert_eq!(
            methods,
            [("POST", "/echo_basic.grpcecho.GrpcEcho/EchoTwo"), ("POST", "/echo_basic.grpcecho.GrpcEcho/EchoStream")]
        );
        assert_eq!(seen[0].header_values("x-twice"), ["a", "b"], "{}", seen[0]);
        for call in &seen {
            assert_eq!(call.version, "HTTP/2.0", "{call}");
            assert_eq!(call.header("x-seen").as_deref(), Some("yes"), "{call}");
            assert_eq!(call.header("content-type").as_deref(), Some("application/grpc"), "{call}");
            assert_eq!(call.header("host"), Some(address.to_string()), "{call}");
        }
    }
}
