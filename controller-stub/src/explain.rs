//! `meshroute explain`: how one request would be routed, decided by the filter's own code
//! (`RouteTable::compile` and `RouteTable::route`) on the compiled table.

use std::net::IpAddr;

use meshroute_filter::choice::BackendTarget;
use meshroute_filter::request::Request;
use meshroute_filter::table::{Outcome, RouteTable};
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
}

/// Why a request cannot be explained (unknown Service, malformed argument).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ExplainError(pub String);

/// The outcome, printed as one JSON object in this field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// 200 (forwarded), 404 (no rule matches) or 500 (no resolved backend with weight).
    pub status: u16,
    /// `namespace/name` of the matched route.
    pub route: Option<String>,
    /// Index of the matched rule in its route.
    pub rule: Option<usize>,
    /// The backends the request would be spread over, weights as configured (weight 0 left out).
    pub backends: Vec<Candidate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub name: String,
    pub namespace: String,
    pub port: Option<u16>,
    pub weight: u32,
    /// Why this backend answers 500 (`BackendNotFound`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
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
    let table = RouteTable::compile(&build.table).map_err(|e| ExplainError(format!("the route table is refused: {e}")))?;
    let frontend = match ip {
        Some(ip) => table.frontend_at(&std::net::SocketAddr::new(ip, port).to_string()),
        None => table.frontend_of(&namespace, &name, port),
    };
    let headers = query
        .headers
        .iter()
        .map(|h| {
            let (n, v) = h
                .split_once(':')
                .ok_or_else(|| ExplainError(format!("header {h:?} is not 'Name: value'")))?;
            Ok((n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect::<Result<Vec<_>, ExplainError>>()?;
    let request = Request { method: query.method, path_and_query: query.path, headers: &headers };
    Ok(match table.route(frontend, &request) {
        Outcome::PassThrough => Explanation {
            status: 200,
            route: None,
            rule: None,
            backends: vec![Candidate { name, namespace, port: Some(port), weight: 1, unresolved: None }],
        },
        Outcome::NoMatch => Explanation { status: 404, route: None, rule: None, backends: Vec::new() },
        Outcome::Matched { route, rule_index, rule } => {
            let backends: Vec<Candidate> = rule
                .backends
                .all()
                .iter()
                .filter(|b| b.weight > 0)
                .map(|b| Candidate {
                    name: b.name.clone(),
                    namespace: b.namespace.clone(),
                    port: b.port,
                    weight: b.weight,
                    unresolved: match &b.target {
                        BackendTarget::Cluster(_) => None,
                        BackendTarget::Unresolved(reason) => Some(reason.clone()),
                    },
                })
                .collect();
            let status = if backends.iter().any(|b| b.unresolved.is_none()) { 200 } else { 500 };
            Explanation {
                status,
                route: Some(format!("{}/{}", route.namespace, route.name)),
                rule: Some(rule_index),
                backends,
            }
        }
    })
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
