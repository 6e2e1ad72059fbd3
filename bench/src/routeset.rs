//! The benchmark's route sets, as plain data shared by the Envoy benchmark (which writes them as
//! manifests) and the core matcher's criterion benchmark (which builds a route table from them):
//! rules of every kind mixed (Exact, PathPrefix, header, query parameter, method, a few
//! regexes), and for each rule one request that it takes.

/// How a rule matches, and a request it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path_kind: PathKind,
    pub path: String,
    pub method: Option<&'static str>,
    pub header: Option<(String, String)>,
    pub query: Option<(String, String)>,
    /// Two backends 1:1 instead of one.
    pub split: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Exact,
    Prefix,
    Regex,
}

/// A request: method, path with query, and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// Rule `i` of a set: its kind cycles through the mix; every 50th is a regex.
pub fn rule(i: usize) -> Rule {
    let base =
        Rule { path_kind: PathKind::Prefix, path: String::new(), method: None, header: None, query: None, split: i % 10 == 7 };
    if i % 50 == 49 {
        return Rule { path_kind: PathKind::Regex, path: format!("/r{i}/[0-9]+"), ..base };
    }
    match i % 5 {
        0 => Rule { path_kind: PathKind::Exact, path: format!("/e{i}/item"), ..base },
        1 => Rule { path: format!("/p{i}/api"), ..base },
        2 => Rule { path: format!("/h{i}"), header: Some(("x-tenant".into(), format!("t{i}"))), ..base },
        3 => Rule { path: format!("/q{i}"), query: Some(("id".into(), format!("q{i}"))), ..base },
        _ => Rule { path_kind: PathKind::Exact, path: format!("/m{i}"), method: Some("POST"), ..base },
    }
}

/// A request rule `i` takes (and no rule before it in precedence order).
pub fn probe(rule: &Rule, i: usize) -> Probe {
    let mut path = match rule.path_kind {
        PathKind::Exact => rule.path.clone(),
        PathKind::Prefix => format!("{}/x{}", rule.path, i % 7),
        PathKind::Regex => format!("/r{i}/{}", 1000 + i),
    };
    if let Some((name, value)) = &rule.query {
        path = format!("{path}?{name}={value}&page=2");
    }
    let mut headers = vec![("user-agent".into(), "meshroute-bench".into()), ("accept".into(), "*/*".into())];
    if let Some(header) = &rule.header {
        headers.push(header.clone());
    }
    Probe { method: rule.method.unwrap_or("GET"), path, headers }
}

/// A request no rule takes: on a frontend with routes, the worst case, where every rule is
/// tried and the answer is 404.
pub fn miss() -> Probe {
    Probe {
        method: "GET",
        path: "/nothing/here?id=none".into(),
        headers: vec![("user-agent".into(), "meshroute-bench".into()), ("x-tenant".into(), "none".into())],
    }
}
