//! What the filter answers itself, instead of forwarding, in the terms of the frontend's
//! routes: HTTP status codes for HTTPRoutes, gRPC status codes for GRPCRoutes; and what the
//! client then receives once Envoy has seen the answer.

use std::borrow::Cow;

use crate::document::RouteKind;
use crate::header_modifier::HeaderChanges;

/// Why a request is not forwarded, as far as the answer's status goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The frontend has routes and none matches: 404, or UNIMPLEMENTED.
    NoRoute,
    /// The chosen backend does not resolve, or the rule has no backend to choose: 500, or
    /// UNAVAILABLE.
    Unavailable,
}

/// Whether a request is a gRPC call, by its `content-type` (`application/grpc`,
/// `application/grpc+proto`, `application/grpc;...`; not `application/grpc-web`).
pub fn is_grpc_call(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|t| {
        t.strip_prefix(b"application/grpc".as_slice())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"+") || rest.starts_with(b";"))
    })
}

/// The gRPC status codes the filter answers with or Envoy maps an HTTP answer to
/// (`google.rpc.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcStatus {
    Unknown = 2,
    PermissionDenied = 7,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl GrpcStatus {
    /// The numeric code, as sent in `grpc-status`.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The gRPC status Envoy gives a gRPC call it answers locally with HTTP `status`, as its
    /// `Grpc::Utility::httpToGrpcStatus` does (gRPC's "HTTP to gRPC Status Code Mapping").
    pub fn from_http_status(status: u32) -> Self {
        match status {
            400 => GrpcStatus::Internal,
            401 => GrpcStatus::Unauthenticated,
            403 => GrpcStatus::PermissionDenied,
            404 => GrpcStatus::Unimplemented,
            429 | 502..=504 => GrpcStatus::Unavailable,
            _ => GrpcStatus::Unknown,
        }
    }
}

/// A local answer as the filter sends it. A gRPC answer is trailers-only: HTTP 200,
/// `content-type: application/grpc`, `grpc-status` and `grpc-message` (Envoy writes those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status code the filter sends (200 for a gRPC answer).
    pub status: u32,
    /// `grpc-status` of a gRPC answer; `None` for an HTTP answer.
    pub grpc_status: Option<GrpcStatus>,
    /// Response headers besides the status (an HTTP answer's `content-type`; a redirect's
    /// `location`; what the matched rule's ResponseHeaderModifier sets), or a gRPC answer's
    /// metadata.
    pub headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// The body of an HTTP answer; the `grpc-message` of a gRPC one.
    pub body: Cow<'static, str>,
    /// Whether the request is a gRPC call (see [`LocalReply::as_received`]).
    pub grpc_call: bool,
}

/// An answer as the client receives it: HTTP status and, for a gRPC call, `grpc-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedStatus {
    pub status: u32,
    pub grpc_status: Option<GrpcStatus>,
}

impl LocalReply {
    /// What the client receives. Envoy turns an HTTP answer to a gRPC call (on an HTTPRoute
    /// frontend) into a trailers-only gRPC answer by [`GrpcStatus::from_http_status`]:
    /// 404 reaches the client as 200 with UNIMPLEMENTED, 500 as 200 with UNKNOWN.
    pub fn as_received(&self) -> ReceivedStatus {
        match (self.grpc_status, self.grpc_call) {
            (Some(grpc_status), _) => ReceivedStatus { status: self.status, grpc_status: Some(grpc_status) },
            (None, true) => ReceivedStatus { status: 200, grpc_status: Some(GrpcStatus::from_http_status(self.status)) },
            (None, false) => ReceivedStatus { status: self.status, grpc_status: None },
        }
    }
}

impl Refusal {
    /// The answer to a request on a frontend of `kind`. A gRPC call gets a gRPC status only on
    /// a GRPCRoute frontend; anything else gets an HTTP status (and Envoy turns that into a
    /// gRPC status for a gRPC call: see [`LocalReply::as_received`]).
    pub fn reply(self, kind: RouteKind, grpc_call: bool) -> LocalReply {
        let http = |status, body| LocalReply {
            status,
            grpc_status: None,
            headers: vec![(Cow::Borrowed("content-type"), Cow::Borrowed("text/plain"))],
            body: Cow::Borrowed(body),
            grpc_call,
        };
        let grpc = |grpc_status, message| LocalReply {
            status: 200,
            grpc_status: Some(grpc_status),
            headers: Vec::new(),
            body: Cow::Borrowed(message),
            grpc_call,
        };
        match (if grpc_call { kind } else { RouteKind::Http }, self) {
            (RouteKind::Http, Refusal::NoRoute) => http(404, "no route matched\n"),
            (RouteKind::Http, Refusal::Unavailable) => http(500, "backend unavailable\n"),
            (RouteKind::Grpc, Refusal::NoRoute) => grpc(GrpcStatus::Unimplemented, "no route matched this method"),
            (RouteKind::Grpc, Refusal::Unavailable) => grpc(GrpcStatus::Unavailable, "backend unavailable"),
        }
    }
}

impl LocalReply {
    /// A RequestRedirect's answer: `status` (3xx) with `location`, and no body. Sent as such to a
    /// gRPC call too: a redirect is an HTTP answer.
    pub fn redirect(status: u32, location: String, grpc_call: bool) -> Self {
        LocalReply {
            status,
            grpc_status: None,
            headers: vec![(Cow::Borrowed("location"), Cow::Owned(location))],
            body: Cow::Borrowed(""),
            grpc_call,
        }
    }

    /// The reply with `changes` made to its headers, as they would be to a backend's response.
    pub fn with_header_changes(mut self, changes: HeaderChanges<'_>) -> Self {
        if changes.is_empty() {
            return self;
        }
        let mut headers: Vec<(String, String)> =
            self.headers.iter().map(|(n, v)| (n.clone().into_owned(), v.clone().into_owned())).collect();
        changes.apply(&mut headers);
        self.headers = headers.into_iter().map(|(n, v)| (Cow::Owned(n), Cow::Owned(v))).collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn grpc_calls_are_known_by_content_type() {
        for grpc in ["application/grpc", "application/grpc+proto", "application/grpc;charset=utf-8"] {
            assert!(is_grpc_call(Some(grpc.as_bytes())), "{grpc}");
        }
        for not in ["application/grpc-web", "application/json", "application/grpcx", ""] {
            assert!(!is_grpc_call(Some(not.as_bytes())), "{not}");
        }
        assert!(!is_grpc_call(None));
    }

    #[test]
    fn refusals_answer_in_the_frontends_terms() {
        let http = Refusal::NoRoute.reply(RouteKind::Http, false);
        assert_eq!((http.status, http.grpc_status), (404, None));
        assert_eq!(http.headers, vec![(Cow::Borrowed("content-type"), Cow::Borrowed("text/plain"))]);
        assert_eq!(Refusal::Unavailable.reply(RouteKind::Http, false).status, 500);
        let grpc = Refusal::NoRoute.reply(RouteKind::Grpc, true);
        assert_eq!((grpc.status, grpc.grpc_status), (200, Some(GrpcStatus::Unimplemented)));
        assert!(grpc.headers.is_empty());
        let grpc = Refusal::Unavailable.reply(RouteKind::Grpc, true);
        assert_eq!((grpc.status, grpc.grpc_status), (200, Some(GrpcStatus::Unavailable)));
        // A plain HTTP request on a gRPC port gets an HTTP answer, not a 200.
        assert_eq!(Refusal::NoRoute.reply(RouteKind::Grpc, false).status, 404);
    }

    #[test]
    fn envoy_maps_an_http_answer_to_a_grpc_call() {
        let received = |refusal: Refusal| refusal.reply(RouteKind::Http, true).as_received();
        assert_eq!(received(Refusal::NoRoute), ReceivedStatus { status: 200, grpc_status: Some(GrpcStatus::Unimplemented) });
        assert_eq!(received(Refusal::Unavailable), ReceivedStatus { status: 200, grpc_status: Some(GrpcStatus::Unknown) });
        let plain = Refusal::NoRoute.reply(RouteKind::Http, false).as_received();
        assert_eq!(plain, ReceivedStatus { status: 404, grpc_status: None });
        assert_eq!(GrpcStatus::from_http_status(503), GrpcStatus::Unavailable);
        assert_eq!(GrpcStatus::Unavailable.code(), 14);
    }
}
