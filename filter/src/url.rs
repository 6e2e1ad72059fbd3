//! The Gateway API's `RequestRedirect` and `URLRewrite` filters: where a redirect sends the
//! client (the `Location` it answers with), and the path and authority a rewritten request
//! reaches its backend with. Both change a path the same way (`HTTPPathModifier`).

use crate::document::{PathModifierDoc, RedirectDoc, RewriteDoc};

/// `HTTPPathModifier`, with the rule's PathPrefix for `ReplacePrefixMatch` (a rule using it has
/// exactly one match, a PathPrefix: the CRD's rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    /// `ReplaceFullPath`: the whole path becomes this.
    Full(String),
    /// `ReplacePrefixMatch`: the matched prefix becomes the replacement. Both are kept without a
    /// trailing `/`, so that the API's table of cases comes out of one rule (see
    /// [`PathModifier::apply`]).
    Prefix { matched: String, replacement: String },
}

impl PathModifier {
    /// `prefix`: the PathPrefix of the rule's one match, required for `ReplacePrefixMatch`.
    pub fn compile(doc: &PathModifierDoc, prefix: Option<&str>) -> Result<Self, String> {
        match doc {
            PathModifierDoc::ReplaceFullPath(path) if path.starts_with('/') => Ok(PathModifier::Full(path.clone())),
            PathModifierDoc::ReplaceFullPath(path) => Err(format!("replaceFullPath {path:?} must start with '/'")),
            PathModifierDoc::ReplacePrefixMatch(replacement) => {
                let Some(prefix) = prefix else {
                    return Err("ReplacePrefixMatch needs a rule with exactly one match, a PathPrefix".to_owned());
                };
                if !(replacement.is_empty() || replacement.starts_with('/')) {
                    return Err(format!("replacePrefixMatch {replacement:?} must be empty or start with '/'"));
                }
                Ok(PathModifier::Prefix {
                    matched: prefix.trim_end_matches('/').to_owned(),
                    replacement: replacement.trim_end_matches('/').to_owned(),
                })
            }
        }
    }

    /// The new path for `path` (without its query), which the rule's match took. For
    /// `ReplacePrefixMatch` the matched whole segments give way to the replacement and the rest
    /// follows it: prefix `/foo` replaced by `/xyz` takes `/foo/bar` to `/xyz/bar` and `/foo/`
    /// to `/xyz/`; replaced by `/` or by nothing, `/foo/bar` to `/bar` and `/foo` to `/`.
    pub fn apply(&self, path: &str) -> String {
        match self {
            PathModifier::Full(full) => full.clone(),
            PathModifier::Prefix { matched, replacement } => {
                let rest = path.strip_prefix(matched.as_str()).unwrap_or(path);
                let new = format!("{replacement}{rest}");
                if new.is_empty() {
                    "/".to_owned()
                } else {
                    new
                }
            }
        }
    }
}

/// Joins a path and a raw query string (`""` for none).
fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// A compiled `RequestRedirect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathModifier>,
    /// 301, 302, 303, 307 or 308.
    pub status: u32,
}

/// What a redirect keeps of the request when the filter leaves a part unspecified.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `http`, unless the request says otherwise (`:scheme`).
    pub scheme: &'a str,
    /// `Host` / `:authority`, which may carry a port (dropped: the port follows its own rule).
    pub authority: &'a str,
    /// The Service port the client dialled: the mesh's "listener port".
    pub listener_port: u16,
    pub path: &'a str,
    pub query: &'a str,
}

impl Redirect {
    pub fn compile(doc: &RedirectDoc, prefix: Option<&str>) -> Result<Self, String> {
        if !matches!(doc.status_code, 301 | 302 | 303 | 307 | 308) {
            return Err(format!("redirect status {} is not 301, 302, 303, 307 or 308", doc.status_code));
        }
        if let Some(scheme) = doc.scheme.as_deref().filter(|s| !matches!(*s, "http" | "https")) {
            return Err(format!("redirect scheme {scheme:?} is not http or https"));
        }
        Ok(Redirect {
            scheme: doc.scheme.clone(),
            hostname: doc.hostname.clone(),
            port: doc.port,
            path: doc.path.as_ref().map(|p| PathModifier::compile(p, prefix)).transpose()?,
            status: u32::from(doc.status_code),
        })
    }

    /// The absolute `Location`, by HTTPRequestRedirectFilter's rules: unspecified parts keep the
    /// request's; the port is the filter's, else the new scheme's well-known port when the
    /// scheme is set, else the listener port; a scheme's default port is left out.
    pub fn location(&self, origin: &Origin<'_>) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(origin.scheme);
        let host = match &self.hostname {
            Some(hostname) => hostname.as_str(),
            None => host_of(origin.authority),
        };
        let port = redirect_port(self.scheme.as_deref(), self.port, origin.listener_port);
        let path = match &self.path {
            Some(modifier) => modifier.apply(origin.path),
            None => origin.path.to_owned(),
        };
        let authority = if default_port(scheme) == Some(port) { host.to_owned() } else { format!("{host}:{port}") };
        with_query(format!("{scheme}://{authority}{path}"), origin.query)
    }
}

/// A compiled `URLRewrite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The `Host` / `:authority` the backend sees.
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
}

impl Rewrite {
    pub fn compile(doc: &RewriteDoc, prefix: Option<&str>) -> Result<Self, String> {
        Ok(Rewrite {
            hostname: doc.hostname.clone(),
            path: doc.path.as_ref().map(|p| PathModifier::compile(p, prefix)).transpose()?,
        })
    }

    /// The `:path` (query kept) the backend sees, if the path is rewritten.
    pub fn path_and_query(&self, path: &str, query: &str) -> Option<String> {
        self.path.as_ref().map(|modifier| with_query(modifier.apply(path), query))
    }
}

/// The port of a redirect's `Location` (HTTPRequestRedirectFilter): the filter's `port`, else
/// the well-known port of its `scheme` when it sets one, else the listener port (in the mesh,
/// the Service port the client dialled).
pub fn redirect_port(scheme: Option<&str>, port: Option<u16>, listener_port: u16) -> u16 {
    match (port, scheme) {
        (Some(port), _) => port,
        (None, Some(scheme)) => default_port(scheme).unwrap_or(listener_port),
        (None, None) => listener_port,
    }
}

/// The well-known port of `http` (80) and `https` (443).
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The host of an authority, without its port (`[v6]:port` keeps its brackets).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_once(']').map_or(authority, |(host, _)| &authority[..=host.len()]);
    }
    authority.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(authority, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn prefix(matched: &str, replacement: &str) -> PathModifier {
        PathModifier::compile(&PathModifierDoc::ReplacePrefixMatch(replacement.into()), Some(matched)).unwrap()
    }

    /// The Gateway API's table for ReplacePrefixMatch (HTTPPathModifier), row by row.
    #[test]
    fn replace_prefix_match_follows_the_apis_table() {
        for (matched, replacement, path, expected) in [
            ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
            ("/foo", "/xyz/", "/foo/bar", "/xyz/bar"),
            ("/foo/", "/xyz", "/foo/bar", "/xyz/bar"),
            ("/foo/", "/xyz/", "/foo/bar", "/xyz/bar"),
            ("/foo", "/xyz", "/foo", "/xyz"),
            ("/foo", "/xyz", "/foo/", "/xyz/"),
            ("/foo", "", "/foo/bar", "/bar"),
            ("/foo", "", "/foo/", "/"),
            ("/foo", "", "/foo", "/"),
            ("/foo", "/", "/foo/", "/"),
            ("/foo", "/", "/foo", "/"),
            ("/prefix", "/", "/prefix/one/two", "/one/two"),
            ("/strip-prefix", "/", "/strip-prefix", "/"),
            ("/", "/xyz", "/a/b", "/xyz/a/b"),
        ] {
            assert_eq!(prefix(matched, replacement).apply(path), expected, "{matched} -> {replacement:?}: {path}");
        }
    }

    fn redirect(scheme: Option<&str>, hostname: Option<&str>, port: Option<u16>) -> Redirect {
        Redirect { scheme: scheme.map(Into::into), hostname: hostname.map(Into::into), port, path: None, status: 302 }
    }

    fn origin<'a>(authority: &'a str, listener_port: u16) -> Origin<'a> {
        Origin { scheme: "http", authority, listener_port, path: "/x", query: "a=1" }
    }

    /// HTTPRequestRedirectFilter's port rules, and default ports left out.
    #[test]
    fn the_location_port_follows_the_apis_rules() {
        for (r, o, expected) in [
            (redirect(None, Some("example.com"), None), origin("echo", 80), "http://example.com/x?a=1"),
            (redirect(None, Some("example.com"), None), origin("echo:8080", 8080), "http://example.com:8080/x?a=1"),
            (redirect(None, None, None), origin("echo", 8080), "http://echo:8080/x?a=1"),
            (redirect(Some("https"), None, None), origin("echo:8080", 8080), "https://echo/x?a=1"),
            (redirect(Some("https"), None, Some(8443)), origin("echo", 80), "https://echo:8443/x?a=1"),
            (redirect(Some("http"), None, None), origin("echo:8080", 8080), "http://echo/x?a=1"),
            (redirect(None, None, Some(8080)), origin("echo", 80), "http://echo:8080/x?a=1"),
            (redirect(None, None, Some(80)), origin("echo:8080", 8080), "http://echo/x?a=1"),
            (redirect(None, None, None), origin("[fd00::1]:8080", 8080), "http://[fd00::1]:8080/x?a=1"),
        ] {
            assert_eq!(r.location(&o), expected, "{r:?} from {}", o.authority);
        }
    }

    #[test]
    fn a_redirect_path_keeps_the_query() {
        let mut r = redirect(None, None, None);
        r.path = Some(PathModifier::Full("/new".into()));
        assert_eq!(r.location(&origin("echo", 80)), "http://echo/new?a=1");
        r.path = Some(prefix("/old", "/new"));
        let o = Origin { path: "/old/a/b", query: "", ..origin("echo", 80) };
        assert_eq!(r.location(&o), "http://echo/new/a/b");
    }

    #[test]
    fn a_rewrite_keeps_the_query() {
        let r = Rewrite { hostname: None, path: Some(prefix("/prefix", "/")) };
        assert_eq!(r.path_and_query("/prefix/one", "q=1").as_deref(), Some("/one?q=1"));
        assert_eq!(Rewrite { hostname: Some("h".into()), path: None }.path_and_query("/a", ""), None);
    }

    #[test]
    fn replace_prefix_match_needs_the_rules_prefix() {
        assert!(PathModifier::compile(&PathModifierDoc::ReplacePrefixMatch("/x".into()), None).is_err());
        assert!(PathModifier::compile(&PathModifierDoc::ReplaceFullPath("x".into()), None).is_err());
    }
}
