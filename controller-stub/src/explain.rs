//! `meshroute explain`: how one request would be routed, decided by the filter's own code
//! (`decision::decide`) on the table as the filter compiles it, asked once per backend share.
//!
//! gRPC: a request is a gRPC call when its `content-type` is `application/grpc` (what
//! `--grpc SERVICE/METHOD` sends, as a POST to `/SERVICE/METHOD`), as the filter decides. A gRPC
//! call gets a gRPC answer: HTTP 200 with a `grpc_status` of 0 (forwarded), 12 (UNIMPLEMENTED:
//! no rule matches) or 14 (UNAVAILABLE: an invalid backend's share, or no backend). On a
//! GRPCRoute frontend, a request that is not a gRPC call is still matched by the GRPCRoutes (a
//! path that is not `/SERVICE/METHOD` only by matches without a method constraint) but refused
//! in HTTP terms (404, 500), as the filter does; its `grpc_status` is then `null`.

use std::net::IpAddr;

use meshroute_filter::decision::{decide, Cause, Decision, Forward};
use meshroute_filter::document::RouteKind;
use meshroute_filter::header_modifier::HeaderEdit;
use meshroute_filter::metrics::Series;
use meshroute_filter::mirror::MirrorChoice;
use meshroute_filter::policy::RequestPolicy;
use meshroute_filter::reply::{is_grpc_call, LocalReply};
use meshroute_filter::request::Request;
use meshroute_filter::table::Frontend;
use serde::Serialize;

use crate::pipeline::Build;

/// The request to explain.
pub struct Query<'a> {
    /// `HOST[:PORT]`.
    pub to: &'a str,
    /// Where a short Service name resolves.
    pub namespace: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// `Name: value`.
    pub headers: &'a [String],
    /// `SERVICE/METHOD`: a gRPC call, which replaces `method` and `path`.
    pub grpc: Option<&'a str>,
}

/// Why a request cannot be explained (unknown Service, malformed argument).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ExplainError(pub String);

/// The outcome, printed as one JSON object in this field order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// 200 (forwarded, and every gRPC answer), 404 (no rule matches) or 500 (no resolved
    /// backend with weight).
    pub status: u16,
    /// Present for gRPC calls and on GRPCRoute frontends: 0 (forwarded), 12 (UNIMPLEMENTED) or
    /// 14 (UNAVAILABLE); `null` for a request that is not a gRPC call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<Option<u32>>,
    /// `namespace/name` of the matched route.
    pub route: Option<String>,
    /// Index of the matched rule in its route.
    pub rule: Option<usize>,
    /// The matched rule's `name`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// The backends the request would be spread over, weights as configured (weight 0 left out).
    pub backends: Vec<Candidate>,
    /// The headers of meshroute's own answer when the matched rule redirects (`location`) or its
    /// ResponseHeaderModifier changes them, as `[name, value]` pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_headers: Option<Vec<(String, String)>>,
    /// The matched rule's timeouts (milliseconds, 0 for none) and retries, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<RequestPolicy>,
    /// What meshroute's answer counts under (no route, a redirect, a rule without backends);
    /// a forwarded request's tags are its backend's ([`Candidate::stat_tags`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat_tags: Option<StatTags>,
}

/// The tags of `envoy_meshroute_requests_total` a request counts under (see
/// [`meshroute_filter::metrics`]); empty where a tag does not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatTags {
    pub frontend: String,
    pub route: String,
    pub rule: String,
    pub rule_name: String,
    pub backend: String,
    pub outcome: String,
}

impl StatTags {
    /// `None` for a request meshroute does not count (to a Service port without routes).
    fn of(frontend: Option<&Frontend>, decision: &Decision<'_>) -> Option<Self> {
        let [frontend, route, rule, rule_name, backend, outcome] = Series::of(frontend?, decision)?.tags();
        Some(StatTags { frontend, route, rule, rule_name, backend, outcome })
    }
}

/// One header change, as Envoy applies them in order: `{"remove": NAME}`, `{"set": [NAME,
/// VALUE]}` (replacing any value) or `{"add": [NAME, VALUE]}` (keeping any value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderChange {
    Remove(String),
    Set(String, String),
    Add(String, String),
}

fn changes<'m>(edits: impl Iterator<Item = HeaderEdit<'m>>) -> Vec<HeaderChange> {
    edits
        .map(|edit| match edit {
            HeaderEdit::Remove(name) => HeaderChange::Remove(name.to_owned()),
            HeaderEdit::Set(name, value) => HeaderChange::Set(name.to_owned(), value.to_owned()),
            HeaderEdit::Add(name, value) => HeaderChange::Add(name.to_owned(), value.to_owned()),
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub name: String,
    pub namespace: String,
    pub port: Option<u16>,
    pub weight: u32,
    /// Why this backend answers 500 (`BackendNotFound`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
    /// The `:path` (with its query) this backend sees, when a URLRewrite changes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The `Host` this backend sees, when a URLRewrite changes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// What happens to the request's headers on the way to this backend (its rule's
    /// RequestHeaderModifier, then its own), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_headers: Vec<HeaderChange>,
    /// What happens to the headers of this backend's response before the client sees them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_headers: Vec<HeaderChange>,
    /// Where copies of the requests sent to this backend go (the rule's RequestMirrors, then
    /// the backendRef's own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorTarget>,
    /// What a request this share takes counts under; absent for a Service port without routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stat_tags: Option<StatTags>,
}

/// A RequestMirror's Service port and the share of requests it gets a copy of.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MirrorTarget {
    pub name: String,
    pub namespace: String,
    pub port: Option<u16>,
    /// 0 to 100; 100 when the filter gives neither `percent` nor `fraction`.
    pub percent: f64,
}

fn mirror_targets(choice: MirrorChoice<'_>) -> Vec<MirrorTarget> {
    let MirrorChoice::Set(set) = choice else { return Vec::new() };
    set.mirrors
        .iter()
        .map(|m| MirrorTarget {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            port: m.port,
            percent: m.fraction.percent(),
        })
        .collect()
}

/// How the filter would route the request.
pub fn explain(build: &Build, query: &Query<'_>) -> Result<Explanation, ExplainError> {
    let (host, port) = split_host_port(query.to)?;
    let (ip, namespace, name) = find_service(build, host, query.namespace)?;
    let service = crate::resolve::find_service(&build.manifests, &namespace, &name)
        .ok_or_else(|| ExplainError(format!("Service {namespace}/{name} not found")))?;
    if !service.ports.iter().any(|p| p.port == port) {
        let ports: Vec<String> = service.ports.iter().map(|p| p.port.to_string()).collect();
        return Err(ExplainError(format!(
            "Service {namespace}/{name} has no TCP port {port} (its ports: {})",
            if ports.is_empty() { "none".to_owned() } else { ports.join(", ") }
        )));
    }
    let table = &build.compiled;
    let frontend = match ip {
        Some(ip) => table.frontend_at(&std::net::SocketAddr::new(ip, port).to_string()),
        None => table.frontend_of(&namespace, &name, port),
    };
    let mut headers = query
        .headers
        .iter()
        .map(|h| {
            let (n, v) = h.split_once(':').ok_or_else(|| ExplainError(format!("header {h:?} is not 'Name: value'")))?;
            Ok((n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect::<Result<Vec<_>, ExplainError>>()?;
    let (grpc_path, normalized);
    let (method, path) = match query.grpc {
        None => {
            normalized = normalize_path(query.path);
            (query.method, normalized.as_str())
        }
        Some(call) => {
            grpc_path = grpc_call_path(call)?;
            if !headers.iter().any(|(n, _)| n == "content-type") {
                headers.push(("content-type".to_owned(), "application/grpc".to_owned()));
            }
            ("POST", grpc_path.as_str())
        }
    };
    let content_type = headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.as_str());
    let grpc_call = is_grpc_call(content_type.map(str::as_bytes));
    let grpc_frontend = frontend.is_some_and(|f| f.kind() == RouteKind::Grpc);
    let request = Request { method, path_and_query: path, headers: &headers };
    // What Envoy hands the filter: `:authority` is the Host header, which a client in the mesh
    // sets to the name it dialled (`--to` as given, unless `-H 'Host: ...'` says otherwise).
    let header = |name: &str| -> Option<String> {
        let wanted = if name == ":authority" { "host" } else { name };
        match headers.iter().find(|(n, _)| n == wanted) {
            Some((_, value)) => Some(value.clone()),
            None if name == ":authority" => Some(query.to.to_owned()),
            None => None,
        }
    };
    let decide_with = |draw| decide(table, frontend, &request, draw, header);
    // `None`: forwarded.
    let mut modified_reply = false;
    let mut policy = None;
    let mut rule_name = None;
    let (reply, route, rule, backends): (Option<LocalReply>, _, _, _) = match decide_with(0) {
        Decision::PassThrough => {
            let passed = Candidate {
                name,
                namespace,
                port: Some(port),
                weight: 1,
                unresolved: None,
                path: None,
                host: None,
                request_headers: Vec::new(),
                response_headers: Vec::new(),
                mirrors: Vec::new(),
                stat_tags: None,
            };
            (None, None, None, vec![passed])
        }
        Decision::LocalReply { cause: Cause::NoRoute, reply } => (Some(reply), None, None, Vec::new()),
        Decision::LocalReply { cause: Cause::Redirect(matched), reply } => {
            modified_reply = true;
            rule_name = matched.rule.name.clone();
            let route = format!("{}/{}", matched.route.namespace, matched.route.name);
            (Some(reply), Some(route), Some(matched.rule_index), Vec::new())
        }
        Decision::Forward(Forward { matched, .. })
        | Decision::LocalReply { cause: Cause::NoBackend(matched) | Cause::Unresolved { matched, .. }, .. } => {
            // The decision for each share of the rule: forwarded as long as one share is.
            let shares: Vec<(Candidate, Decision<'_>)> = matched
                .rule
                .backends
                .shares()
                .map(|(b, draw)| {
                    let decision = decide_with(draw);
                    let unresolved = match &decision {
                        Decision::LocalReply { cause: Cause::Unresolved { reason, .. }, .. } => Some((*reason).to_owned()),
                        Decision::PassThrough
                        | Decision::Forward(_)
                        | Decision::LocalReply { cause: Cause::NoRoute | Cause::Redirect(_) | Cause::NoBackend(_), .. } => None,
                    };
                    let (request_headers, response_headers, path, host, mirrors) = match &decision {
                        Decision::Forward(f) => (
                            changes(f.request.headers.edits()),
                            changes(f.response.headers.edits()),
                            f.request.path.clone(),
                            f.request.authority.map(str::to_owned),
                            mirror_targets(f.request.mirror),
                        ),
                        Decision::PassThrough | Decision::LocalReply { .. } => (Vec::new(), Vec::new(), None, None, Vec::new()),
                    };
                    let stat_tags = StatTags::of(frontend, &decision);
                    let candidate = Candidate {
                        stat_tags,
                        name: b.target.name.clone(),
                        namespace: b.target.namespace.clone(),
                        port: b.target.port,
                        weight: b.weight,
                        unresolved,
                        path,
                        host,
                        request_headers,
                        response_headers,
                        mirrors,
                    };
                    (candidate, decision)
                })
                .collect();
            let forwarded = shares.iter().any(|(_, decision)| matches!(decision, Decision::Forward(_)));
            modified_reply = matched.rule.filters.response_headers.is_some();
            policy = matched.rule.policy.as_deref().cloned();
            rule_name = matched.rule.name.clone();
            let reply = if forwarded { None } else { local_reply(decide_with(0)) };
            let route = format!("{}/{}", matched.route.namespace, matched.route.name);
            (reply, Some(route), Some(matched.rule_index), shares.into_iter().map(|(candidate, _)| candidate).collect())
        }
    };
    // Shown where the rule's ResponseHeaderModifier had a say in them.
    let reply_headers = reply
        .as_ref()
        .filter(|_| modified_reply)
        .map(|r| r.headers.iter().map(|(n, v)| (n.clone().into_owned(), v.clone().into_owned())).collect());
    let (status, grpc_status) = match reply {
        None => (200, grpc_call.then_some(0)),
        Some(reply) => {
            let received = reply.as_received();
            (u16::try_from(received.status).unwrap_or(500), received.grpc_status.map(|s| s.code()))
        }
    };
    let grpc_status = (grpc_call || grpc_frontend).then_some(grpc_status);
    let stat_tags = if backends.is_empty() { StatTags::of(frontend, &decide_with(0)) } else { None };
    Ok(Explanation { status, grpc_status, route, rule, rule_name, backends, reply_headers, policy, stat_tags })
}

fn local_reply(decision: Decision<'_>) -> Option<LocalReply> {
    match decision {
        Decision::LocalReply { reply, .. } => Some(reply),
        Decision::PassThrough | Decision::Forward(_) => None,
    }
}

/// `/SERVICE/METHOD` for `--grpc SERVICE/METHOD` (a leading `/` is accepted).
/// The path as the filter sees it: Envoy's listeners normalize it (`normalize_path`: `.` and
/// `..` segments removed as RFC 3986 says, `%2e` counting as a dot) and then merge runs of
/// slashes (`merge_slashes`) before any filter runs. The query string is left as it is.
fn normalize_path(path_and_query: &str) -> String {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let dot = |segment: &str| segment.replace("%2e", ".").replace("%2E", ".");
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.strip_prefix('/').unwrap_or(path).split('/') {
        trailing_slash = false;
        match dot(segment).as_str() {
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path_and_query.len());
    for segment in segments.iter().filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || segments.last().is_some_and(|s| s.is_empty()) || out.is_empty() {
        out.push('/');
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

fn grpc_call_path(call: &str) -> Result<String, ExplainError> {
    let bare = call.strip_prefix('/').unwrap_or(call);
    match bare.split_once('/') {
        Some((service, method)) if !service.is_empty() && !method.is_empty() && !method.contains('/') => {
            Ok(format!("/{service}/{method}"))
        }
        _ => Err(ExplainError(format!("--grpc {call:?} is not SERVICE/METHOD (for example echo_basic.grpcecho.GrpcEcho/Echo)"))),
    }
}

/// `HOST[:PORT]`, `[v6]:PORT` or a bare IPv6 address; the port defaults to 80.
fn split_host_port(to: &str) -> Result<(&str, u16), ExplainError> {
    let bad_port = |p: &str| ExplainError(format!("port {p:?} in {to:?} is not a port number"));
    if let Some(rest) = to.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| ExplainError(format!("{to:?}: missing ']'")))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, p.parse().ok().filter(|&p| p > 0).ok_or_else(|| bad_port(p))?)),
            None if after.is_empty() => Ok((host, 80)),
            None => Err(ExplainError(format!("{to:?} is not HOST[:PORT]"))),
        };
    }
    if to.parse::<IpAddr>().is_ok() {
        return Ok((to, 80));
    }
    match to.rsplit_once(':') {
        Some((host, p)) => Ok((host, p.parse().ok().filter(|&p| p > 0).ok_or_else(|| bad_port(p))?)),
        None => Ok((to, 80)),
    }
}

/// The Service `host` names: a ClusterIP, `name`, `name.namespace`, `name.namespace.svc` or
/// `name.namespace.svc.cluster.local`. Returns the IP when given one.
fn find_service(build: &Build, host: &str, namespace: &str) -> Result<(Option<IpAddr>, String, String), ExplainError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        let service = build
            .manifests
            .services
            .iter()
            .find(|s| s.cluster_ips.iter().any(|c| c.parse::<IpAddr>().ok() == Some(ip)))
            .ok_or_else(|| ExplainError(format!("no Service has the ClusterIP {ip}")))?;
        return Ok((Some(ip), service.meta.namespace.clone(), service.meta.name.clone()));
    }
    let host = host.trim_end_matches('.');
    let labels: Vec<&str> = host.split('.').collect();
    let (name, ns) = match labels.as_slice() {
        [name] => (*name, namespace),
        [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => (*name, *ns),
        _ => {
            return Err(ExplainError(format!(
                "{host:?} is not a Service name (NAME, NAME.NAMESPACE, NAME.NAMESPACE.svc, NAME.NAMESPACE.svc.cluster.local) or a ClusterIP"
            )))
        }
    };
    if crate::resolve::find_service(&build.manifests, ns, name).is_none() {
        return Err(ExplainError(format!("Service {ns}/{name} not found in the manifests")));
    }
    Ok((None, ns.to_owned(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn paths_are_normalized_as_envoy_normalizes_them() {
        for (sent, seen) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/.", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/../../a", "/a"),
            ("/a//../b", "/a/b"),
            ("/a/%2e%2E/b", "/b"),
            ("/v2/../exact?x=/../y", "/exact?x=/../y"),
            ("/a/..b/.c", "/a/..b/.c"),
        ] {
            assert_eq!(normalize_path(sent), seen, "{sent}");
        }
    }
}
