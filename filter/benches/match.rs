//! The core matcher alone: nanoseconds to route one request at 10, 100, 1,000 and 10,000 rules
//! on one Service, over requests spread across every rule (and the 404 that tries them all).
//! `cargo bench -p meshroute-filter`; `make bench` copies the figures into its report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

use meshroute_filter::document::{
    BackendDoc, BackendTargetDoc, FiltersDoc, FrontendDoc, MatchDoc, PathMatchDoc, PathMatchType, RouteDoc, RouteKind, RuleDoc,
    TableDocument, ValueMatchDoc, ValueMatchType,
};
use meshroute_filter::request::Request;
use meshroute_filter::table::{Outcome, RouteTable};

#[path = "../../bench/src/routeset.rs"]
mod routeset;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const ADDRESS: &str = "10.96.0.10";
/// Rules per HTTPRoute, as the manifests of `make bench` have them.
const RULES_PER_ROUTE: usize = 10;

/// The table's targets: the Services `b1` and `b2` (`backend(0)` and `backend(1)`).
fn targets() -> Vec<BackendTargetDoc> {
    ["b1", "b2"]
        .map(|name| BackendTargetDoc {
            name: name.into(),
            namespace: "bench".into(),
            port: Some(80),
            cluster: Some(format!("outbound|80||{name}.bench.svc.cluster.local")),
            unresolved: None,
        })
        .into()
}

fn backend(target: usize) -> BackendDoc {
    BackendDoc { target, weight: 1, filters: FiltersDoc::default() }
}

fn table(rules: usize) -> TableDocument {
    let mut routes = Vec::new();
    for first in (0..rules).step_by(RULES_PER_ROUTE) {
        let rules = (first..(first + RULES_PER_ROUTE).min(rules))
            .map(|i| {
                let rule = routeset::rule(i);
                let kind = match rule.path_kind {
                    routeset::PathKind::Exact => PathMatchType::Exact,
                    routeset::PathKind::Prefix => PathMatchType::PathPrefix,
                    routeset::PathKind::Regex => PathMatchType::RegularExpression,
                };
                let value = |(name, value): &(String, String)| ValueMatchDoc {
                    kind: ValueMatchType::Exact,
                    name: name.clone(),
                    value: value.clone(),
                };
                let matched = MatchDoc {
                    path: Some(PathMatchDoc { kind, value: rule.path.clone() }),
                    method: rule.method.map(Into::into),
                    headers: rule.header.iter().map(value).collect(),
                    query_params: rule.query.iter().map(value).collect(),
                    grpc_method: None,
                };
                let backends = if rule.split { vec![backend(0), backend(1)] } else { vec![backend(0)] };
                RuleDoc { matches: vec![matched], backends, ..RuleDoc::default() }
            })
            .collect();
        routes.push(RouteDoc {
            kind: RouteKind::Http,
            namespace: "bench".into(),
            name: format!("r{first:05}"),
            creation_timestamp: Some("2024-01-01T00:00:00Z".into()),
            rules,
        });
    }
    TableDocument {
        targets: targets(),
        frontends: vec![FrontendDoc {
            namespace: "bench".into(),
            name: "svc".into(),
            port: 80,
            addresses: vec![ADDRESS.into()],
            routes: (0..routes.len()).collect(),
        }],
        routes,
        ..TableDocument::default()
    }
}

#[derive(Clone)]
struct OwnedProbe {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
}

fn probes(rules: usize) -> Vec<OwnedProbe> {
    let mut all: Vec<routeset::Probe> = (0..rules).map(|i| routeset::probe(&routeset::rule(i), i)).collect();
    all.push(routeset::miss());
    all.into_iter()
        .map(|p| {
            // Envoy hands the filter the pseudo-headers with the others.
            let mut headers = vec![
                (":authority".to_owned(), "svc".to_owned()),
                (":method".to_owned(), p.method.to_owned()),
                (":path".to_owned(), p.path.clone()),
                (":scheme".to_owned(), "http".to_owned()),
            ];
            headers.extend(p.headers);
            OwnedProbe { method: p.method, path: p.path, headers }
        })
        .collect()
}

fn route_one(table: &RouteTable, probe: &OwnedProbe, destination: &str) -> bool {
    let frontend = table.frontend_at(destination);
    let request = Request { method: probe.method, path_and_query: &probe.path, headers: &probe.headers };
    matches!(table.route(frontend, &request), Outcome::Matched { .. })
}

fn matching(c: &mut Criterion) {
    let destination = format!("{ADDRESS}:80");
    let mut group = c.benchmark_group("route");
    for rules in SIZES {
        let doc = table(rules);
        let table = RouteTable::compile(&doc).unwrap();
        let probes = probes(rules);
        // Every rule's request is taken by it; only the last (the miss) is not.
        let matched = probes.iter().filter(|p| route_one(&table, p, &destination)).count();
        assert_eq!(matched, rules, "each probe should be taken by its own rule");
        group.throughput(Throughput::Elements(1));
        let mut next = 0usize;
        // The request is copied outside the timing, as Envoy hands the filter a request it has
        // just parsed (hot in cache): a few at a time, so that they still are when routed (a
        // batch of thousands, as `SmallInput` makes, leaves the first ones cold). The table is
        // walked where the previous requests left it.
        group.bench_with_input(BenchmarkId::new("spread", rules), &rules, |b, _| {
            b.iter_batched_ref(
                || {
                    next = (next + 7919) % probes.len();
                    probes[next].clone()
                },
                |probe| black_box(route_one(&table, black_box(probe), &destination)),
                BatchSize::NumIterations(16),
            )
        });
        let miss = probes.last().unwrap();
        group.bench_with_input(BenchmarkId::new("miss", rules), &rules, |b, _| {
            b.iter(|| black_box(route_one(&table, black_box(miss), &destination)))
        });
    }
    group.finish();

    // What `on_configure` does with a table: decode the JSON and compile it.
    let mut group = c.benchmark_group("configure");
    group.sample_size(10);
    for rules in SIZES {
        let json = serde_json::to_vec(&table(rules)).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(rules), &json, |b, json| {
            b.iter_batched(|| json.clone(), |json| RouteTable::from_json(&json).unwrap(), BatchSize::LargeInput)
        });
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
