//! A rule's or a backendRef's route filters, compiled: what happens to a request on the way
//! (Gateway API `HTTPRouteFilter` and `GRPCRouteFilter`). Each filter type is a field here and a
//! module of its own; [`crate::decision`] hands them to the glue and to `explain`.

use crate::document::FiltersDoc;
use crate::header_modifier::HeaderModifier;
use crate::mirror::Mirror;
use crate::url::{Redirect, Rewrite};

/// Each filter is boxed: most rules and backends have none, and every rule and backend carries
/// this (unboxed, a table of 10,000 rules took twice as long to build).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteFilters {
    /// `RequestHeaderModifier`.
    pub request_headers: Option<Box<HeaderModifier>>,
    /// `ResponseHeaderModifier`.
    pub response_headers: Option<Box<HeaderModifier>>,
    /// `RequestRedirect`.
    pub redirect: Option<Box<Redirect>>,
    /// `URLRewrite`.
    pub rewrite: Option<Box<Rewrite>>,
    /// `RequestMirror`, in order (empty: no allocation).
    pub mirrors: Box<[Mirror]>,
}

impl RouteFilters {
    /// `prefix`: the PathPrefix of the rule's one match, if that is all it matches (what
    /// `ReplacePrefixMatch` replaces).
    pub fn compile(doc: &FiltersDoc, prefix: Option<&str>) -> Result<Self, String> {
        let modifier = |doc: &Option<_>, what: &str| {
            doc.as_deref().map(HeaderModifier::compile).transpose().map(|m| m.map(Box::new)).map_err(|e| format!("{what}: {e}"))
        };
        Ok(RouteFilters {
            request_headers: modifier(&doc.request_headers, "request_headers")?,
            response_headers: modifier(&doc.response_headers, "response_headers")?,
            redirect: doc
                .redirect
                .as_ref()
                .map(|r| Redirect::compile(r, prefix).map(Box::new))
                .transpose()
                .map_err(|e| format!("redirect: {e}"))?,
            rewrite: doc
                .rewrite
                .as_ref()
                .map(|r| Rewrite::compile(r, prefix).map(Box::new))
                .transpose()
                .map_err(|e| format!("rewrite: {e}"))?,
            mirrors: doc.mirrors.iter().map(Mirror::compile).collect::<Result<_, _>>()?,
        })
    }

    /// Whether applying the filters needs the request's path and query: a redirect keeps them,
    /// a path rewrite changes them.
    pub fn read_path(&self) -> bool {
        self.redirect.is_some() || self.rewrite.as_ref().is_some_and(|r| r.path.is_some())
    }
}
