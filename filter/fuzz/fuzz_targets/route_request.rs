//! Arbitrary requests (method, path and query, headers, destination) against route tables,
//! either fixed ones or ones built from the input: routing and the backend choice never panic,
//! and what they return points into the table.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use meshroute_filter::document::{
    FiltersDoc,
    BackendDoc, BackendTargetDoc, FrontendDoc, GrpcMethodDoc, MatchDoc, PathMatchDoc, PathMatchType, RouteDoc, RouteKind, RuleDoc,
    TableDocument, ValueMatchDoc, ValueMatchType,
};
use meshroute_filter::request::Request;
use meshroute_filter::decision::{decide, Cause, Decision};
use meshroute_filter::table::{Outcome, RouteTable};

const TABLES: &[&str] =
    &[include_str!("../tables/mesh.json"), include_str!("../tables/echo.json"), include_str!("../tables/precedence.json")];

#[derive(Debug, Arbitrary)]
struct Input {
    table: TableChoice,
    requests: Vec<Req>,
}

#[derive(Debug, Arbitrary)]
enum TableChoice {
    Fixed(u8),
    Built(Vec<RouteSpec>),
}

#[derive(Debug, Arbitrary)]
struct RouteSpec {
    grpc: bool,
    namespace: u8,
    name: u8,
    created: Option<u8>,
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Arbitrary)]
struct RuleSpec {
    matches: Vec<MatchSpec>,
    backends: Vec<(u8, bool)>,
}

#[derive(Debug, Arbitrary)]
struct MatchSpec {
    path: Option<(u8, String)>,
    method: Option<u8>,
    headers: Vec<(bool, String, String)>,
    query: Vec<(bool, String, String)>,
    grpc: Option<(bool, Option<String>, Option<String>)>,
}

#[derive(Debug, Arbitrary)]
struct Req {
    destination: Destination,
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
    draw: u64,
}

#[derive(Debug, Arbitrary)]
enum Destination {
    Known(u8),
    Raw(String),
}

const ADDRESSES: &[&str] = &["10.0.0.1:80", "10.0.0.2:80", "[fd00::1]:80", "10.0.0.1:8080", "127.0.10.1:80", "127.0.10.1:8080"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

fn value_match((regex, name, value): &(bool, String, String)) -> ValueMatchDoc {
    let kind = if *regex { ValueMatchType::RegularExpression } else { ValueMatchType::Exact };
    ValueMatchDoc { kind, name: name.clone(), value: value.clone() }
}

fn build(routes: &[RouteSpec]) -> TableDocument {
    let routes: Vec<RouteDoc> = routes
        .iter()
        .take(8)
        .map(|r| RouteDoc {
            kind: if r.grpc { RouteKind::Grpc } else { RouteKind::Http },
            namespace: ["a", "a-b", "b"][usize::from(r.namespace) % 3].into(),
            name: format!("r{}", r.name),
            creation_timestamp: r.created.map(|d| format!("2024-01-{:02}T00:00:00Z", d % 28 + 1)),
            rules: r
                .rules
                .iter()
                .take(8)
                .map(|rule| RuleDoc {
                    matches: rule
                        .matches
                        .iter()
                        .take(8)
                        .map(|m| {
                            if r.grpc {
                                MatchDoc {
                                    grpc_method: m.grpc.as_ref().map(|(regex, service, method)| GrpcMethodDoc {
                                        kind: if *regex { ValueMatchType::RegularExpression } else { ValueMatchType::Exact },
                                        service: service.clone(),
                                        method: method.clone(),
                                    }),
                                    headers: m.headers.iter().take(4).map(value_match).collect(),
                                    ..MatchDoc::default()
                                }
                            } else {
                                MatchDoc {
                                    path: m.path.as_ref().map(|(kind, value)| PathMatchDoc {
                                        kind: [PathMatchType::Exact, PathMatchType::PathPrefix, PathMatchType::RegularExpression]
                                            [usize::from(*kind) % 3],
                                        value: if kind % 3 == 2 || value.starts_with('/') { value.clone() } else { format!("/{value}") },
                                    }),
                                    method: m.method.map(|i| METHODS[usize::from(i) % METHODS.len()].to_owned()),
                                    headers: m.headers.iter().take(4).map(value_match).collect(),
                                    query_params: m.query.iter().take(4).map(value_match).collect(),
                                    grpc_method: None,
                                }
                            }
                        })
                        .collect(),
                    backends: rule
                        .backends
                        .iter()
                        .take(4)
                        .enumerate()
                        .map(|(i, &(weight, resolved))| BackendDoc {
                            // `targets`: `b{i}` served by `c{i}`, then the same four unresolved.
                            target: if resolved { i } else { 4 + i },
                            weight: [0, 1, 7, 1_000_000][usize::from(weight) % 4],
                            filters: FiltersDoc::default(),
                        })
                        .collect(),
                    ..RuleDoc::default()
                })
                .collect(),
        })
        .collect();
    let of_kind = |kind| (0..routes.len()).filter(|&i| routes[i].kind == kind).collect::<Vec<_>>();
    let mut frontends = Vec::new();
    for (kind, address) in [(RouteKind::Http, "10.0.0.1"), (RouteKind::Grpc, "10.0.0.2")] {
        let indexes = of_kind(kind);
        if !indexes.is_empty() {
            frontends.push(FrontendDoc {
                namespace: "default".into(),
                name: address.into(),
                port: 80,
                addresses: vec![address.into(), if kind == RouteKind::Http { "fd00::1".into() } else { "fd00::2".into() }],
                routes: indexes,
            });
        }
    }
    let target = |i: usize, resolved: bool| BackendTargetDoc {
        name: format!("b{i}"),
        namespace: "default".into(),
        port: Some(80),
        cluster: resolved.then(|| format!("c{i}")),
        unresolved: (!resolved).then(|| "BackendNotFound".to_owned()),
    };
    let targets = [true, false].into_iter().flat_map(|resolved| (0..4).map(move |i| target(i, resolved))).collect();
    TableDocument { frontends, routes, targets, ..TableDocument::default() }
}

fuzz_target!(|input: Input| {
    let table = match &input.table {
        TableChoice::Fixed(i) => RouteTable::from_json(TABLES[usize::from(*i) % TABLES.len()].as_bytes()),
        TableChoice::Built(routes) => RouteTable::compile(&build(routes)),
    };
    // A built table may be invalid (a bad regex, an empty header name): refused, which is fine.
    let Ok(table) = table else { return };
    for r in input.requests.iter().take(16) {
        let destination = match &r.destination {
            Destination::Known(i) => ADDRESSES[usize::from(*i) % ADDRESSES.len()],
            Destination::Raw(raw) => raw.as_str(),
        };
        let request = Request { method: &r.method, path_and_query: &r.path_and_query, headers: &r.headers };
        let frontend = table.frontend_at(destination);
        match table.route(frontend, &request) {
            Outcome::PassThrough => assert!(frontend.is_none()),
            Outcome::NoMatch => {}
            Outcome::Matched(m) => assert!(m.rule_index < m.route.rules.len()),
        }
        let content_type = r.headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.as_str());
        match decide(&table, frontend, &request, r.draw, |name: &str| content_type.filter(|_| name == "content-type")) {
            Decision::PassThrough => assert!(frontend.is_none()),
            Decision::Forward(forward) => {
                assert!(!forward.cluster.is_empty());
                assert!(forward.backend.weight > 0, "a weight-0 backend was picked");
            }
            Decision::LocalReply { cause, reply } => {
                assert_eq!(cause == Cause::NoRoute, matches!(table.route(frontend, &request), Outcome::NoMatch));
                assert!(matches!(reply.status, 200 | 404 | 500));
            }
        }
    }
});
