//! Compiled HTTPRoute matches. Their precedence is in [`crate::precedence`].

use regex_lite::Regex;

use crate::conditions::Ask;
use crate::document::{MatchDoc, PathMatchDoc, PathMatchType, ValueMatchDoc, ValueMatchType};
use crate::index::{regex_key, IndexKey};
use crate::precedence::{HttpSpecificity, PathSpecificity};
#[cfg(test)]
use crate::request::Request;

/// Regexes longer than this are refused; the Gateway API leaves the limit to implementations.
pub const MAX_REGEX_LEN: usize = 1024;

#[derive(Debug, Clone)]
pub enum PathMatch {
    Exact(String),
    /// Segment-wise prefix, stored without a trailing `/` (the root prefix is stored as "").
    Prefix(String),
    Regex(FullRegex),
}

impl PathMatch {
    /// What the index answers for an Exact path or PathPrefix (and the regex condition for a
    /// regex), written out for the tests of a single match.
    #[cfg(test)]
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(value) => path == value,
            PathMatch::Prefix(prefix) => {
                path.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            PathMatch::Regex(regex) => regex.matches(path),
        }
    }
}

/// A regex that must match the whole value, as Envoy's `safe_regex` does.
#[derive(Debug, Clone)]
pub struct FullRegex {
    source: String,
    regex: Regex,
}

impl FullRegex {
    pub fn new(source: &str) -> Result<Self, String> {
        if source.len() > MAX_REGEX_LEN {
            return Err(format!("regex is longer than {MAX_REGEX_LEN} bytes"));
        }
        let regex = Regex::new(&format!("^(?:{source})$")).map_err(|e| format!("invalid regex {source:?}: {e}"))?;
        Ok(FullRegex { source: source.to_owned(), regex })
    }

    pub fn matches(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

#[derive(Debug, Clone)]
pub enum ValueMatch {
    Exact(String),
    Regex(FullRegex),
}

impl ValueMatch {
    fn compile(kind: ValueMatchType, value: &str) -> Result<Self, String> {
        Ok(match kind {
            ValueMatchType::Exact => ValueMatch::Exact(value.to_owned()),
            ValueMatchType::RegularExpression => ValueMatch::Regex(FullRegex::new(value)?),
        })
    }
}

/// Which parts of a request some matches read, so that the host is asked for no more: a rule
/// without matches reads nothing, a path match reads `:path` (query included), and so on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inputs {
    pub path: bool,
    pub method: bool,
    pub headers: bool,
}

impl Inputs {
    pub fn union(self, other: Inputs) -> Inputs {
        Inputs { path: self.path || other.path, method: self.method || other.method, headers: self.headers || other.headers }
    }

    /// Whether nothing is read: the match takes every request.
    pub fn is_empty(self) -> bool {
        self == Inputs::default()
    }
}

/// One entry of an HTTPRoute rule's `matches`, ready to run.
#[derive(Debug, Clone)]
pub struct HttpMatch {
    pub path: PathMatch,
    pub method: Option<String>,
    /// Header names in lower case.
    pub headers: Vec<(String, ValueMatch)>,
    pub query_params: Vec<(String, ValueMatch)>,
}

impl HttpMatch {
    /// A rule without matches matches everything, like PathPrefix `/`.
    pub fn catch_all() -> Self {
        HttpMatch { path: PathMatch::Prefix(String::new()), method: None, headers: Vec::new(), query_params: Vec::new() }
    }

    pub fn compile(doc: &MatchDoc) -> Result<Self, String> {
        let path = match &doc.path {
            None => PathMatch::Prefix(String::new()),
            Some(path) => compile_path(path)?,
        };
        if let Some(method) = &doc.method {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("method {method:?} is not an upper-case HTTP method"));
            }
        }
        if doc.grpc_method.is_some() {
            return Err("an HTTPRoute match has no gRPC method".to_owned());
        }
        let headers = compile_headers(&doc.headers)?;
        let query_params = doc
            .query_params
            .iter()
            .map(|q: &ValueMatchDoc| {
                if q.name.is_empty() {
                    return Err("query parameter name is empty".to_owned());
                }
                Ok((q.name.clone(), ValueMatch::compile(q.kind, &q.value)?))
            })
            .collect::<Result<_, String>>()?;
        Ok(HttpMatch { path, method: doc.method.clone(), headers, query_params })
    }

    /// Whether this match alone takes `request`, as a table decides it: its path by the index,
    /// the rest by its conditions. For the tests of a single match.
    #[cfg(test)]
    pub fn matches(&self, request: &Request<'_>) -> bool {
        self.path.matches(request.path_and_query().0) && crate::conditions::hold_alone(self.asks(), request)
    }

    /// What a request that its [`HttpMatch::index_key`] allows must have besides: all but a
    /// plain Exact path or PathPrefix, which the key says already. None: the key decides.
    pub fn asks(&self) -> impl Iterator<Item = Ask<'_>> + '_ {
        let regex = match &self.path {
            PathMatch::Regex(regex) => Some(Ask::PathRegex(regex)),
            PathMatch::Exact(_) | PathMatch::Prefix(_) => None,
        };
        regex
            .into_iter()
            .chain(self.method.as_deref().map(Ask::Method))
            .chain(self.headers.iter().map(|(name, value)| Ask::Header(name, value)))
            .chain(self.query_params.iter().map(|(name, value)| Ask::QueryParam(name, value)))
    }

    /// Where the index files this match: by its path.
    pub fn index_key(&self) -> IndexKey<'_> {
        match &self.path {
            PathMatch::Exact(value) => IndexKey::Exact(value.into()),
            PathMatch::Prefix(prefix) => IndexKey::Prefix(prefix.into()),
            PathMatch::Regex(regex) => regex_key(regex.source()),
        }
    }

    /// What of a request this match reads.
    pub fn inputs(&self) -> Inputs {
        let path_reads_path = match &self.path {
            PathMatch::Prefix(prefix) => !prefix.is_empty(),
            PathMatch::Exact(_) | PathMatch::Regex(_) => true,
        };
        Inputs {
            path: path_reads_path || !self.query_params.is_empty(),
            method: self.method.is_some(),
            headers: !self.headers.is_empty(),
        }
    }

    /// What this match specifies, for [`crate::precedence`].
    pub fn specificity(&self) -> HttpSpecificity {
        let path = match &self.path {
            PathMatch::Exact(value) => PathSpecificity::Exact(value.len()),
            PathMatch::Regex(regex) => PathSpecificity::RegularExpression(regex.source().len()),
            // The stored prefix drops the trailing `/`; count it once.
            PathMatch::Prefix(prefix) => PathSpecificity::Prefix(prefix.len() + 1),
        };
        HttpSpecificity {
            path,
            method: self.method.is_some(),
            headers: self.headers.len(),
            query_params: self.query_params.len(),
        }
    }
}

/// Header matches with their names in lower case, as Envoy hands request headers over.
pub(crate) fn compile_headers(headers: &[ValueMatchDoc]) -> Result<Vec<(String, ValueMatch)>, String> {
    headers
        .iter()
        .map(|h| {
            if h.name.is_empty() {
                return Err("header name is empty".to_owned());
            }
            Ok((h.name.to_ascii_lowercase(), ValueMatch::compile(h.kind, &h.value)?))
        })
        .collect()
}

fn compile_path(doc: &PathMatchDoc) -> Result<PathMatch, String> {
    let value = doc.value.as_str();
    match doc.kind {
        PathMatchType::Exact | PathMatchType::PathPrefix if !value.starts_with('/') => {
            Err(format!("path {value:?} must start with '/'"))
        }
        PathMatchType::Exact => Ok(PathMatch::Exact(value.to_owned())),
        PathMatchType::PathPrefix => Ok(PathMatch::Prefix(value.trim_end_matches('/').to_owned())),
        PathMatchType::RegularExpression => Ok(PathMatch::Regex(FullRegex::new(value)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::ValueMatchDoc;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn prefix(value: &str) -> PathMatch {
        compile_path(&PathMatchDoc { kind: PathMatchType::PathPrefix, value: value.into() }).unwrap()
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        let foo = prefix("/foo");
        for path in ["/foo", "/foo/", "/foo/bar"] {
            assert!(foo.matches(path), "{path}");
        }
        for path in ["/foobar", "/fo", "/", "/bar/foo"] {
            assert!(!foo.matches(path), "{path}");
        }
    }

    #[test]
    fn prefix_ignores_trailing_slash_of_value() {
        let v2 = prefix("/v2/");
        assert!(v2.matches("/v2"));
        assert!(v2.matches("/v2/example"));
        assert!(!v2.matches("/v2example"));
    }

    #[test]
    fn root_prefix_matches_everything() {
        let root = prefix("/");
        for path in ["/", "/a", "/a/b/"] {
            assert!(root.matches(path), "{path}");
        }
    }

    #[test]
    fn relative_paths_are_refused() {
        assert!(compile_path(&PathMatchDoc { kind: PathMatchType::Exact, value: "foo".into() }).is_err());
    }

    #[test]
    fn regex_must_match_the_whole_value() {
        let regex = FullRegex::new("/v[0-9]+").unwrap();
        assert!(regex.matches("/v12"));
        assert!(!regex.matches("/v12/x"));
        assert!(!regex.matches("x/v1"));
        assert!(FullRegex::new("(").is_err());
        assert!(FullRegex::new(&"a".repeat(MAX_REGEX_LEN + 1)).is_err());
    }

    #[test]
    fn header_names_are_case_insensitive_values_are_not() {
        let doc = MatchDoc {
            headers: vec![ValueMatchDoc { kind: ValueMatchType::Exact, name: "Version".into(), value: "Two".into() }],
            ..MatchDoc::default()
        };
        let m = HttpMatch::compile(&doc).unwrap();
        let hit = [("version".to_owned(), "Two".to_owned())];
        let miss = [("version".to_owned(), "two".to_owned())];
        assert!(m.matches(&Request { method: "GET", path_and_query: "/", headers: &hit }));
        assert!(!m.matches(&Request { method: "GET", path_and_query: "/", headers: &miss }));
    }

    #[test]
    fn query_params_are_case_sensitive() {
        let doc = MatchDoc {
            query_params: vec![ValueMatchDoc { kind: ValueMatchType::Exact, name: "animal".into(), value: "whale".into() }],
            ..MatchDoc::default()
        };
        let m = HttpMatch::compile(&doc).unwrap();
        let at = |p| m.matches(&Request { method: "GET", path_and_query: p, headers: &[] });
        assert!(at("/?animal=whale"));
        assert!(at("/x?color=blue&animal=whale"));
        assert!(!at("/?Animal=whale"));
        assert!(!at("/?animal=Whale"));
        assert!(!at("/"));
    }

    #[test]
    fn method_must_be_equal() {
        let m = HttpMatch::compile(&MatchDoc { method: Some("POST".into()), ..MatchDoc::default() }).unwrap();
        assert!(m.matches(&Request { method: "POST", path_and_query: "/", headers: &[] }));
        assert!(!m.matches(&Request { method: "GET", path_and_query: "/", headers: &[] }));
        assert!(HttpMatch::compile(&MatchDoc { method: Some("post".into()), ..MatchDoc::default() }).is_err());
    }

    #[test]
    fn specificity_reports_path_kind_and_length_and_condition_counts() {
        let doc = MatchDoc {
            path: Some(PathMatchDoc { kind: PathMatchType::PathPrefix, value: "/v2/".into() }),
            method: Some("GET".into()),
            headers: vec![ValueMatchDoc { kind: ValueMatchType::Exact, name: "a".into(), value: "1".into() }],
            ..MatchDoc::default()
        };
        let facts = HttpMatch::compile(&doc).unwrap().specificity();
        assert_eq!(facts, HttpSpecificity { path: PathSpecificity::Prefix(4), method: true, headers: 1, query_params: 0 });
        assert_eq!(HttpMatch::catch_all().specificity().path, PathSpecificity::Prefix(1));
        let exact = HttpMatch::compile(&MatchDoc {
            path: Some(PathMatchDoc { kind: PathMatchType::Exact, value: "/v2".into() }),
            ..MatchDoc::default()
        });
        assert_eq!(exact.unwrap().specificity().path, PathSpecificity::Exact(3));
    }
}
