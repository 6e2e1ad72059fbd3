//! HTTPRoute and GRPCRoute specs, validated as the Gateway API CRDs (schema and CEL rules)
//! validate them, into the model the table is compiled from. Defaults are applied as the API
//! server applies them: a route without rules gets one rule matching PathPrefix `/`, a rule
//! without matches one match on PathPrefix `/`, a backendRef weight 1.

use std::collections::HashMap;

use meshroute_filter::document::{
    FiltersDoc, MatchDoc, PathMatchDoc, PathMatchType, RetryDoc, RouteKind, TimeoutsDoc, ValueMatchDoc, ValueMatchType,
};
use meshroute_filter::matching::FullRegex;

use crate::decode::{group_field, kind_field, GATEWAY_GROUP};
use crate::model::{BackendRef, GrpcMatch, GrpcMethodMatch, GrpcRoute, GrpcRule, HttpRoute, HttpRule, Meta, ParentRef, Source};
use crate::reader::{join, Fields, Reader};
use crate::route_filters::{check_mirrors, check_rule, decode_filters, Decoded, Level};
use crate::syntax;
use crate::yaml::Node;

pub const MAX_PARENT_REFS: usize = 32;
pub const MAX_RULES: usize = 16;
pub const MAX_HTTP_MATCHES: usize = 64;
pub const MAX_HTTP_MATCHES_PER_ROUTE: usize = 128;
pub const MAX_GRPC_MATCHES: usize = 8;
pub const MAX_BACKEND_REFS: usize = 16;
pub const MAX_HEADERS: usize = 16;
pub const MAX_WEIGHT: i64 = 1_000_000;

const VALUE_MATCH_TYPES: &[(&str, ValueMatchType)] =
    &[("Exact", ValueMatchType::Exact), ("RegularExpression", ValueMatchType::RegularExpression)];

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// Fields of the Gateway API that meshroute does not implement yet: refused rather than
/// silently ignored, so that no one believes a timeout is applied.
const UNSUPPORTED_RULE_FIELDS: &[&str] = &["sessionPersistence"];

pub fn decode_http_route(r: &mut Reader<'_>, top: &Fields<'_>, meta: Meta) -> Option<HttpRoute> {
    let spec_node = r.required(top, "spec", "")?;
    let spec = r.fields(spec_node, "spec", &["parentRefs", "hostnames", "rules"])?;
    let parent_refs = parent_refs(r, &spec, &meta);
    let hostnames = hostnames(r, &spec);
    let mut rules = Vec::new();
    match spec.get("rules") {
        None => rules.push(HttpRule {
            name: None,
            matches: vec![default_match()],
            backend_refs: Vec::new(),
            filters: FiltersDoc::default(),
            mirrors: Vec::new(),
            timeouts: None,
            retry: None,
            dropped: None,
            source: source(r, spec.line()),
        }),
        Some(node) => {
            let items = r.list(node, "spec.rules", Some(MAX_RULES));
            let total: usize = items.iter().map(count_matches).sum();
            if total > MAX_HTTP_MATCHES_PER_ROUTE {
                r.error(
                    node.line,
                    "spec.rules",
                    format!("the rules have {total} matches in all; a route may have at most {MAX_HTTP_MATCHES_PER_ROUTE}"),
                );
            }
            let mut names = HashMap::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("spec.rules[{i}]");
                let Some(f) = r.fields(
                    item,
                    &path,
                    &["name", "matches", "backendRefs", "filters", "timeouts", "retry", "sessionPersistence"],
                ) else {
                    continue;
                };
                let name = rule_name(r, &f, &path, i, &mut names);
                unsupported(r, &f, &path, UNSUPPORTED_RULE_FIELDS);
                let matches = match f.get("matches") {
                    None => vec![default_match()],
                    Some(list) => {
                        let mpath = join(&path, "matches");
                        let items = r.list(list, &mpath, Some(MAX_HTTP_MATCHES));
                        let matches: Vec<MatchDoc> =
                            items.iter().enumerate().filter_map(|(j, m)| http_match(r, m, &format!("{mpath}[{j}]"))).collect();
                        // `matches: []` is stored as is; the filter reads it as "every request".
                        matches
                    }
                };
                let Decoded { doc: filters, mirrors, dropped } =
                    decode_filters(r, &f, &path, RouteKind::Http, Level::Rule, &meta.namespace);
                let backend_refs = backend_refs(r, &f, &path, &meta, RouteKind::Http);
                let dropped = dropped.or_else(|| backend_refs.iter().find_map(|b| b.dropped.clone()));
                let backend_filters: Vec<FiltersDoc> = backend_refs.iter().map(|b| b.filters.clone()).collect();
                check_rule(r, item.line, &path, &filters, &backend_filters, &matches);
                check_mirrors(r, item.line, &path, &backend_refs);
                let timeouts = f.get("timeouts").and_then(|n| timeouts(r, n, &join(&path, "timeouts")));
                let retry = f.get("retry").and_then(|n| retry(r, n, &join(&path, "retry")));
                rules.push(HttpRule {
                    name,
                    matches,
                    backend_refs,
                    filters,
                    mirrors,
                    timeouts,
                    retry,
                    dropped,
                    source: source(r, item.line),
                });
            }
        }
    }
    Some(HttpRoute { meta, parent_refs, hostnames, rules })
}

pub fn decode_grpc_route(r: &mut Reader<'_>, top: &Fields<'_>, meta: Meta) -> Option<GrpcRoute> {
    let spec_node = r.required(top, "spec", "")?;
    let spec = r.fields(spec_node, "spec", &["parentRefs", "hostnames", "rules"])?;
    let parent_refs = parent_refs(r, &spec, &meta);
    let hostnames = hostnames(r, &spec);
    let mut rules = Vec::new();
    if let Some(node) = spec.get("rules") {
        let mut names = HashMap::new();
        for (i, item) in r.list(node, "spec.rules", Some(MAX_RULES)).iter().enumerate() {
            let path = format!("spec.rules[{i}]");
            let Some(f) = r.fields(item, &path, &["name", "matches", "backendRefs", "filters", "sessionPersistence"]) else {
                continue;
            };
            let name = rule_name(r, &f, &path, i, &mut names);
            unsupported(r, &f, &path, UNSUPPORTED_RULE_FIELDS);
            let mut matches = Vec::new();
            if let Some(list) = f.get("matches") {
                let mpath = join(&path, "matches");
                for (j, m) in r.list(list, &mpath, Some(MAX_GRPC_MATCHES)).iter().enumerate() {
                    matches.extend(grpc_match(r, m, &format!("{mpath}[{j}]")));
                }
            }
            let Decoded { doc: filters, mirrors, dropped } =
                decode_filters(r, &f, &path, RouteKind::Grpc, Level::Rule, &meta.namespace);
            let backend_refs = backend_refs(r, &f, &path, &meta, RouteKind::Grpc);
            let dropped = dropped.or_else(|| backend_refs.iter().find_map(|b| b.dropped.clone()));
            check_mirrors(r, item.line, &path, &backend_refs);
            rules.push(GrpcRule { name, matches, backend_refs, filters, mirrors, dropped, source: source(r, item.line) });
        }
    }
    Some(GrpcRoute { meta, parent_refs, hostnames, rules })
}

/// `HTTPRouteTimeouts` (GEP-1742): `request` (the whole request, retries included) and
/// `backendRequest` (each attempt), which may not be longer unless `request` is `0s`.
fn timeouts(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<TimeoutsDoc> {
    let f = r.fields(node, path, &["request", "backendRequest"])?;
    let mut duration = |key: &str| -> Result<Option<u64>, ()> {
        let Some(n) = f.get(key) else { return Ok(None) };
        let dpath = join(path, key);
        let text = r.string(n, &dpath).ok_or(())?;
        match syntax::gateway_duration(&text) {
            Ok(ms) => Ok(Some(ms)),
            Err(message) => {
                r.error(n.line, &dpath, message);
                Err(())
            }
        }
    };
    let (request_ms, backend_request_ms) = (duration("request").ok()?, duration("backendRequest").ok()?);
    if let (Some(request), Some(backend)) = (request_ms, backend_request_ms) {
        if request != 0 && backend > request {
            r.error(f.line(), &join(path, "backendRequest"), "backendRequest timeout cannot be longer than request timeout");
            return None;
        }
    }
    Some(TimeoutsDoc { request_ms, backend_request_ms })
}

/// `HTTPRouteRetry` (GEP-1731): `codes` (400–599), `attempts` (retries after the first try; 1
/// when left out, Envoy's default), `backoff` (a duration).
fn retry(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<RetryDoc> {
    let f = r.fields(node, path, &["codes", "attempts", "backoff"])?;
    let mut ok = true;
    let mut codes = Vec::new();
    if let Some(list) = f.get("codes") {
        let cpath = join(path, "codes");
        for (i, item) in r.list(list, &cpath, None).iter().enumerate() {
            match r.int(item, &format!("{cpath}[{i}]"), 400, 599).and_then(|c| u16::try_from(c).ok()) {
                Some(code) => codes.push(code),
                None => ok = false,
            }
        }
    }
    let attempts = match f.get("attempts") {
        None => Some(1),
        Some(n) => r.int(n, &join(path, "attempts"), 0, i64::from(u32::MAX)).and_then(|a| u32::try_from(a).ok()),
    };
    let backoff_ms = match f.get("backoff") {
        None => Some(None),
        Some(n) => {
            let bpath = join(path, "backoff");
            r.string(n, &bpath).and_then(|text| match syntax::gateway_duration(&text) {
                Ok(ms) => Some(Some(ms)),
                Err(message) => {
                    r.error(n.line, &bpath, message);
                    None
                }
            })
        }
    };
    if backoff_ms.flatten().is_some() {
        r.note(
            f.line(),
            &join(path, "backoff"),
            "Envoy's back-off is jittered from 0 and guarantees no minimum wait: Envoy's own routes (sync --mode native) \
             take backoff as its base interval, the filter's requests keep Envoy's default (25 ms)",
        );
    }
    ok.then_some(RetryDoc { codes, attempts: attempts?, backoff_ms: backoff_ms? })
}

fn source(r: &Reader<'_>, line: usize) -> Source {
    Source { file: r.file.to_path_buf(), line }
}

fn default_match() -> MatchDoc {
    MatchDoc { path: Some(PathMatchDoc { kind: PathMatchType::PathPrefix, value: "/".to_owned() }), ..MatchDoc::default() }
}

fn count_matches(rule: &Node) -> usize {
    match &rule.value {
        crate::yaml::Value::Map(entries) => {
            entries.iter().find(|(k, _)| k.scalar().is_some_and(|s| s.text == "matches")).map_or(1, |(_, v)| match &v.value {
                crate::yaml::Value::Seq(items) => items.len(),
                _ => 0,
            })
        }
        _ => 0,
    }
}

fn unsupported(r: &mut Reader<'_>, f: &Fields<'_>, path: &str, keys: &[&str]) {
    for key in keys {
        if let Some(node) = f.get(key) {
            r.error(node.line, &join(path, key), "is not supported by meshroute yet");
        }
    }
}

/// `rules[].name` (a `SectionName`: a DNS subdomain), unique within the route.
fn rule_name(r: &mut Reader<'_>, f: &Fields<'_>, path: &str, index: usize, names: &mut HashMap<String, usize>) -> Option<String> {
    let node = f.get("name")?;
    let npath = join(path, "name");
    let name = r.string(node, &npath)?;
    if !r.check(node.line, &npath, syntax::dns_subdomain(&name)) {
        return None;
    }
    if let Some(first) = names.insert(name.clone(), index) {
        r.error(node.line, &npath, format!("{name:?} is already the name of spec.rules[{first}]; rule names must be unique"));
        return None;
    }
    Some(name)
}

fn hostnames(r: &mut Reader<'_>, spec: &Fields<'_>) -> Vec<String> {
    let Some(node) = spec.get("hostnames") else { return Vec::new() };
    let mut out = Vec::new();
    for (i, item) in r.list(node, "spec.hostnames", Some(16)).iter().enumerate() {
        let path = format!("spec.hostnames[{i}]");
        if let Some(host) = r.string(item, &path) {
            let bare = host.strip_prefix("*.").unwrap_or(&host);
            if syntax::ip(bare).is_ok() || syntax::dns_subdomain(bare).is_err() {
                r.error(item.line, &path, format!("{host:?} is not a valid hostname"));
            } else {
                out.push(host);
            }
        }
    }
    out
}

fn parent_refs(r: &mut Reader<'_>, spec: &Fields<'_>, meta: &Meta) -> Vec<ParentRef> {
    let Some(node) = spec.get("parentRefs") else { return Vec::new() };
    let mut out: Vec<ParentRef> = Vec::new();
    for (i, item) in r.list(node, "spec.parentRefs", Some(MAX_PARENT_REFS)).iter().enumerate() {
        let path = format!("spec.parentRefs[{i}]");
        let Some(f) = r.fields(item, &path, &["group", "kind", "namespace", "name", "sectionName", "port"]) else {
            continue;
        };
        let group = group_field(r, &f, &path, false).unwrap_or_else(|| GATEWAY_GROUP.to_owned());
        let kind = kind_field(r, &f, &path, false).unwrap_or_else(|| "Gateway".to_owned());
        let namespace = namespace_field(r, &f, &path).unwrap_or_else(|| meta.namespace.clone());
        let name = name_field(r, &f, &path);
        let section_name = f.get("sectionName").and_then(|n| {
            let spath = join(&path, "sectionName");
            let s = r.string(n, &spath)?;
            r.check(n.line, &spath, syntax::dns_subdomain(&s)).then_some(s)
        });
        let port = f.get("port").and_then(|n| r.port(n, &join(&path, "port")));
        let Some(name) = name else { continue };
        let namespace_written = f.get("namespace").is_some();
        let parent =
            ParentRef { group, kind, namespace, name, port, section_name, namespace_written, source: source(r, item.line) };
        let same: Vec<&ParentRef> = out
            .iter()
            .filter(|p| {
                p.group == parent.group && p.kind == parent.kind && p.namespace == parent.namespace && p.name == parent.name
            })
            .collect();
        if !same.is_empty() {
            if same.iter().chain([&&parent]).any(|p| p.port.is_none() && p.section_name.is_none()) {
                r.error(
                    item.line,
                    &path,
                    "sectionName or port must be specified when parentRefs includes 2 or more references to the same parent",
                );
            } else if same.iter().any(|p| p.port == parent.port && p.section_name == parent.section_name) {
                r.error(
                    item.line,
                    &path,
                    "sectionName or port must be unique when parentRefs includes 2 or more references to the same parent",
                );
            }
        }
        out.push(parent);
    }
    out
}

fn namespace_field(r: &mut Reader<'_>, f: &Fields<'_>, path: &str) -> Option<String> {
    let node = f.get("namespace")?;
    let path = join(path, "namespace");
    let ns = r.string(node, &path)?;
    r.check(node.line, &path, syntax::dns_label(&ns)).then_some(ns)
}

fn name_field(r: &mut Reader<'_>, f: &Fields<'_>, path: &str) -> Option<String> {
    let node = r.required(f, "name", path)?;
    let path = join(path, "name");
    let name = r.string(node, &path)?;
    if name.is_empty() || name.len() > 253 {
        r.error(node.line, &path, "must be 1 to 253 characters");
        return None;
    }
    Some(name)
}

fn backend_refs(r: &mut Reader<'_>, rule: &Fields<'_>, path: &str, meta: &Meta, route_kind: RouteKind) -> Vec<BackendRef> {
    let Some(node) = rule.get("backendRefs") else { return Vec::new() };
    let bpath = join(path, "backendRefs");
    let mut out = Vec::new();
    for (i, item) in r.list(node, &bpath, Some(MAX_BACKEND_REFS)).iter().enumerate() {
        let path = format!("{bpath}[{i}]");
        let Some(f) = r.fields(item, &path, &["group", "kind", "name", "namespace", "port", "weight", "filters"]) else {
            continue;
        };
        let Decoded { doc: filters, mirrors, dropped } =
            decode_filters(r, &f, &path, route_kind, Level::BackendRef, &meta.namespace);
        let to = object_ref(r, &f, &path, &meta.namespace);
        let weight = match f.get("weight") {
            Some(n) => r.int(n, &join(&path, "weight"), 0, MAX_WEIGHT).and_then(|w| u32::try_from(w).ok()),
            None => Some(1),
        };
        if let (Some(to), Some(weight)) = (to, weight) {
            out.push(BackendRef { weight, filters, mirrors, dropped, ..to });
        }
    }
    out
}

/// A `BackendObjectReference` (a backendRef's, a RequestMirror's) at `path` in `f`: `group`
/// and `kind` (a core Service by default), `namespace` (`default_namespace`, the route's, by
/// default), `name`, and `port`, required for a Service. Weight 1, no filters.
pub fn object_ref(r: &mut Reader<'_>, f: &Fields<'_>, path: &str, default_namespace: &str) -> Option<BackendRef> {
    let group = group_field(r, f, path, false).unwrap_or_default();
    let kind = kind_field(r, f, path, false).unwrap_or_else(|| "Service".to_owned());
    let namespace = namespace_field(r, f, path).unwrap_or_else(|| default_namespace.to_owned());
    let name = name_field(r, f, path);
    let port = f.get("port").and_then(|n| r.port(n, &join(path, "port")));
    if f.get("port").is_none() && (group.is_empty() || group == "core") && kind == "Service" {
        r.error(f.line(), &join(path, "port"), "required for a Service backend");
    }
    Some(BackendRef {
        group,
        kind,
        namespace,
        name: name?,
        port,
        weight: 1,
        filters: FiltersDoc::default(),
        mirrors: Vec::new(),
        dropped: None,
        source: source(r, f.line()),
    })
}

fn http_match(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<MatchDoc> {
    let f = r.fields(node, path, &["path", "headers", "queryParams", "method"])?;
    let mut ok = true;
    let path_match = match f.get("path") {
        None => Some(PathMatchDoc { kind: PathMatchType::PathPrefix, value: "/".to_owned() }),
        Some(p) => path_match(r, p, &join(path, "path")),
    };
    ok &= path_match.is_some();
    let method = f.get("method").and_then(|m| r.one_of(m, &join(path, "method"), METHODS));
    ok &= f.get("method").is_none() || method.is_some();
    let (headers, headers_ok) = value_matches(r, &f, "headers", path, 4096, false);
    let (query_params, query_ok) = value_matches(r, &f, "queryParams", path, 1024, true);
    (ok && headers_ok && query_ok).then_some(MatchDoc { path: path_match, method, headers, query_params, grpc_method: None })
}

fn path_match(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<PathMatchDoc> {
    let f = r.fields(node, path, &["type", "value"])?;
    let kind = match f.get("type") {
        None => Some(PathMatchType::PathPrefix),
        Some(t) => r.choice(
            t,
            &join(path, "type"),
            &[
                ("Exact", PathMatchType::Exact),
                ("PathPrefix", PathMatchType::PathPrefix),
                ("RegularExpression", PathMatchType::RegularExpression),
            ],
        ),
    };
    let value_node = f.get("value");
    let value = match value_node {
        None => Some("/".to_owned()),
        Some(v) => r.string(v, &join(path, "value")),
    };
    let (kind, value) = (kind?, value?);
    let line = value_node.map_or(f.line(), |n| n.line);
    let vpath = join(path, "value");
    if value.len() > 1024 {
        r.error(line, &vpath, "must be at most 1024 characters");
        return None;
    }
    let valid = match kind {
        PathMatchType::RegularExpression => r.check(line, &vpath, FullRegex::new(&value).map(drop)),
        _ => r.check(line, &vpath, syntax::http_path(&value)),
    };
    valid.then_some(PathMatchDoc { kind, value })
}

/// `headers` or `queryParams` of a match, without the entries that repeat an earlier name (header
/// names compared case-insensitively, query parameter names exactly): HTTPHeaderMatch and
/// HTTPQueryParamMatch say only the first entry of a name counts and later ones MUST be ignored.
/// Each ignored entry gets a warning. The bool says whether every entry was valid.
fn value_matches(
    r: &mut Reader<'_>,
    f: &Fields<'_>,
    key: &str,
    path: &str,
    max_value: usize,
    case_sensitive: bool,
) -> (Vec<ValueMatchDoc>, bool) {
    let Some(node) = f.get(key) else { return (Vec::new(), true) };
    let lpath = join(path, key);
    let items = r.list(node, &lpath, Some(MAX_HEADERS));
    let mut valid = items.len() == r.list_len(node);
    let mut out: Vec<(usize, ValueMatchDoc)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{lpath}[{i}]");
        let Some(m) = value_match(r, item, &path, max_value) else {
            valid = false;
            continue;
        };
        let same = |o: &&(usize, ValueMatchDoc)| {
            if case_sensitive {
                o.1.name == m.name
            } else {
                o.1.name.eq_ignore_ascii_case(&m.name)
            }
        };
        match out.iter().find(same) {
            Some((first, _)) => r.warning(
                item.line,
                &path,
                format!("ignored: {lpath}[{first}] already matches {:?}, and only the first match of a name counts", m.name),
            ),
            None => out.push((i, m)),
        }
    }
    (out.into_iter().map(|(_, m)| m).collect(), valid)
}

fn value_match(r: &mut Reader<'_>, node: &Node, path: &str, max_value: usize) -> Option<ValueMatchDoc> {
    let f = r.fields(node, path, &["type", "name", "value"])?;
    let kind = match f.get("type") {
        None => Some(ValueMatchType::Exact),
        Some(t) => r.choice(t, &join(path, "type"), VALUE_MATCH_TYPES),
    };
    let name = r.req_string(&f, "name", path).filter(|n| {
        let line = f.get("name").map_or(f.line(), |n| n.line);
        r.check(line, &join(path, "name"), syntax::header_name(n))
    });
    let value_node = r.required(&f, "value", path);
    let value = value_node.and_then(|v| r.string(v, &join(path, "value")));
    let (kind, name, value, line) = (kind?, name?, value?, value_node.map_or(f.line(), |n| n.line));
    let vpath = join(path, "value");
    if value.is_empty() || value.len() > max_value {
        r.error(line, &vpath, format!("must be 1 to {max_value} characters"));
        return None;
    }
    if kind == ValueMatchType::RegularExpression && !r.check(line, &vpath, FullRegex::new(&value).map(drop)) {
        return None;
    }
    Some(ValueMatchDoc { kind, name, value })
}

fn grpc_match(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<GrpcMatch> {
    let f = r.fields(node, path, &["method", "headers"])?;
    let method = match f.get("method") {
        None => None,
        Some(m) => Some(grpc_method(r, m, &join(path, "method"))?),
    };
    let (headers, ok) = value_matches(r, &f, "headers", path, 4096, false);
    ok.then_some(GrpcMatch { method, headers })
}

fn grpc_method(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<GrpcMethodMatch> {
    let f = r.fields(node, path, &["type", "service", "method"])?;
    let regex = match f.get("type") {
        None => Some(false),
        Some(t) => r.choice(t, &join(path, "type"), VALUE_MATCH_TYPES).map(|t| t == ValueMatchType::RegularExpression),
    }?;
    let mut ok = true;
    let mut field = |key: &str, check: fn(&str) -> Result<(), String>| -> Option<String> {
        let node = f.get(key)?;
        let fpath = join(path, key);
        let value = r.string(node, &fpath);
        let valid = value.as_deref().is_some_and(|v| {
            if v.len() > 1024 {
                r.error(node.line, &fpath, "must be at most 1024 characters");
                false
            } else if regex {
                r.check(node.line, &fpath, FullRegex::new(v).map(drop))
            } else {
                r.check(node.line, &fpath, check(v))
            }
        });
        ok &= valid;
        value.filter(|_| valid)
    };
    let service = field("service", syntax::grpc_service);
    let method = field("method", syntax::grpc_method);
    if f.get("service").is_none() && f.get("method").is_none() {
        r.error(f.line(), path, "one or both of 'service' or 'method' must be specified");
        return None;
    }
    ok.then_some(GrpcMethodMatch { regex, service, method })
}
