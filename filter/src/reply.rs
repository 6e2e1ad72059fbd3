//! What the filter answers itself, instead of forwarding, in the terms of the frontend's
//! routes: HTTP status codes for HTTPRoutes, gRPC status codes for GRPCRoutes.

use crate::document::RouteKind;

/// Why a request is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The frontend has routes and none matches.
    NoRoute,
    /// The chosen backend does not resolve, or the rule has no backend to choose.
    Unavailable,
}

/// Whether a request is a gRPC call, by its `content-type` (`application/grpc`, `application/grpc+proto`, ...).
pub fn is_grpc_call(content_type: Option<&str>) -> bool {
    content_type
        .is_some_and(|t| t.strip_prefix("application/grpc").is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';'])))
}

/// gRPC status codes the filter answers with.
pub const GRPC_UNIMPLEMENTED: u32 = 12;
pub const GRPC_UNAVAILABLE: u32 = 14;

/// A local answer. gRPC answers are trailers-only: HTTP 200, `content-type: application/grpc`,
/// and `grpc-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalReply {
    pub http_status: u32,
    pub grpc_status: Option<u32>,
    pub message: &'static str,
}

impl Refusal {
    /// The answer to a request on a frontend of `kind`. A gRPC call gets a gRPC status only on
    /// a GRPCRoute frontend; anything else gets an HTTP status (and Envoy itself turns an HTTP
    /// status into a gRPC one for a gRPC call on an HTTPRoute frontend: 404 is UNIMPLEMENTED).
    pub fn reply(self, kind: RouteKind, grpc_call: bool) -> LocalReply {
        let kind = if grpc_call { kind } else { RouteKind::Http };
        match (kind, self) {
            (RouteKind::Http, Refusal::NoRoute) => {
                LocalReply { http_status: 404, grpc_status: None, message: "no route matched" }
            }
            (RouteKind::Http, Refusal::Unavailable) => {
                LocalReply { http_status: 500, grpc_status: None, message: "backend unavailable" }
            }
            (RouteKind::Grpc, Refusal::NoRoute) => {
                LocalReply { http_status: 200, grpc_status: Some(GRPC_UNIMPLEMENTED), message: "no route matched this method" }
            }
            (RouteKind::Grpc, Refusal::Unavailable) => {
                LocalReply { http_status: 200, grpc_status: Some(GRPC_UNAVAILABLE), message: "backend unavailable" }
            }
        }
    }
}
