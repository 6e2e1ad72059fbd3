//! Rules that can never match: every request one of their matches would take goes first to an
//! earlier match (by the Gateway API precedence) of another rule on the same frontend. The
//! check is conservative: a match is shadowed only when an earlier one asks for no more (same
//! or no method, a subset of its headers and query parameters) and its path covers this one's;
//! for GRPCRoutes, when the earlier one asks for no service or the same one, no method or the
//! same one (same match type), and a subset of its headers.

use std::collections::BTreeMap;

use meshroute_filter::document::{MatchDoc, PathMatchType, RouteKind, TableDocument};
use meshroute_filter::index::{IndexBuilder, IndexKey};
use meshroute_filter::table::{MatchPosition, RouteTable};

use crate::decode::at;
use crate::diag::Diagnostic;
use crate::model::{BackendRef, Manifests, Source};
use crate::resolve::kind_name;

/// `(route index, rule index)` in the table.
type RuleId = (usize, usize);

struct Entry<'d> {
    route: usize,
    rule: usize,
    /// `None`: a rule with `matches: []`, which takes every request.
    doc: Option<&'d MatchDoc>,
}

impl<'d> Entry<'d> {
    fn at(table: &'d TableDocument, at: MatchPosition) -> Self {
        let doc = at.match_index.and_then(|i| table.routes.get(at.route)?.rules.get(at.rule)?.matches.get(i));
        Entry { route: at.route, rule: at.rule, doc }
    }
}

/// A warning for each rule of `table` (compiled as `compiled`) that never matches, naming what
/// shadows it. A route may attach to
/// several Service ports, beside other routes on each: a rule is reported only when it is
/// shadowed on every port it is attached to.
pub fn shadowed_rules(m: &Manifests, table: &TableDocument, compiled: &RouteTable) -> Vec<Diagnostic> {
    // Per rule: what shadows it on every port so far, or `None` once it matches somewhere.
    let mut verdicts: BTreeMap<RuleId, Option<Vec<RuleId>>> = BTreeMap::new();
    for frontend in compiled.frontends() {
        // The filter's own order: the same code decides which match a request meets first.
        let entries: Vec<Entry<'_>> = frontend.precedence_order().map(|at| Entry::at(table, at)).collect();
        // An earlier match covers a later one only if its index key is the later one's or an
        // ancestor of it, so the filter's index finds the candidates; this keeps the check
        // linear in practice rather than quadratic.
        let keys: Vec<IndexKey> = frontend.index_keys().collect();
        let mut builder = IndexBuilder::default();
        let filed = builder.file(keys.iter().cloned().map(|key| (key, ())));
        let index = builder.build();
        let mut rules: BTreeMap<RuleId, Vec<usize>> = BTreeMap::new();
        for (i, e) in entries.iter().enumerate() {
            rules.entry((e.route, e.rule)).or_default().push(i);
        }
        for ((r, k), positions) in rules {
            let mut shadows: Vec<(usize, usize)> = Vec::new();
            let all_shadowed = positions.iter().all(|&i| {
                let Some(e) = entries.get(i) else { return false };
                let covering =
                    |&j: &usize| j < i && entries.get(j).is_some_and(|f| (f.route, f.rule) != (r, k) && covers(f.doc, e.doc));
                let earlier = match keys.get(i) {
                    Some(IndexKey::Exact(path) | IndexKey::Prefix(path)) => {
                        index.first_match(&filed, path, |j, _| covering(&j)).map(|(j, _)| j)
                    }
                    _ => (0..i).find(covering),
                };
                if let Some(f) = earlier.and_then(|j| entries.get(j)) {
                    if !shadows.contains(&(f.route, f.rule)) {
                        shadows.push((f.route, f.rule));
                    }
                }
                earlier.is_some()
            });
            let verdict = verdicts.entry((r, k)).or_insert_with(|| Some(Vec::new()));
            match verdict {
                Some(known) if all_shadowed => {
                    for shadow in shadows {
                        if !known.contains(&shadow) {
                            known.push(shadow);
                        }
                    }
                }
                _ => *verdict = None,
            }
        }
    }
    verdicts.into_iter().filter_map(|(rule, shadows)| warning(m, table, rule, &shadows.filter(|s| !s.is_empty())?)).collect()
}

/// Whether every request `inner` matches is also matched by `outer`.
fn covers(outer: Option<&MatchDoc>, inner: Option<&MatchDoc>) -> bool {
    let Some(outer) = outer else { return true };
    let everything = MatchDoc::default();
    let inner = inner.unwrap_or(&everything);
    let method = outer.method.is_none() || outer.method == inner.method;
    let grpc_method = match (&outer.grpc_method, &inner.grpc_method) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(o), Some(i)) => {
            let part = |o: &Option<String>, i: &Option<String>| o.is_none() || o == i;
            (o.service.is_none() && o.method.is_none())
                || (o.kind == i.kind && part(&o.service, &i.service) && part(&o.method, &i.method))
        }
    };
    let headers = outer
        .headers
        .iter()
        .all(|h| inner.headers.iter().any(|i| i.name.eq_ignore_ascii_case(&h.name) && i.kind == h.kind && i.value == h.value));
    let query = outer.query_params.iter().all(|q| inner.query_params.contains(q));
    method && grpc_method && headers && query && path_covers(outer, inner)
}

fn path_covers(outer: &MatchDoc, inner: &MatchDoc) -> bool {
    let root = meshroute_filter::document::PathMatchDoc { kind: PathMatchType::PathPrefix, value: "/".to_owned() };
    let (o, i) = (outer.path.as_ref().unwrap_or(&root), inner.path.as_ref().unwrap_or(&root));
    let within = |prefix: &str, path: &str| {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
    };
    match (o.kind, i.kind) {
        (PathMatchType::PathPrefix, PathMatchType::PathPrefix | PathMatchType::Exact) => within(&o.value, &i.value),
        (PathMatchType::PathPrefix, PathMatchType::RegularExpression) => o.value.trim_end_matches('/').is_empty(),
        (PathMatchType::Exact, PathMatchType::Exact) | (PathMatchType::RegularExpression, PathMatchType::RegularExpression) => {
            o.value == i.value
        }
        // Conservative: a regex may well take an exact path or a whole prefix, but proving it is
        // not worth a false warning.
        (PathMatchType::Exact, PathMatchType::PathPrefix | PathMatchType::RegularExpression)
        | (PathMatchType::RegularExpression, PathMatchType::PathPrefix | PathMatchType::Exact) => false,
    }
}

/// Where a rule was written and its backendRefs, for a route of the table.
fn rule_model<'m>(
    m: &'m Manifests,
    kind: RouteKind,
    namespace: &str,
    name: &str,
    rule: usize,
) -> Option<(&'m Source, &'m [BackendRef])> {
    match kind {
        RouteKind::Http => m
            .http_routes
            .iter()
            .find(|h| h.meta.namespace == namespace && h.meta.name == name)
            .and_then(|h| h.rules.get(rule))
            .map(|r| (&r.source, r.backend_refs.as_slice())),
        RouteKind::Grpc => m
            .grpc_routes
            .iter()
            .find(|g| g.meta.namespace == namespace && g.meta.name == name)
            .and_then(|g| g.rules.get(rule))
            .map(|r| (&r.source, r.backend_refs.as_slice())),
    }
}

fn warning(m: &Manifests, table: &TableDocument, (r, k): (usize, usize), shadows: &[(usize, usize)]) -> Option<Diagnostic> {
    let route = table.routes.get(r)?;
    let (source, backend_refs) = rule_model(m, route.kind, &route.namespace, &route.name, k)?;
    let names: Vec<String> = shadows
        .iter()
        .filter_map(|&(sr, sk)| {
            let other = table.routes.get(sr)?;
            if sr == r {
                Some(format!("spec.rules[{sk}] of the same route"))
            } else {
                let line = rule_model(m, other.kind, &other.namespace, &other.name, sk)
                    .map(|(source, _)| format!(" ({})", at(source)))
                    .unwrap_or_default();
                Some(format!("spec.rules[{sk}] of {} {}/{}{line}", kind_name(other.kind), other.namespace, other.name))
            }
        })
        .collect();
    let mut message = format!("never matches: {} takes every request it would match first", names.join(" and "));
    if shadows.iter().all(|&(sr, _)| sr == r) {
        message.push_str(" (when matches are equally specific, the earlier rule wins)");
    }
    let backends: Vec<String> = backend_refs.iter().filter(|b| b.weight > 0).map(|b| b.name.clone()).collect();
    if !backends.is_empty() {
        message.push_str(&format!(", so {} get{} no traffic", backends.join(", "), if backends.len() == 1 { "s" } else { "" }));
        if shadows.iter().any(|&(sr, _)| sr == r) {
            message.push_str("; to split traffic by weight, put all the backendRefs in one rule");
        }
    }
    Some(
        Diagnostic::warning(&source.file, source.line, message)
            .subject(format!("{} {}/{}", kind_name(route.kind), route.namespace, route.name))
            .field(format!("spec.rules[{k}]")),
    )
}
