//! Compiled GRPCRoute matches (their precedence is in [`crate::precedence`]). A gRPC call is an HTTP/2 POST to
//! `/SERVICE/METHOD`; GRPCRoutes match those two names and the call's metadata (headers).

use crate::conditions::Ask;
use crate::document::{GrpcMethodDoc, MatchDoc, ValueMatchType};
use crate::index::IndexKey;
use crate::matching::{compile_headers, FullRegex, Inputs, ValueMatch};
use crate::precedence::GrpcSpecificity;
#[cfg(test)]
use crate::request::Request;

/// One entry of a GRPCRoute rule's `matches`, ready to run.
#[derive(Debug, Clone)]
pub struct GrpcMatch {
    service: Option<NameMatch>,
    method: Option<NameMatch>,
    /// Header names in lower case.
    headers: Vec<(String, ValueMatch)>,
}

#[derive(Debug, Clone)]
struct NameMatch {
    /// As written; its length ranks the match.
    written: String,
    value: ValueMatch,
}

impl NameMatch {
    fn compile(kind: ValueMatchType, written: &str) -> Result<Self, String> {
        let value = match kind {
            ValueMatchType::Exact => ValueMatch::Exact(written.to_owned()),
            ValueMatchType::RegularExpression => ValueMatch::Regex(FullRegex::new(written)?),
        };
        Ok(NameMatch { written: written.to_owned(), value })
    }
}

impl GrpcMatch {
    /// A rule without matches matches every call.
    pub fn catch_all() -> Self {
        GrpcMatch { service: None, method: None, headers: Vec::new() }
    }

    pub fn compile(doc: &MatchDoc) -> Result<Self, String> {
        if doc.path.is_some() || doc.method.is_some() || !doc.query_params.is_empty() {
            return Err("a GRPCRoute match has no path, method or query parameters".to_owned());
        }
        let (service, method) = match &doc.grpc_method {
            None => (None, None),
            Some(GrpcMethodDoc { service: None, method: None, .. }) => {
                return Err("a gRPC method match needs a service, a method or both".to_owned())
            }
            Some(m) => (
                m.service.as_deref().map(|s| NameMatch::compile(m.kind, s)).transpose()?,
                m.method.as_deref().map(|s| NameMatch::compile(m.kind, s)).transpose()?,
            ),
        };
        Ok(GrpcMatch { service, method, headers: compile_headers(&doc.headers)? })
    }

    /// Whether this match alone takes `request`, as a table decides it (by its conditions: the
    /// key decides nothing). For the tests of a single match.
    #[cfg(test)]
    pub fn matches(&self, request: &Request<'_>) -> bool {
        crate::conditions::hold_alone(self.asks(), request)
    }

    /// What a call must have, all of it: a gRPC method's key is a path, but a path under it need
    /// not be a gRPC call (and a service may hold a `/`), so the key decides nothing.
    pub fn asks(&self) -> impl Iterator<Item = Ask<'_>> + '_ {
        let service = self.service.as_ref().map(|name| Ask::GrpcService(&name.value));
        let method = self.method.as_ref().map(|name| Ask::GrpcMethod(&name.value));
        service.into_iter().chain(method).chain(self.headers.iter().map(|(name, value)| Ask::Header(name, value)))
    }

    /// Where the index files this match: a literal service (and method) is a path (prefix).
    pub fn index_key(&self) -> IndexKey<'_> {
        fn literal(name: &Option<NameMatch>) -> Option<&str> {
            match name.as_ref().map(|n| &n.value) {
                Some(ValueMatch::Exact(value)) => Some(value.as_str()),
                Some(ValueMatch::Regex(_)) | None => None,
            }
        }
        match (literal(&self.service), literal(&self.method)) {
            (Some(service), Some(method)) => IndexKey::Exact(format!("/{service}/{method}").into()),
            (Some(service), None) => IndexKey::Prefix(format!("/{service}").into()),
            (None, _) => IndexKey::Any,
        }
    }

    /// What of a call this match reads.
    pub fn inputs(&self) -> Inputs {
        Inputs { path: self.service.is_some() || self.method.is_some(), method: false, headers: !self.headers.is_empty() }
    }

    /// What this match specifies, for [`crate::precedence`]: characters of the service and
    /// method as written.
    pub fn specificity(&self) -> GrpcSpecificity {
        let chars = |name: &Option<NameMatch>| name.as_ref().map_or(0, |n| n.written.len());
        GrpcSpecificity { service: chars(&self.service), method: chars(&self.method), headers: self.headers.len() }
    }
}

/// `(service, method)` of a gRPC path `/SERVICE/METHOD`; both non-empty, nothing more.
pub fn grpc_call(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some((service, method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::ValueMatchDoc;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn method(kind: ValueMatchType, service: Option<&str>, method: Option<&str>) -> MatchDoc {
        MatchDoc {
            grpc_method: Some(GrpcMethodDoc { kind, service: service.map(Into::into), method: method.map(Into::into) }),
            ..MatchDoc::default()
        }
    }

    fn call(path: &str) -> Request<'_> {
        Request { method: "POST", path_and_query: path, headers: &[] }
    }

    #[test]
    fn splits_grpc_paths() {
        assert_eq!(grpc_call("/echo_basic.grpcecho.GrpcEcho/Echo"), Some(("echo_basic.grpcecho.GrpcEcho", "Echo")));
        for path in ["/", "/svc", "/svc/", "//Echo", "/svc/Echo/extra", "svc/Echo"] {
            assert_eq!(grpc_call(path), None, "{path}");
        }
    }

    #[test]
    fn exact_service_and_method_are_case_sensitive() {
        let m = GrpcMatch::compile(&method(ValueMatchType::Exact, Some("echo_basic.grpcecho.GrpcEcho"), Some("Echo"))).unwrap();
        assert!(m.matches(&call("/echo_basic.grpcecho.GrpcEcho/Echo")));
        assert!(!m.matches(&call("/echo_basic.grpcecho.GrpcEcho/echo")));
        assert!(!m.matches(&call("/echo_basic.grpcecho.GrpcEcho/EchoTwo")));
        assert!(!m.matches(&call("/echo_basic.grpcecho.grpcecho/Echo")));
    }

    #[test]
    fn service_only_and_method_only_matches() {
        let service = GrpcMatch::compile(&method(ValueMatchType::Exact, Some("pkg.Svc"), None)).unwrap();
        assert!(service.matches(&call("/pkg.Svc/Anything")));
        assert!(!service.matches(&call("/pkg.Other/Anything")));
        let only_method = GrpcMatch::compile(&method(ValueMatchType::Exact, None, Some("Get"))).unwrap();
        assert!(only_method.matches(&call("/any.Svc/Get")));
        assert!(!only_method.matches(&call("/any.Svc/Put")));
        assert!(!only_method.matches(&call("/not-grpc")));
    }

    #[test]
    fn regex_names_match_whole_names() {
        let m =
            GrpcMatch::compile(&method(ValueMatchType::RegularExpression, Some(r"echo_basic\..*"), Some("Echo(Two)?"))).unwrap();
        assert!(m.matches(&call("/echo_basic.grpcecho.GrpcEcho/EchoTwo")));
        assert!(!m.matches(&call("/echo_basic.grpcecho.GrpcEcho/EchoThree")));
        assert!(!m.matches(&call("/x.echo_basic.Svc/Echo")));
    }

    #[test]
    fn headers_are_metadata_with_case_insensitive_names() {
        let doc = MatchDoc {
            headers: vec![ValueMatchDoc { kind: ValueMatchType::Exact, name: "Version".into(), value: "two".into() }],
            ..MatchDoc::default()
        };
        let m = GrpcMatch::compile(&doc).unwrap();
        let headers = [("version".to_owned(), "two".to_owned())];
        assert!(m.matches(&Request { method: "POST", path_and_query: "/pkg.Svc/M", headers: &headers }));
        assert!(!m.matches(&call("/pkg.Svc/M")));
    }

    #[test]
    fn a_method_match_needs_service_or_method_and_http_fields_are_refused() {
        assert!(GrpcMatch::compile(&method(ValueMatchType::Exact, None, None)).is_err());
        assert!(GrpcMatch::compile(&MatchDoc { method: Some("POST".into()), ..MatchDoc::default() }).is_err());
        assert!(GrpcMatch::compile(&method(ValueMatchType::RegularExpression, Some("("), None)).is_err());
    }

    #[test]
    fn literal_names_are_filed_by_path() {
        let key = |doc: MatchDoc| match GrpcMatch::compile(&doc).unwrap().index_key() {
            IndexKey::Exact(path) => IndexKey::Exact(path.into_owned().into()),
            IndexKey::Prefix(path) => IndexKey::Prefix(path.into_owned().into()),
            IndexKey::Any => IndexKey::Any,
        };
        assert_eq!(key(method(ValueMatchType::Exact, Some("pkg.Svc"), Some("Get"))), IndexKey::Exact("/pkg.Svc/Get".into()));
        assert_eq!(key(method(ValueMatchType::Exact, Some("pkg.Svc"), None)), IndexKey::Prefix("/pkg.Svc".into()));
        assert_eq!(key(method(ValueMatchType::Exact, None, Some("Get"))), IndexKey::Any);
        assert_eq!(key(method(ValueMatchType::RegularExpression, Some("pkg.Svc"), None)), IndexKey::Any);
    }

    #[test]
    fn specificity_reports_characters_of_service_and_method_as_written() {
        let facts = |doc: MatchDoc| GrpcMatch::compile(&doc).unwrap().specificity();
        let both = facts(method(ValueMatchType::Exact, Some("pkg.Svc"), Some("Get")));
        assert_eq!(both, GrpcSpecificity { service: 7, method: 3, headers: 0 });
        let regex = facts(method(ValueMatchType::RegularExpression, Some(r"pkg\..*"), None));
        assert_eq!(regex, GrpcSpecificity { service: 7, method: 0, headers: 0 });
        assert_eq!(GrpcMatch::catch_all().specificity(), GrpcSpecificity { service: 0, method: 0, headers: 0 });
    }
}
