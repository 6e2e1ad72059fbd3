//! A rule's or a backendRef's route filters, compiled: what happens to a request on the way
//! (Gateway API `HTTPRouteFilter` and `GRPCRouteFilter`). Each filter type is a field here and a
//! module of its own; [`crate::decision`] hands them to the glue and to `explain`.

use crate::document::FiltersDoc;
use crate::header_modifier::HeaderModifier;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilters {
    /// `RequestHeaderModifier`.
    pub request_headers: Option<HeaderModifier>,
    /// `ResponseHeaderModifier`.
    pub response_headers: Option<HeaderModifier>,
}

impl RouteFilters {
    pub fn compile(doc: &FiltersDoc) -> Result<Self, String> {
        let modifier = |doc: &Option<_>, what: &str| {
            doc.as_ref().map(HeaderModifier::compile).transpose().map_err(|e| format!("{what}: {e}"))
        };
        Ok(RouteFilters {
            request_headers: modifier(&doc.request_headers, "request_headers")?,
            response_headers: modifier(&doc.response_headers, "response_headers")?,
        })
    }
}
