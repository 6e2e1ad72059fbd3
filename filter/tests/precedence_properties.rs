//! Property test: on generated tables and requests, `RouteTable::route` (whatever index it
//! uses) picks exactly the rule that a plain reading of the Gateway API picks: keep every match
//! that matches, take the greatest by the spec's precedence, compared field by field here. The
//! cluster `decision::decide` forwards to for a draw is checked against a cumulative-weight walk
//! too.
//!
//! Generation is biased so that matches collide: few path segments, header and query names and
//! values, shared timestamps and namespace/name pairs chosen to exercise every tie-break, and
//! requests built from the table's own strings.
//!
//! `PROPTEST_CASES` changes the number of tables (default below).

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::SocketAddr;

use meshroute_filter::decision::{decide, Decision, Forward};
use meshroute_filter::document::{
    BackendDoc, BackendTargetDoc, FiltersDoc, FrontendDoc, GrpcMethodDoc, MatchDoc, PathMatchDoc, PathMatchType, RouteDoc,
    RouteKind, RuleDoc, TableDocument, ValueMatchDoc, ValueMatchType,
};
use meshroute_filter::request::Request;
use meshroute_filter::table::{Outcome, RouteTable};
use proptest::prelude::*;
use proptest::sample::select;

const DEFAULT_CASES: u32 = 1500;

// ---------------------------------------------------------------------------------------------
// The reference: the Gateway API rules, read directly.

/// A regex that must match the whole value.
fn full_match(pattern: &str, value: &str) -> bool {
    regex_lite::Regex::new(&format!("^(?:{pattern})$")).unwrap().is_match(value)
}

fn value_matches(m: &ValueMatchDoc, value: &str) -> bool {
    match m.kind {
        ValueMatchType::Exact => value == m.value,
        ValueMatchType::RegularExpression => full_match(&m.value, value),
    }
}

#[derive(Debug, Clone)]
struct Req {
    destination: String,
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn path(&self) -> &str {
        let before_fragment = self.path_and_query.split('#').next().unwrap();
        before_fragment.split('?').next().unwrap()
    }

    fn query(&self) -> &str {
        let before_fragment = self.path_and_query.split('#').next().unwrap();
        before_fragment.split_once('?').map_or("", |(_, q)| q)
    }

    /// The first value of a query parameter, as sent (not decoded); names are case-sensitive.
    fn query_param(&self, name: &str) -> Option<String> {
        for pair in self.query().split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == name {
                return Some(v.to_owned());
            }
        }
        None
    }

    /// Any header of that name (case-insensitive) with a value that matches.
    fn has_header(&self, m: &ValueMatchDoc) -> bool {
        self.headers.iter().any(|(n, v)| n.to_lowercase() == m.name.to_lowercase() && value_matches(m, v))
    }

    /// `/SERVICE/METHOD`, both non-empty.
    fn grpc_call(&self) -> Option<(&str, &str)> {
        let rest = self.path().strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts[..] {
            [service, method] if !service.is_empty() && !method.is_empty() => Some((service, method)),
            _ => None,
        }
    }
}

/// Gateway API PathPrefix: whole segments, a trailing slash on the value ignored. Only an
/// absolute path has segments: `*` (`OPTIONS *`) is under no prefix, not even `/`.
fn prefix_matches(value: &str, path: &str) -> bool {
    let value_segments: Vec<&str> = value.split('/').filter(|s| !s.is_empty()).collect();
    if value_segments.is_empty() {
        return path.starts_with('/');
    }
    let prefix = format!("/{}", value_segments.join("/"));
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

fn http_match(m: &MatchDoc, r: &Req) -> bool {
    let path_ok = match &m.path {
        None => prefix_matches("/", r.path()),
        Some(p) => match p.kind {
            PathMatchType::Exact => r.path() == p.value,
            PathMatchType::PathPrefix => prefix_matches(&p.value, r.path()),
            PathMatchType::RegularExpression => full_match(&p.value, r.path()),
        },
    };
    path_ok
        && m.method.as_ref().is_none_or(|method| *method == r.method)
        && m.headers.iter().all(|h| r.has_header(h))
        && m.query_params.iter().all(|q| r.query_param(&q.name).is_some_and(|v| value_matches(q, &v)))
}

fn grpc_match(m: &MatchDoc, r: &Req) -> bool {
    let name_ok = |kind: ValueMatchType, want: &Option<String>, got: Option<&str>| match want {
        None => true,
        Some(want) => got.is_some_and(|got| match kind {
            ValueMatchType::Exact => got == want,
            ValueMatchType::RegularExpression => full_match(want, got),
        }),
    };
    let call = r.grpc_call();
    let method_ok = match &m.grpc_method {
        None => true,
        Some(g) => name_ok(g.kind, &g.service, call.map(|c| c.0)) && name_ok(g.kind, &g.method, call.map(|c| c.1)),
    };
    method_ok && m.headers.iter().all(|h| r.has_header(h))
}

/// Specificity of one match as a list of numbers compared in order, greater wins.
/// HTTPRoute: Exact path > RegularExpression (implementation-specific, here longer source) >
/// longest PathPrefix (trailing slash ignored); then method; then header count; then query
/// count. GRPCRoute: characters of the service, then of the method, then header count.
fn specificity(kind: RouteKind, m: Option<&MatchDoc>) -> Vec<usize> {
    match (kind, m) {
        (RouteKind::Http, None) => vec![0, 0, 0, 0, 0],
        (RouteKind::Http, Some(m)) => {
            let (tier, length) = match &m.path {
                None => (0, 0),
                Some(p) => match p.kind {
                    PathMatchType::Exact => (2, p.value.len()),
                    PathMatchType::RegularExpression => (1, p.value.len()),
                    PathMatchType::PathPrefix => (0, p.value.trim_end_matches('/').len()),
                },
            };
            vec![tier, length, usize::from(m.method.is_some()), m.headers.len(), m.query_params.len()]
        }
        (RouteKind::Grpc, None) => vec![0, 0, 0],
        (RouteKind::Grpc, Some(m)) => {
            let g = m.grpc_method.as_ref();
            let chars = |s: Option<&String>| s.map_or(0, String::len);
            vec![chars(g.and_then(|g| g.service.as_ref())), chars(g.and_then(|g| g.method.as_ref())), m.headers.len()]
        }
    }
}

struct Candidate {
    route: usize,
    rule: usize,
    specificity: Vec<usize>,
}

/// Between equally specific matches: the oldest route (no timestamp: newest), then
/// `namespace/name` alphabetically, then rule order.
fn better(doc: &TableDocument, a: &Candidate, b: &Candidate) -> bool {
    if a.specificity != b.specificity {
        return a.specificity > b.specificity;
    }
    let (ra, rb) = (&doc.routes[a.route], &doc.routes[b.route]);
    match (&ra.creation_timestamp, &rb.creation_timestamp) {
        (Some(x), Some(y)) if x != y => return x < y,
        (Some(_), None) => return true,
        (None, Some(_)) => return false,
        _ => {}
    }
    let (na, nb) = (format!("{}/{}", ra.namespace, ra.name), format!("{}/{}", rb.namespace, rb.name));
    if na != nb {
        return na < nb;
    }
    (a.route, a.rule) < (b.route, b.rule)
}

#[derive(Debug, PartialEq)]
enum Expected {
    PassThrough,
    NoMatch,
    Matched { namespace: String, name: String, rule: usize },
}

fn reference(doc: &TableDocument, r: &Req) -> Expected {
    let Ok(destination) = r.destination.parse::<SocketAddr>() else { return Expected::PassThrough };
    let frontend = doc
        .frontends
        .iter()
        .find(|f| f.port == destination.port() && f.addresses.iter().any(|a| a.parse().ok() == Some(destination.ip())));
    let Some(frontend) = frontend else { return Expected::PassThrough };
    let mut best: Option<Candidate> = None;
    for &route_index in &frontend.routes {
        let route = &doc.routes[route_index];
        for (rule_index, rule) in route.rules.iter().enumerate() {
            let matches: Vec<Option<&MatchDoc>> =
                if rule.matches.is_empty() { vec![None] } else { rule.matches.iter().map(Some).collect() };
            for m in matches {
                let hit = match (route.kind, m) {
                    // A rule without matches: HTTPRoute's default is PathPrefix `/`.
                    (RouteKind::Http, None) => http_match(&MatchDoc::default(), r),
                    (RouteKind::Grpc, None) => true,
                    (RouteKind::Http, Some(m)) => http_match(m, r),
                    (RouteKind::Grpc, Some(m)) => grpc_match(m, r),
                };
                if hit {
                    let c = Candidate { route: route_index, rule: rule_index, specificity: specificity(route.kind, m) };
                    if best.as_ref().is_none_or(|b| better(doc, &c, b)) {
                        best = Some(c);
                    }
                }
            }
        }
    }
    match best {
        None => Expected::NoMatch,
        Some(c) => {
            let route = &doc.routes[c.route];
            Expected::Matched { namespace: route.namespace.clone(), name: route.name.clone(), rule: c.rule }
        }
    }
}

/// The backend a draw picks: walk the cumulative weights. `None`: 500.
fn reference_cluster(doc: &TableDocument, rule: &RuleDoc, draw: u64) -> Option<String> {
    let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    let point = draw % total;
    let mut upto = 0;
    for backend in &rule.backends {
        upto += u64::from(backend.weight);
        if point < upto {
            return doc.target(backend).and_then(|t| t.cluster.clone());
        }
    }
    unreachable!()
}

// ---------------------------------------------------------------------------------------------
// Generation.

const SEGMENTS: &[&str] = &["a", "b", "api", "v1", "a.b"];
const REGEXES: &[&str] =
    &["/a.*", "/a/b?", "/a/*", "/api/v[0-9]+/.*", "/a/[a-z0-9.]+", "/(a|b)/.*", "/.*", "/v1(/.*)?", "/api/v1", "/[ab]", "/a.b"];
const HEADER_NAMES: &[&str] = &["x-a", "X-A", "x-b", "version"];
const QUERY_NAMES: &[&str] = &["q", "Q", "r", "a+b"];
const VALUES: &[&str] = &["1", "2", "one", "One"];
const VALUE_REGEXES: &[&str] = &["[12]", ".*", "[a-z]+", "O.e"];
const TIMESTAMPS: &[&str] = &["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"];
/// `a-b/x` sorts before `a/x` ('-' < '/'), which comparing the pair would get wrong.
const NAMES: &[(&str, &str)] =
    &[("a", "x"), ("a", "x-y"), ("a-b", "x"), ("a-b", "a"), ("b", "x"), ("a", "a"), ("ab", "x"), ("a.b", "x")];
const SERVICES: &[&str] = &["pkg.Svc", "pkg.Svc2", "a.B"];
const METHODS: &[&str] = &["Get", "Put", "GetAll"];

fn path_value() -> impl Strategy<Value = String> {
    (prop::collection::vec(select(SEGMENTS), 0..4), any::<bool>()).prop_map(|(segments, slash)| {
        let mut path = format!("/{}", segments.join("/"));
        if slash && path != "/" {
            path.push('/');
        }
        path
    })
}

fn path_match() -> impl Strategy<Value = PathMatchDoc> {
    prop_oneof![
        3 => path_value().prop_map(|value| PathMatchDoc { kind: PathMatchType::PathPrefix, value }),
        2 => path_value().prop_map(|value| PathMatchDoc { kind: PathMatchType::Exact, value: value.trim_end_matches('/').to_owned().max("/".to_owned()) }),
        2 => select(REGEXES).prop_map(|value| PathMatchDoc { kind: PathMatchType::RegularExpression, value: value.to_owned() }),
    ]
}

fn value_match(names: &'static [&'static str]) -> impl Strategy<Value = ValueMatchDoc> {
    prop_oneof![
        3 => (select(names), select(VALUES)).prop_map(|(n, v)| ValueMatchDoc { kind: ValueMatchType::Exact, name: n.into(), value: v.into() }),
        1 => (select(names), select(VALUE_REGEXES)).prop_map(|(n, v)| ValueMatchDoc { kind: ValueMatchType::RegularExpression, name: n.into(), value: v.into() }),
    ]
}

/// Unique names within a match, as validation guarantees (headers case-insensitively).
fn unique(mut matches: Vec<ValueMatchDoc>, case_sensitive: bool) -> Vec<ValueMatchDoc> {
    let key = |m: &ValueMatchDoc| if case_sensitive { m.name.clone() } else { m.name.to_lowercase() };
    let mut seen = Vec::new();
    matches.retain(|m| {
        let k = key(m);
        !seen.contains(&k) && {
            seen.push(k);
            true
        }
    });
    matches
}

fn http_match_doc() -> impl Strategy<Value = MatchDoc> {
    (
        prop::option::weighted(0.85, path_match()),
        prop::option::weighted(0.3, select(&["GET", "POST"][..])),
        prop::collection::vec(value_match(HEADER_NAMES), 0..3),
        prop::collection::vec(value_match(QUERY_NAMES), 0..3),
    )
        .prop_map(|(path, method, headers, query)| MatchDoc {
            path,
            method: method.map(str::to_owned),
            headers: unique(headers, false),
            query_params: unique(query, true),
            grpc_method: None,
        })
}

fn grpc_match_doc() -> impl Strategy<Value = MatchDoc> {
    let exact = (prop::option::of(select(SERVICES)), prop::option::of(select(METHODS)))
        .prop_filter("service or method", |(s, m)| s.is_some() || m.is_some())
        .prop_map(|(s, m)| GrpcMethodDoc { kind: ValueMatchType::Exact, service: s.map(Into::into), method: m.map(Into::into) });
    let regex =
        (prop::option::of(select(&["pkg\\..*", ".*Svc.*", "a\\.B"][..])), prop::option::of(select(&["Get.*", "P.t"][..])))
            .prop_filter("service or method", |(s, m)| s.is_some() || m.is_some())
            .prop_map(|(s, m)| GrpcMethodDoc {
                kind: ValueMatchType::RegularExpression,
                service: s.map(Into::into),
                method: m.map(Into::into),
            });
    (prop::option::weighted(0.8, prop_oneof![3 => exact, 1 => regex]), prop::collection::vec(value_match(HEADER_NAMES), 0..3))
        .prop_map(|(grpc_method, headers)| MatchDoc { grpc_method, headers: unique(headers, false), ..MatchDoc::default() })
}

/// Every table's targets: `b0` to `b3`, served by `c0` to `c3`, then the same four unresolved.
fn targets() -> Vec<BackendTargetDoc> {
    let target = |i: usize, resolved: bool| BackendTargetDoc {
        name: format!("b{i}"),
        namespace: "default".into(),
        port: Some(80),
        cluster: resolved.then(|| format!("c{i}")),
        unresolved: (!resolved).then(|| "BackendNotFound".to_owned()),
    };
    [true, false].into_iter().flat_map(|resolved| (0..4).map(move |i| target(i, resolved))).collect()
}

fn backends() -> impl Strategy<Value = Vec<BackendDoc>> {
    let backend =
        (0..4usize, select(&[0u32, 1, 3, 1_000_000][..]), prop::bool::weighted(0.85)).prop_map(|(i, weight, resolved)| {
            BackendDoc { target: if resolved { i } else { 4 + i }, weight, filters: FiltersDoc::default() }
        });
    prop::collection::vec(backend, 0..4)
}

fn route(kind: RouteKind) -> impl Strategy<Value = RouteDoc> {
    let matches = match kind {
        RouteKind::Http => prop::collection::vec(http_match_doc(), 0..4).boxed(),
        RouteKind::Grpc => prop::collection::vec(grpc_match_doc(), 0..4).boxed(),
    };
    let rule = (matches, backends()).prop_map(|(matches, backends)| RuleDoc { matches, backends, ..RuleDoc::default() });
    (prop::collection::vec(rule, 1..4), prop::option::weighted(0.6, select(TIMESTAMPS))).prop_map(move |(rules, created)| {
        RouteDoc { kind, namespace: String::new(), name: String::new(), creation_timestamp: created.map(str::to_owned), rules }
    })
}

/// Frontends: HTTP routes on 10.0.0.1:80 and on 10.0.0.1:81 (same address, another port),
/// GRPC routes on 10.0.0.2:80 and [fd00::2]:80; each takes a random subset of its kind.
fn table() -> impl Strategy<Value = TableDocument> {
    (
        prop::collection::vec(route(RouteKind::Http), 1..6),
        prop::collection::vec(route(RouteKind::Grpc), 0..4),
        Just(NAMES.to_vec()).prop_shuffle(),
        prop::collection::vec(any::<bool>(), 20),
        prop::collection::vec(any::<bool>(), 20),
    )
        .prop_map(|(http, grpc, names, on_80, on_81)| {
            let mut routes: Vec<RouteDoc> = http.into_iter().chain(grpc).collect();
            routes.truncate(NAMES.len());
            for (route, (namespace, name)) in routes.iter_mut().zip(names) {
                route.namespace = namespace.into();
                route.name = name.into();
            }
            let of_kind = |kind, pick: &[bool]| -> Vec<usize> {
                (0..routes.len()).filter(|&i| routes[i].kind == kind && pick[i]).collect()
            };
            let mut frontends = Vec::new();
            let mut add = |name: &str, port, addresses: &[&str], indexes: Vec<usize>| {
                if !indexes.is_empty() {
                    frontends.push(FrontendDoc {
                        namespace: "default".into(),
                        name: name.into(),
                        port,
                        addresses: addresses.iter().map(|a| a.to_string()).collect(),
                        routes: indexes,
                    });
                }
            };
            let all_http = of_kind(RouteKind::Http, &[true; 20]);
            let on_80 = of_kind(RouteKind::Http, &on_80);
            add("web", 80, &["10.0.0.1"], if on_80.is_empty() { all_http } else { on_80 });
            add("web", 81, &["10.0.0.1"], of_kind(RouteKind::Http, &on_81));
            add("grpc", 80, &["10.0.0.2", "fd00::2"], of_kind(RouteKind::Grpc, &[true; 20]));
            TableDocument { frontends, routes, targets: targets(), ..TableDocument::default() }
        })
}

/// Strings the table uses, so requests hit its matches often.
fn table_paths(doc: &TableDocument) -> Vec<String> {
    let mut paths: Vec<String> = doc
        .routes
        .iter()
        .flat_map(|r| &r.rules)
        .flat_map(|rule| &rule.matches)
        .filter_map(|m| m.path.as_ref())
        .filter(|p| p.kind != PathMatchType::RegularExpression)
        .map(|p| p.value.clone())
        .collect();
    paths.push("/".into());
    paths
}

fn request(paths: Vec<String>) -> impl Strategy<Value = Req> {
    let destination =
        select(&["10.0.0.1:80", "10.0.0.1:81", "10.0.0.2:80", "[fd00::2]:80", "10.0.0.9:80", "not an address", ""][..]);
    let grpc_path = (select(SERVICES), select(METHODS)).prop_map(|(s, m)| format!("/{s}/{m}"));
    let path = prop_oneof![
        4 => (select(paths), prop::option::of(select(&["", "/", "/a", "b", "/x/y"][..]))).prop_map(|(p, suffix)| format!("{p}{}", suffix.unwrap_or(""))),
        2 => path_value(),
        2 => grpc_path,
        1 => select(&["/pkg.Svc/Get/extra", "//Get", "/pkg.Svc/", "*", "/a//b", "/a%2Fb", "/%61"][..]).prop_map(str::to_owned),
    ];
    // Escaped forms of the routes' values (`%31` for `1`) must not match them.
    let query_pair = (select(QUERY_NAMES), select(&["1", "2", "one", "One", "", "%31", "o+e"][..])).prop_map(|(n, v)| {
        if v.is_empty() {
            n.to_owned()
        } else {
            format!("{n}={v}")
        }
    });
    let query = prop::option::weighted(0.5, prop::collection::vec(query_pair, 0..4));
    let fragment = prop::option::weighted(0.05, Just("#q=1"));
    let header = (select(HEADER_NAMES), select(VALUES)).prop_map(|(n, v)| (n.to_owned(), v.to_owned()));
    (destination, select(&["GET", "POST", "PUT", "get"][..]), path, query, fragment, prop::collection::vec(header, 0..5))
        .prop_map(|(destination, method, path, query, fragment, headers)| {
            let mut path_and_query = path;
            if let Some(query) = query {
                path_and_query.push('?');
                path_and_query.push_str(&query.join("&"));
            }
            path_and_query.push_str(fragment.unwrap_or(""));
            Req { destination: destination.into(), method: method.into(), path_and_query, headers }
        })
}

fn table_and_requests() -> impl Strategy<Value = (TableDocument, Vec<Req>, Vec<u64>)> {
    table().prop_flat_map(|doc| {
        let paths = table_paths(&doc);
        (Just(doc), prop::collection::vec(request(paths), 24), prop::collection::vec(any::<u64>(), 4))
    })
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(DEFAULT_CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn describe(doc: &TableDocument) -> String {
    serde_json::to_string_pretty(doc).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn route_agrees_with_the_reference((doc, requests, draws) in table_and_requests()) {
        let table = RouteTable::compile(&doc).unwrap_or_else(|e| panic!("generated table refused: {e}\n{}", describe(&doc)));
        for r in &requests {
            let request = Request { method: &r.method, path_and_query: &r.path_and_query, headers: &r.headers };
            let outcome = table.route(table.frontend_at(&r.destination), &request);
            let expected = reference(&doc, r);
            let got = match outcome {
                Outcome::PassThrough => Expected::PassThrough,
                Outcome::NoMatch => Expected::NoMatch,
                Outcome::Matched(m) => {
                    Expected::Matched { namespace: m.route.namespace.clone(), name: m.route.name.clone(), rule: m.rule_index }
                }
            };
            prop_assert_eq!(
                &got, &expected,
                "{} {} {:?} to {}\n{}", r.method, r.path_and_query, r.headers, r.destination, describe(&doc)
            );
            if let (Outcome::Matched(_), Expected::Matched { namespace, name, rule: index }) = (outcome, &expected) {
                let doc_rule = &doc.routes.iter().find(|d| &d.namespace == namespace && &d.name == name).unwrap().rules[*index];
                for &draw in &draws {
                    let decision = decide(&table, table.frontend_at(&r.destination), &request, draw, |_: &str| None::<&str>);
                    let cluster = match decision {
                        Decision::Forward(Forward { cluster, .. }) => Some(cluster.to_owned()),
                        Decision::PassThrough | Decision::LocalReply { .. } => None,
                    };
                    prop_assert_eq!(cluster, reference_cluster(&doc, doc_rule, draw), "draw {}", draw);
                }
            }
        }
    }
}

/// The generator's bias, measured: most requests to a frontend must match something, and
/// often more than one match at once, or the property would prove little.
#[test]
fn generated_requests_collide_often() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut to_frontend, mut matched, mut contested) = (0, 0, 0);
    for _ in 0..300 {
        let (doc, requests, _) = table_and_requests().new_tree(&mut runner).unwrap().current();
        for r in &requests {
            let Ok(destination) = r.destination.parse::<SocketAddr>() else { continue };
            let Some(frontend) = doc
                .frontends
                .iter()
                .find(|f| f.port == destination.port() && f.addresses.iter().any(|a| a.parse().ok() == Some(destination.ip())))
            else {
                continue;
            };
            to_frontend += 1;
            let hits = frontend
                .routes
                .iter()
                .flat_map(|&i| doc.routes[i].rules.iter().map(move |rule| (i, rule)))
                .flat_map(|(i, rule)| {
                    let kind = doc.routes[i].kind;
                    let matches: Vec<Option<&MatchDoc>> =
                        if rule.matches.is_empty() { vec![None] } else { rule.matches.iter().map(Some).collect() };
                    matches.into_iter().map(move |m| (kind, m))
                })
                .filter(|&(kind, m)| match (kind, m) {
                    (RouteKind::Http, None) => http_match(&MatchDoc::default(), r),
                    (RouteKind::Grpc, None) => true,
                    (RouteKind::Http, Some(m)) => http_match(m, r),
                    (RouteKind::Grpc, Some(m)) => grpc_match(m, r),
                })
                .count();
            matched += usize::from(hits > 0);
            contested += usize::from(hits > 1);
        }
    }
    println!("requests to a frontend: {to_frontend}, matched: {matched}, with 2+ matching entries: {contested}");
    assert!(matched * 2 > to_frontend, "{matched} of {to_frontend}");
    assert!(contested * 3 > to_frontend, "{contested} of {to_frontend}");
}

/// The comparison above must itself be a strict order, or "the greatest" means nothing.
#[test]
fn reference_order_is_strict() {
    let doc = TableDocument {
        targets: Vec::new(),
        frontends: vec![],
        routes: ["a/x", "a-b/x"]
            .iter()
            .map(|n| {
                let (ns, name) = n.split_once('/').unwrap();
                RouteDoc {
                    kind: RouteKind::Http,
                    namespace: ns.into(),
                    name: name.into(),
                    creation_timestamp: None,
                    rules: vec![],
                }
            })
            .collect(),
        ..TableDocument::default()
    };
    let c = |route| Candidate { route, rule: 0, specificity: vec![0, 1, 0, 0, 0] };
    assert!(better(&doc, &c(1), &c(0)), "a-b/x sorts before a/x");
    assert!(!better(&doc, &c(0), &c(1)));
    assert!(!better(&doc, &c(0), &c(0)));
}
