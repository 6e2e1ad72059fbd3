//! The same manifests expressed in Envoy's own routing, with no filter, the way a control plane
//! such as Istio would write them: for proxies that cannot run wasm, and as the baseline the
//! filter is measured against.
//!
//! One RouteConfiguration (RDS) holds a virtual host per listener. The frontend is the
//! connection's original destination, not the Host header, so each listener's connection
//! manager names itself in [`FRONTEND_HEADER`] before routing (an early header mutation, which
//! overwrites any copy a client sent) and the RouteConfiguration picks virtual hosts by that
//! header (`vhost_header`), not by `:authority`. The header never reaches a backend.
//!
//! Inside a virtual host the routes are the frontend's matches in the filter's own precedence
//! order ([`meshroute_filter::table::Frontend::precedence_order`]), so Envoy's first-match scan
//! takes the same rule the filter would, then a 404 for requests no rule takes. Ports without
//! routes pass through to their own Service's cluster.
//!
//! Refusals follow the filter's answers: a rule without backends answers 500 (`direct_response`).
//! An unresolved backend keeps its share of a weighted split by pointing at a cluster that does
//! not exist, [`UNRESOLVED_CLUSTER`], with `cluster_not_found_response_code`. On a GRPCRoute
//! frontend, gRPC calls get 503 where plain requests get 500, since Envoy turns a local HTTP 503
//! into gRPC UNAVAILABLE (and 404 into UNIMPLEMENTED), the filter's gRPC answers.
//!
//! Known differences from the filter, outside what the Gateway API pins down: regexes are RE2 in
//! Envoy and `regex-lite` in the filter. (A header sent on several lines is not one: Envoy, like
//! the filter, matches it when any one line matches, and a folded `a, b` line is one value.)

use serde_json::{json, Value};

use meshroute_filter::document::{
    BackendDoc, FiltersDoc, GrpcMethodDoc, HeaderModifierDoc, MatchDoc, MirrorDoc, PathMatchType, PathModifierDoc, RedirectDoc,
    RetryDoc, RouteKind, RuleDoc, TableDocument, TimeoutsDoc, ValueMatchDoc, ValueMatchType,
};
use meshroute_filter::metrics::Outcome;
use meshroute_filter::mirror::Mirror;
use meshroute_filter::table::{only_prefix, DocumentMatch, RouteTable};
use meshroute_filter::url::{default_port, redirect_port};
use meshroute_filter::{DESTINATION_HEADER, SELECTION_HEADER};

use super::listeners::{listener_addresses, listener_name, ListenerAddress};
use super::metrics;
use super::mirrors;
use crate::model::Manifests;

/// The header through which a listener tells the RouteConfiguration which frontend it is.
pub const FRONTEND_HEADER: &str = "x-meshroute-frontend";
/// The one RouteConfiguration every listener uses.
pub const ROUTE_CONFIG_NAME: &str = "meshroute";
/// A cluster name no Service port can have (cluster names are `outbound|PORT||...`): Envoy
/// answers `cluster_not_found_response_code` for the share of an unresolved backend.
pub const UNRESOLVED_CLUSTER: &str = "meshroute-unresolved-backend";

const GRPC_CONTENT_TYPE: &str = "application/grpc([+;].*)?";

/// Where Envoy reads the RouteConfiguration: a file, reloaded when a new one is renamed onto it.
pub struct RdsSource<'a> {
    pub path: &'a str,
    /// Whether the routes need the Lua filter ([`strips_host_port`]).
    pub strip_host_port: bool,
    /// Whether requests are counted ([`super::metrics`]).
    pub metrics: bool,
}

/// Why a table cannot be expressed natively: it does not compile (the filter would refuse it
/// too).
#[derive(Debug, thiserror::Error)]
#[error("the route table does not compile: {0}")]
pub struct NativeError(String);

/// The RDS document: one RouteConfiguration with a virtual host per listener.
pub fn route_configuration(manifests: &Manifests, table: &TableDocument) -> Result<Value, NativeError> {
    let (addresses, _) = listener_addresses(manifests);
    Ok(json!({ "resources": [route_config_of(&addresses, table)?] }))
}

/// The RouteConfiguration alone, for `meshroute compile --format envoy-rds`.
pub fn route_config_of(addresses: &[ListenerAddress], table: &TableDocument) -> Result<Value, NativeError> {
    let compiled = RouteTable::compile(table).map_err(|e| NativeError(e.to_string()))?;
    let virtual_hosts: Vec<Value> = addresses
        .iter()
        .map(|at| {
            let name = listener_name(&at.ip, at.port);
            let frontend_doc =
                table.frontends.iter().find(|f| f.port == at.port && f.addresses.iter().any(|a| same_ip(a, &at.ip)));
            let frontend = frontend_doc.and_then(|f| compiled.frontend_of(&f.namespace, &f.name, f.port));
            let routes = match frontend {
                Some(frontend) => frontend_routes(table, frontend, at.port),
                None => vec![json!({
                    "name": "pass-through",
                    "match": { "prefix": "/" },
                    "route": { "cluster": at.default_cluster, "timeout": "0s" },
                })],
            };
            json!({ "name": name, "domains": [name], "routes": routes })
        })
        .collect();
    Ok(json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": ROUTE_CONFIG_NAME,
        "vhost_header": FRONTEND_HEADER,
        // Neither the frontend nor a client's copy of the filter's headers ever leaves Envoy,
        // as with the filter.
        "request_headers_to_remove": [FRONTEND_HEADER, SELECTION_HEADER, DESTINATION_HEADER],
        "virtual_hosts": virtual_hosts,
    }))
}

fn same_ip(a: &str, b: &str) -> bool {
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A frontend's routes, most specific first, then the 404 for everything else.
fn frontend_routes(table: &TableDocument, frontend: &meshroute_filter::table::Frontend, listener_port: u16) -> Vec<Value> {
    let grpc = frontend.kind() == RouteKind::Grpc;
    let mut routes = Vec::new();
    for entry in frontend.precedence_order().filter_map(|at| at.in_document(table)) {
        let DocumentMatch { route, rule, matched, .. } = entry;
        let name = entry.route_name();
        let route_match = match route.kind {
            RouteKind::Http => http_match(matched),
            RouteKind::Grpc => grpc_match(matched),
        };
        // The rule's header modifiers belong to the route, unless a backendRef has its own: then
        // each cluster of the split carries both.
        let with_filters = |mut route: Value| {
            header_mutations(&mut route, &[&rule.filters]);
            route
        };
        let prefix = only_prefix(route.kind, &rule.matches);
        let counted = |mut route: Value, outcome: Option<Outcome>| {
            route["metadata"] = metrics::route_metadata(frontend, Some(&entry), outcome);
            route
        };
        if let Some(redirect) = &rule.filters.redirect {
            let route = with_filters(redirect_route(name, route_match, redirect, prefix, listener_port));
            routes.push(counted(route, Some(Outcome::Redirect)));
            continue;
        }
        match action(table, &rule.backends, &rule.filters, grpc) {
            Action::Route { mut action, on_clusters } => {
                rewrite(&mut action, &rule.filters, &rule.backends, prefix);
                timeouts_and_retry(&mut action, rule.timeouts.as_deref(), rule.retry.as_deref());
                let mirrors = mirror_policies(rule);
                if !mirrors.is_empty() {
                    action["request_mirror_policies"] = json!(mirrors);
                }
                let route = json!({ "name": name, "match": route_match, "route": action });
                routes.push(counted(if on_clusters { route } else { with_filters(route) }, None));
            }
            Action::Fail => {
                let failed = Some(Outcome::NoBackends);
                if grpc {
                    let route = with_filters(json!({
                        "name": format!("{name}/grpc"),
                        "match": with_grpc_content_type(&route_match),
                        "direct_response": { "status": 503 },
                    }));
                    routes.push(counted(route, failed));
                }
                let route = with_filters(json!({ "name": name, "match": route_match, "direct_response": { "status": 500 } }));
                routes.push(counted(route, failed));
            }
        }
    }
    // A gRPC call without a route gets 404, which Envoy answers as gRPC UNIMPLEMENTED.
    routes.push(json!({
        "name": "no-route",
        "match": { "prefix": "/" },
        "direct_response": { "status": 404, "body": { "inline_string": "no route matched\n" } },
        "metadata": metrics::route_metadata(frontend, None, Some(Outcome::NoRoute)),
    }));
    routes
}

/// The rule's RequestMirrors, then those its backendRefs share: a route carries mirror policies,
/// a cluster of a weighted split cannot, so the mirrors of one backendRef of a split are left
/// out here (`check` warns of it; the filter applies them).
fn mirror_policies(rule: &RuleDoc) -> Vec<Value> {
    let own: Vec<&[MirrorDoc]> = rule.backends.iter().filter(|b| b.weight > 0).map(|b| b.filters.mirrors.as_slice()).collect();
    let shared = match own.split_first() {
        Some((first, rest)) if rest.iter().all(|m| m == first) => *first,
        _ => &[],
    };
    rule.filters.mirrors.iter().chain(shared).filter_map(|doc| Mirror::compile(doc).ok()).map(|m| mirrors::policy(&m)).collect()
}

fn with_grpc_content_type(route_match: &Value) -> Value {
    let mut route_match = route_match.clone();
    let header = json!({ "name": "content-type", "string_match": { "safe_regex": { "regex": GRPC_CONTENT_TYPE } } });
    match route_match.get_mut("headers").and_then(Value::as_array_mut) {
        Some(headers) => headers.push(header),
        None => route_match["headers"] = json!([header]),
    }
    route_match
}

enum Action {
    /// The route action; `on_clusters`: the header mutations are on its weighted clusters.
    Route { action: Value, on_clusters: bool },
    /// No backend can take a request: all weights 0, or none at all.
    Fail,
}

/// The route action for a rule's backends: one cluster, or a weighted split. Weight 0 is left
/// out; unresolved backends share [`UNRESOLVED_CLUSTER`]. BackendRefs to one cluster with the
/// same filters are one share; a backendRef with filters of its own always goes through
/// `weighted_clusters`, where a cluster can carry them.
fn action(table: &TableDocument, backends: &[BackendDoc], rule: &FiltersDoc, grpc: bool) -> Action {
    let mut shares: Vec<(String, u64, &FiltersDoc)> = Vec::new();
    for backend in backends.iter().filter(|b| b.weight > 0) {
        let cluster = table.target(backend).and_then(|t| t.cluster.clone()).unwrap_or_else(|| UNRESOLVED_CLUSTER.to_owned());
        match shares.iter_mut().find(|(known, _, filters)| *known == cluster && **filters == backend.filters) {
            Some((_, weight, _)) => *weight += u64::from(backend.weight),
            None => shares.push((cluster, u64::from(backend.weight), &backend.filters)),
        }
    }
    let not_found = if grpc { "SERVICE_UNAVAILABLE" } else { "INTERNAL_SERVER_ERROR" };
    // Envoy applies a route's header mutations after its weighted clusters' whatever
    // `most_specific_header_mutations_wins` says (measured on 1.40.0), so where a backendRef has
    // filters of its own, each cluster carries its rule's and its own, in the filter's order.
    let on_clusters = shares.iter().any(|(_, _, filters)| !filters.is_empty());
    // A backendRef's own filters need its cluster of a split, even a split of one.
    let mut action = match shares.as_slice() {
        [] => return Action::Fail,
        [(cluster, _, _)] if !on_clusters => json!({ "cluster": cluster }),
        shares => json!({
            "weighted_clusters": {
                "clusters": shares
                    .iter()
                    .map(|(name, weight, filters)| {
                        let mut share = json!({ "name": name, "weight": weight });
                        header_mutations(&mut share, &[rule, filters]);
                        if let Some(host) = filters.rewrite.as_ref().and_then(|r| r.hostname.as_ref()) {
                            share["host_rewrite_literal"] = json!(host);
                        }
                        share
                    })
                    .collect::<Vec<_>>(),
            }
        }),
    };
    action["timeout"] = json!("0s");
    if shares.iter().any(|(cluster, _, _)| cluster == UNRESOLVED_CLUSTER) {
        action["cluster_not_found_response_code"] = json!(not_found);
    }
    Action::Route { action, on_clusters }
}

/// RequestRedirect as Envoy's redirect action, measured on Envoy 1.40.0: the scheme is always
/// written (else a client's `x-forwarded-proto` would choose it); Envoy takes the port from the
/// Host header, never from the listener, so the port the API prescribes is written unless it
/// is the scheme's default; the status is always given (Envoy's default is 301, the API's 302).
/// A Location without a port still needs the request's Host without its own port, which no
/// redirect field does: those routes strip it first ([`STRIP_HOST_PORT`]).
fn redirect_route(name: String, route_match: Value, redirect: &RedirectDoc, prefix: Option<&str>, listener_port: u16) -> Value {
    let scheme = redirect.scheme.as_deref().unwrap_or("http");
    let default = default_port(scheme);
    let port = redirect_port(redirect.scheme.as_deref(), redirect.port, listener_port);
    let code = match redirect.status_code {
        301 => "MOVED_PERMANENTLY",
        303 => "SEE_OTHER",
        307 => "TEMPORARY_REDIRECT",
        308 => "PERMANENT_REDIRECT",
        _ => "FOUND",
    };
    let mut action = json!({ "response_code": code, "scheme_redirect": scheme });
    if let Some(host) = &redirect.hostname {
        action["host_redirect"] = json!(host);
    }
    if Some(port) != default {
        action["port_redirect"] = json!(port);
    }
    match &redirect.path {
        None => {}
        Some(PathModifierDoc::ReplaceFullPath(path)) => action["path_redirect"] = json!(path),
        Some(PathModifierDoc::ReplacePrefixMatch(replacement)) => {
            if let Some(regex_rewrite) = prefix_regex(prefix.unwrap_or("/"), replacement) {
                action["regex_rewrite"] = regex_rewrite;
            }
        }
    }
    let mut route = json!({ "name": name, "match": route_match, "redirect": action });
    if redirect.hostname.is_none() && Some(port) == default {
        route["typed_per_filter_config"] = json!({ LUA_FILTER: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute",
            "source_code": { "inline_string": STRIP_HOST_PORT },
        }});
    }
    route
}

/// Whether a table's native routes may need [`STRIP_HOST_PORT`] (a redirect that keeps the
/// request's host), so that the listeners carry the Lua filter it runs in; only then, since
/// even an idle filter costs a little on every request.
pub fn strips_host_port(table: &TableDocument) -> bool {
    table.routes.iter().flat_map(|r| &r.rules).filter_map(|rule| rule.filters.redirect.as_ref()).any(|r| r.hostname.is_none())
}

/// The HTTP filter that runs [`STRIP_HOST_PORT`] on the routes that carry it; a no-op elsewhere.
pub const LUA_FILTER: &str = "envoy.filters.http.lua";

/// Drops the port from `:authority` before a redirect that must not write one.
const STRIP_HOST_PORT: &str = "function envoy_on_request(h)
  local host = h:headers():get(\":authority\")
  if host ~= nil then
    local stripped = string.gsub(host, \":%d+$\", \"\")
    if stripped ~= host then h:headers():replace(\":authority\", stripped) end
  end
end
";

/// `ReplacePrefixMatch` as a `regex_rewrite` of the path alone (the query is kept), measured
/// right on every row of the API's table where `prefix_rewrite` gets trailing slashes wrong.
/// `None` when nothing changes (the root prefix replaced by nothing).
fn prefix_regex(prefix: &str, replacement: &str) -> Option<Value> {
    let (prefix, replacement) = (prefix.trim_end_matches('/'), replacement.trim_end_matches('/'));
    let substitution_of = |r: &str| r.replace('\\', "\\\\");
    let (regex, substitution) = match (prefix.is_empty(), replacement.is_empty()) {
        (true, true) => return None,
        (true, false) => ("^(/.*)?$".to_owned(), format!("{}\\1", substitution_of(replacement))),
        (false, false) => (format!("^{}(/.*)?$", regex_escape(prefix)), format!("{}\\1", substitution_of(replacement))),
        (false, true) => (format!("^{}(?:/(.*))?$", regex_escape(prefix)), "/\\1".to_owned()),
    };
    Some(json!({ "pattern": { "regex": regex }, "substitution": substitution }))
}

/// `timeouts` and `retry` as the route's own `timeout` (the whole request; `0s`, none, when the
/// rule sets none) and `retry_policy`: listed status codes only, `attempts` retries, each try
/// bounded by `backendRequest`, `backoff` as Envoy's base interval (jittered from 0: no minimum).
fn timeouts_and_retry(action: &mut Value, timeouts: Option<&TimeoutsDoc>, retry: Option<&RetryDoc>) {
    let seconds = |ms: u64| format!("{}.{:03}s", ms / 1000, ms % 1000);
    if let Some(ms) = timeouts.and_then(|t| t.request_ms) {
        action["timeout"] = json!(seconds(ms));
    }
    let per_try = timeouts.and_then(|t| t.backend_request_ms).filter(|&ms| ms > 0);
    if retry.is_none() && per_try.is_none() {
        return;
    }
    let mut policy = json!({ "num_retries": retry.map_or(0, |r| r.attempts) });
    if let Some(retry) = retry.filter(|r| !r.codes.is_empty()) {
        policy["retry_on"] = json!("retriable-status-codes");
        policy["retriable_status_codes"] = json!(retry.codes);
    }
    if let Some(ms) = per_try {
        policy["per_try_timeout"] = json!(seconds(ms));
    }
    if let Some(ms) = retry.and_then(|r| r.backoff_ms).filter(|&ms| ms > 0) {
        policy["retry_back_off"] = json!({ "base_interval": seconds(ms), "max_interval": seconds(ms * 10) });
    }
    action["retry_policy"] = policy;
}

/// URLRewrite on a route action: the rule's hostname (a backendRef's own goes on its weighted
/// cluster), and the path. Envoy rewrites a path per route, not per cluster: the path is the one
/// every share would get (a backendRef's own, else the rule's); where they differ, the rule's
/// applies, and `check` warns about it.
fn rewrite(action: &mut Value, rule: &FiltersDoc, backends: &[BackendDoc], prefix: Option<&str>) {
    fn path_of(f: &FiltersDoc) -> Option<&PathModifierDoc> {
        f.rewrite.as_ref().and_then(|r| r.path.as_ref())
    }
    if let Some(host) = rule.rewrite.as_ref().and_then(|r| r.hostname.as_ref()) {
        action["host_rewrite_literal"] = json!(host);
    }
    let paths: Vec<Option<&PathModifierDoc>> =
        backends.iter().filter(|b| b.weight > 0).map(|b| path_of(&b.filters).or(path_of(rule))).collect();
    let path = match paths.first() {
        Some(first) if paths.iter().all(|p| p == first) => *first,
        _ => path_of(rule),
    };
    if let Some(path) = path {
        path_rewrite(action, path, prefix);
    }
}

fn path_rewrite(action: &mut Value, path: &PathModifierDoc, prefix: Option<&str>) {
    let regex_rewrite = match path {
        PathModifierDoc::ReplaceFullPath(full) => {
            Some(json!({ "pattern": { "regex": "^/.*$" }, "substitution": full.replace('\\', "\\\\") }))
        }
        PathModifierDoc::ReplacePrefixMatch(replacement) => prefix_regex(prefix.unwrap_or("/"), replacement),
    };
    if let Some(regex_rewrite) = regex_rewrite {
        action["regex_rewrite"] = regex_rewrite;
    }
}

/// Header modifiers as Envoy's header mutations on a route or a weighted cluster (the same four
/// fields on both): `layers` in the order the filter applies them (a rule's, then a
/// backendRef's). `set` overwrites and `add` appends, in that order layer by layer; Envoy
/// removes before it adds, so every removal goes first, and a header a later layer removes is
/// not added by an earlier one: the result is what the filter's layer-by-layer edits give.
fn header_mutations(target: &mut Value, layers: &[&FiltersDoc]) {
    type Pick = fn(&FiltersDoc) -> Option<&HeaderModifierDoc>;
    let directions: [(&str, Pick); 2] =
        [("request", |f| f.request_headers.as_deref()), ("response", |f| f.response_headers.as_deref())];
    for (direction, pick) in directions {
        let modifiers: Vec<&HeaderModifierDoc> = layers.iter().filter_map(|f| pick(f)).collect();
        let mut adds = Vec::new();
        let mut removes: Vec<String> = Vec::new();
        for (i, m) in modifiers.iter().enumerate() {
            let removed_later =
                |name: &str| modifiers.iter().skip(i + 1).any(|later| later.remove.iter().any(|r| r.eq_ignore_ascii_case(name)));
            let entries = m
                .set
                .iter()
                .map(|h| (h, "OVERWRITE_IF_EXISTS_OR_ADD"))
                .chain(m.add.iter().map(|h| (h, "APPEND_IF_EXISTS_OR_ADD")));
            for (h, action) in entries.filter(|(h, _)| !removed_later(&h.name)) {
                adds.push(json!({ "header": { "key": h.name.to_ascii_lowercase(), "value": h.value }, "append_action": action }));
            }
            for name in m.remove.iter().map(|n| n.to_ascii_lowercase()) {
                if !removes.contains(&name) {
                    removes.push(name);
                }
            }
        }
        if !adds.is_empty() {
            target[format!("{direction}_headers_to_add")] = json!(adds);
        }
        if !removes.is_empty() {
            target[format!("{direction}_headers_to_remove")] = json!(removes);
        }
    }
}

fn string_match(kind: ValueMatchType, value: &str) -> Value {
    match kind {
        ValueMatchType::Exact => json!({ "exact": value }),
        ValueMatchType::RegularExpression => json!({ "safe_regex": { "regex": value } }),
    }
}

fn header_matchers(headers: &[ValueMatchDoc]) -> Vec<Value> {
    headers
        .iter()
        .map(|h| json!({ "name": h.name.to_ascii_lowercase(), "string_match": string_match(h.kind, &h.value) }))
        .collect()
}

/// An HTTPRoute match: path, then `:method` and the other headers, then query parameters.
fn http_match(doc: Option<&MatchDoc>) -> Value {
    let mut out = serde_json::Map::new();
    match doc.and_then(|d| d.path.as_ref()) {
        None => {
            out.insert("prefix".into(), json!("/"));
        }
        Some(path) => match path.kind {
            PathMatchType::Exact => {
                out.insert("path".into(), json!(path.value));
            }
            PathMatchType::PathPrefix => {
                let prefix = path.value.trim_end_matches('/');
                if prefix.is_empty() {
                    out.insert("prefix".into(), json!("/"));
                } else {
                    out.insert("path_separated_prefix".into(), json!(prefix));
                }
            }
            PathMatchType::RegularExpression => {
                out.insert("safe_regex".into(), json!({ "regex": path.value }));
            }
        },
    }
    let Some(doc) = doc else { return Value::Object(out) };
    let mut headers = Vec::new();
    if let Some(method) = &doc.method {
        headers.push(json!({ "name": ":method", "string_match": { "exact": method } }));
    }
    headers.extend(header_matchers(&doc.headers));
    if !headers.is_empty() {
        out.insert("headers".into(), json!(headers));
    }
    if !doc.query_params.is_empty() {
        let params: Vec<Value> =
            doc.query_params.iter().map(|q| json!({ "name": q.name, "string_match": string_match(q.kind, &q.value) })).collect();
        out.insert("query_parameters".into(), json!(params));
    }
    Value::Object(out)
}

/// A GRPCRoute match: the `/SERVICE/METHOD` path, then metadata as headers.
fn grpc_match(doc: Option<&MatchDoc>) -> Value {
    let mut out = serde_json::Map::new();
    match doc.and_then(|d| d.grpc_method.as_ref()) {
        None => {
            out.insert("prefix".into(), json!("/"));
        }
        Some(GrpcMethodDoc { kind: ValueMatchType::Exact, service: Some(service), method: Some(method) }) => {
            out.insert("path".into(), json!(format!("/{service}/{method}")));
        }
        Some(GrpcMethodDoc { kind, service, method }) => {
            let part = |name: &Option<String>| match (kind, name) {
                (_, None) => "[^/]+".to_owned(),
                (ValueMatchType::Exact, Some(name)) => regex_escape(name),
                (ValueMatchType::RegularExpression, Some(name)) => format!("(?:{name})"),
            };
            out.insert("safe_regex".into(), json!({ "regex": format!("/{}/{}", part(service), part(method)) }));
        }
    }
    if let Some(doc) = doc {
        let headers = header_matchers(&doc.headers);
        if !headers.is_empty() {
            out.insert("headers".into(), json!(headers));
        }
    }
    Value::Object(out)
}

/// `text` as an RE2 literal.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The connection manager of a native listener: name the frontend, then route by RDS.
pub fn http_connection_manager(listener: &str, rds: &RdsSource) -> Value {
    let mut http_filters = Vec::new();
    if rds.strip_host_port {
        // Idle except on the redirect routes that carry its code (`typed_per_filter_config`).
        http_filters.push(json!({
            "name": LUA_FILTER,
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua" },
        }));
    }
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
    }));
    let mut manager = json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": listener,
            "codec_type": "AUTO",
            "normalize_path": true,
            "merge_slashes": true,
            "early_header_mutation_extensions": [{
                "name": "envoy.http.early_header_mutation.header_mutation",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                    "mutations": [{
                        "append": {
                            "header": { "key": FRONTEND_HEADER, "value": listener },
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        }
                    }],
                }
            }],
            "rds": {
                "route_config_name": ROUTE_CONFIG_NAME,
                "config_source": {
                    "resource_api_version": "V3",
                    "path_config_source": { "path": rds.path },
                },
            },
            "http_filters": http_filters,
        }
    });
    if rds.metrics {
        manager["typed_config"]["access_log"] = metrics::access_logs();
    }
    manager
}

/// The LDS document of native mode: the same listeners as with the filter, routing by RDS.
pub fn listeners(manifests: &Manifests, rds: &RdsSource) -> (Value, Vec<String>) {
    let (addresses, warnings) = listener_addresses(manifests);
    let resources: Vec<Value> = addresses
        .iter()
        .map(|at| {
            let name = listener_name(&at.ip, at.port);
            json!({
                "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                "name": name,
                "address": { "socket_address": { "address": at.ip, "port_value": at.port } },
                "filter_chains": [{ "filters": [http_connection_manager(&name, rds)] }],
            })
        })
        .collect();
    (json!({ "resources": resources }), warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshroute_filter::document::{BackendTargetDoc, FrontendDoc, HeaderDoc, PathMatchDoc, RouteDoc, RuleDoc};

    /// Every test table's targets: `v1`, `v2` and `off` served by `c1`, `c2` and `c3`, and
    /// `gone`, which does not resolve.
    const TARGETS: [(&str, Option<&str>); 4] = [("v1", Some("c1")), ("v2", Some("c2")), ("off", Some("c3")), ("gone", None)];

    /// A backendRef to the target `name` of [`TARGETS`].
    fn backend(name: &str, weight: u32) -> BackendDoc {
        let target = TARGETS.iter().position(|(known, _)| *known == name).unwrap();
        BackendDoc { target, weight, filters: FiltersDoc::default() }
    }

    fn path(kind: PathMatchType, value: &str) -> MatchDoc {
        MatchDoc { path: Some(PathMatchDoc { kind, value: value.into() }), ..MatchDoc::default() }
    }

    fn table(rules: Vec<RuleDoc>) -> TableDocument {
        TableDocument {
            targets: TARGETS
                .iter()
                .map(|(name, cluster)| BackendTargetDoc {
                    name: (*name).into(),
                    namespace: "default".into(),
                    port: Some(80),
                    cluster: cluster.map(Into::into),
                    unresolved: cluster.is_none().then(|| "BackendNotFound".into()),
                })
                .collect(),
            frontends: vec![FrontendDoc {
                namespace: "default".into(),
                name: "echo".into(),
                port: 80,
                addresses: vec!["10.0.0.1".into()],
                routes: vec![0],
            }],
            routes: vec![RouteDoc {
                kind: RouteKind::Http,
                namespace: "default".into(),
                name: "r".into(),
                creation_timestamp: None,
                rules,
            }],
            ..TableDocument::default()
        }
    }

    fn at() -> Vec<ListenerAddress> {
        vec![
            ListenerAddress {
                ip: "10.0.0.1".into(),
                port: 80,
                default_cluster: "outbound|80||echo.default.svc.cluster.local".into(),
            },
            ListenerAddress {
                ip: "10.0.0.2".into(),
                port: 80,
                default_cluster: "outbound|80||v1.default.svc.cluster.local".into(),
            },
        ]
    }

    #[test]
    fn routes_follow_precedence_then_404_and_ports_without_routes_pass_through() {
        let rules = vec![
            RuleDoc {
                matches: vec![path(PathMatchType::PathPrefix, "/v2/")],
                backends: vec![backend("v2", 1)],
                ..RuleDoc::default()
            },
            RuleDoc { matches: vec![path(PathMatchType::Exact, "/v1")], backends: vec![backend("v1", 1)], ..RuleDoc::default() },
        ];
        let config = route_config_of(&at(), &table(rules)).unwrap();
        assert_eq!(config["vhost_header"], FRONTEND_HEADER);
        let hosts = config["virtual_hosts"].as_array().unwrap();
        assert_eq!(hosts[0]["domains"], json!(["10.0.0.1_80"]));
        let routes = hosts[0]["routes"].as_array().unwrap();
        assert_eq!(routes[0]["match"], json!({ "path": "/v1" }), "Exact beats any prefix");
        assert_eq!(routes[1]["match"], json!({ "path_separated_prefix": "/v2" }));
        assert_eq!(routes[2]["direct_response"]["status"], 404);
        assert_eq!(hosts[1]["routes"][0]["route"]["cluster"], "outbound|80||v1.default.svc.cluster.local");
    }

    #[test]
    fn weights_skip_zero_and_unresolved_backends_keep_their_share_as_500() {
        let rules = vec![RuleDoc {
            matches: Vec::new(),
            backends: vec![backend("v1", 9), backend("gone", 1), backend("off", 0)],
            ..RuleDoc::default()
        }];
        let config = route_config_of(&at(), &table(rules)).unwrap();
        let route = &config["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["match"], json!({ "prefix": "/" }));
        assert_eq!(
            route["route"]["weighted_clusters"]["clusters"],
            json!([{ "name": "c1", "weight": 9 }, { "name": UNRESOLVED_CLUSTER, "weight": 1 }])
        );
        assert_eq!(route["route"]["cluster_not_found_response_code"], "INTERNAL_SERVER_ERROR");
    }

    #[test]
    fn a_rule_without_backends_answers_500() {
        let config =
            route_config_of(&at(), &table(vec![RuleDoc { matches: Vec::new(), backends: Vec::new(), ..RuleDoc::default() }]))
                .unwrap();
        assert_eq!(config["virtual_hosts"][0]["routes"][0]["direct_response"]["status"], 500);
    }

    #[test]
    fn headers_method_and_query_parameters() {
        let m = MatchDoc {
            method: Some("POST".into()),
            headers: vec![ValueMatchDoc { kind: ValueMatchType::Exact, name: "Version".into(), value: "two".into() }],
            query_params: vec![ValueMatchDoc { kind: ValueMatchType::RegularExpression, name: "a".into(), value: "w.*".into() }],
            ..path(PathMatchType::PathPrefix, "/")
        };
        assert_eq!(
            http_match(Some(&m)),
            json!({
                "prefix": "/",
                "headers": [
                    { "name": ":method", "string_match": { "exact": "POST" } },
                    { "name": "version", "string_match": { "exact": "two" } },
                ],
                "query_parameters": [{ "name": "a", "string_match": { "safe_regex": { "regex": "w.*" } } }],
            })
        );
    }

    #[test]
    fn grpc_methods_become_paths() {
        let m = |kind, service: Option<&str>, method: Option<&str>| MatchDoc {
            grpc_method: Some(GrpcMethodDoc { kind, service: service.map(Into::into), method: method.map(Into::into) }),
            ..MatchDoc::default()
        };
        assert_eq!(grpc_match(Some(&m(ValueMatchType::Exact, Some("a.B"), Some("Echo")))), json!({ "path": "/a.B/Echo" }));
        assert_eq!(
            grpc_match(Some(&m(ValueMatchType::Exact, Some("a.B"), None))),
            json!({ "safe_regex": { "regex": "/a\\.B/[^/]+" } })
        );
        assert_eq!(
            grpc_match(Some(&m(ValueMatchType::RegularExpression, None, Some("Echo.*")))),
            json!({ "safe_regex": { "regex": "/[^/]+/(?:Echo.*)" } })
        );
    }

    fn modifier(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> Option<Box<HeaderModifierDoc>> {
        let header = |(name, value): &(&str, &str)| HeaderDoc { name: (*name).into(), value: (*value).into() };
        Some(Box::new(HeaderModifierDoc {
            set: set.iter().map(header).collect(),
            add: add.iter().map(header).collect(),
            remove: remove.iter().map(|n| (*n).to_owned()).collect(),
        }))
    }

    /// The rule's header modifiers on the route; where a backendRef has its own, each cluster
    /// of the split carries the rule's then its own (even a split of one), `set` overwriting and
    /// `add` appending, so the more specific wins as in the filter.
    #[test]
    fn header_modifiers_become_envoy_header_mutations() {
        let rule_filters = FiltersDoc {
            request_headers: modifier(&[("X-Who", "rule")], &[("x-add", "a")], &["X-Gone"]),
            response_headers: modifier(&[], &[("x-served-by", "mesh")], &[]),
            ..FiltersDoc::default()
        };
        let rules = vec![RuleDoc {
            matches: Vec::new(),
            backends: vec![backend("v1", 1)],
            filters: rule_filters.clone(),
            ..RuleDoc::default()
        }];
        let config = route_config_of(&at(), &table(rules)).unwrap();
        let route = &config["virtual_hosts"][0]["routes"][0];
        assert_eq!(route["route"]["cluster"], "c1");
        assert_eq!(
            route["request_headers_to_add"],
            json!([
                { "header": { "key": "x-who", "value": "rule" }, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" },
                { "header": { "key": "x-add", "value": "a" }, "append_action": "APPEND_IF_EXISTS_OR_ADD" },
            ])
        );
        assert_eq!(route["request_headers_to_remove"], json!(["x-gone"]));
        assert_eq!(
            route["response_headers_to_add"],
            json!([{ "header": { "key": "x-served-by", "value": "mesh" }, "append_action": "APPEND_IF_EXISTS_OR_ADD" }])
        );

        let mut v1 = backend("v1", 1);
        v1.filters.request_headers = modifier(&[("x-who", "v1")], &[], &["x-add"]);
        let rules = vec![RuleDoc { matches: Vec::new(), backends: vec![v1], filters: rule_filters, ..RuleDoc::default() }];
        let config = route_config_of(&at(), &table(rules)).unwrap();
        let route = &config["virtual_hosts"][0]["routes"][0];
        assert!(route["request_headers_to_add"].is_null() && route["response_headers_to_add"].is_null(), "{route}");
        assert_eq!(
            route["route"]["weighted_clusters"]["clusters"],
            json!([{
                "name": "c1",
                "weight": 1,
                // The rule's x-add is not added: the backendRef removes it after the rule adds it.
                "request_headers_to_add": [
                    { "header": { "key": "x-who", "value": "rule" }, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" },
                    { "header": { "key": "x-who", "value": "v1" }, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD" },
                ],
                "request_headers_to_remove": ["x-gone", "x-add"],
                "response_headers_to_add": [{ "header": { "key": "x-served-by", "value": "mesh" }, "append_action": "APPEND_IF_EXISTS_OR_ADD" }],
            }])
        );
    }

    /// Two backendRefs to one cluster stay two shares when their filters differ.
    #[test]
    fn backends_with_different_filters_are_not_merged() {
        let mut one = backend("v1", 1);
        one.filters.request_headers = modifier(&[("x-n", "1")], &[], &[]);
        let mut two = backend("v1", 1);
        two.filters.request_headers = modifier(&[("x-n", "2")], &[], &[]);
        let rules = vec![RuleDoc { matches: Vec::new(), backends: vec![one, two], ..RuleDoc::default() }];
        let config = route_config_of(&at(), &table(rules)).unwrap();
        let clusters = &config["virtual_hosts"][0]["routes"][0]["route"]["weighted_clusters"]["clusters"];
        assert_eq!(clusters.as_array().map(Vec::len), Some(2));
    }
}
