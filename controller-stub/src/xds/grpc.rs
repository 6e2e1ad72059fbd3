//! The resources a proxyless gRPC client is served: the same compiled routes as Envoy's, in the
//! shapes gRPC's xDS client accepts (gRFC A27, A28), so that a call from a proxyless client
//! goes where the same call through Envoy goes and fails with the same status.
//!
//! - **Names.** gRPC asks for the Listener named exactly as its target (A27), so every Service
//!   port gets one Listener per name a client may dial: `NAME.NS.svc.cluster.local:PORT`,
//!   `NAME.NS.svc:PORT`, `NAME.NS:PORT`, `NAME:PORT` for clients in the Service's namespace, and
//!   the same names without `:80` for port 80. A name that is not served costs the client a
//!   15-second wait, then UNAVAILABLE. The Listeners of one port share its RouteConfiguration,
//!   whose one virtual host lists every name as a domain, port included (gRPC picks the virtual
//!   host by the target's authority; a domain without the port does not match it).
//! - **Matches.** Routes follow [`Frontend::precedence_order`], as in native mode, then a
//!   catch-all. gRPC NACKs the whole RouteConfiguration for a `path_separated_prefix` (measured),
//!   so a PathPrefix is a full-match `safe_regex` (`/v2(/.*)?`); GRPCRoute methods are `path`
//!   or `safe_regex`, headers `string_match`. gRPC only sees a call's metadata (A28): no
//!   pseudo-headers, and never `-bin` metadata.
//! - **Refusals.** gRPC's own answer to a call no route takes is UNAVAILABLE (A28); meshroute's is
//!   UNIMPLEMENTED. The HTTP fault filter (A33) can abort with a chosen status, and a route, or one
//!   cluster of a weighted split, can carry its own fault config (A39), so each refusal is a fault
//!   abort with the status Envoy gives the same gRPC call: UNIMPLEMENTED when no rule matches;
//!   for a rule without backends or an unresolved backend's share, UNAVAILABLE on a GRPCRoute
//!   port and UNKNOWN on an HTTPRoute port (Envoy's mapping of the filter's 500). A refusing
//!   route still names a cluster that is served, [`UNRESOLVED_CLUSTER`], whose assignment is
//!   empty: gRPC holds back a whole new route configuration until every cluster it names is
//!   known (A74), and a name it never receives stalls it for 15 seconds; a call that reaches an
//!   empty assignment fails at once with UNAVAILABLE. Measured with a proxyless client (grpcio
//!   1.85.1): no rule gives UNIMPLEMENTED, an unresolved share or one with a header modifier
//!   UNAVAILABLE for about half of a 1:1 split and the other backend for the rest, a redirect on
//!   an HTTPRoute port UNKNOWN, each within milliseconds.
//! - **Clusters.** EDS over ADS with round robin (A27; STATIC clusters are NACKed), named like
//!   Envoy's, one per Service port, with its ready endpoints in one locality of weight 1 (gRPC
//!   skips a locality without a weight).
//!
//! What gRPC cannot do as Envoy does (header modifiers, rewrites, mirrors, per-try timeouts,
//! some retry codes) is listed by [`unsupported`] for `check`. A rule whose filters would change
//! what the backend or the client sees keeps its matches and fails, as a rule meshroute drops
//! does: the Gateway API never lets an implementation skip a filter it cannot apply
//! (`HTTPRouteFilter.type`). A RequestMirror is the exception: it never changes what happens to
//! the call, so the call goes on without its copies, as with a mirror that does not resolve.

use std::collections::HashMap;
use std::fmt;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, socket_address, Address, AggregatedConfigSource, ApiVersion, ConfigSource, HealthStatus, Locality,
    SocketAddress,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, retry_policy, route, route_action, route_match, weighted_cluster, HeaderMatcher, RetryPolicy, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{fault_abort, FaultAbort, HttpFault};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent, FractionalPercent};
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use envoy_types::util::pack_any;

use meshroute_filter::document::{
    BackendDoc, FiltersDoc, GrpcMethodDoc, MatchDoc, PathMatchType, RetryDoc, RouteDoc, RouteKind, RuleDoc, TableDocument,
    TimeoutsDoc, ValueMatchDoc, ValueMatchType,
};
use meshroute_filter::reply::GrpcStatus;
use meshroute_filter::table::{Frontend, RouteTable};

use super::{Resources, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use crate::envoy::clusters::ready_endpoints;
use crate::envoy::native::regex_escape;
pub use crate::envoy::native::UNRESOLVED_CLUSTER;
use crate::model::{self, EndpointSlice, Manifests, Service, ServicePort};

/// The fault filter's name in every Listener: the key of the routes' overrides (A39).
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// gRPC status codes (`google.rpc.Code`) the routes abort with.
const UNKNOWN: u32 = 2;
const DEADLINE_EXCEEDED: u32 = 4;
const UNIMPLEMENTED: u32 = 12;
const UNAVAILABLE: u32 = 14;

/// gRPC makes at most 5 attempts, whatever `num_retries` says (A44).
const MAX_RETRIES: u32 = 4;

/// Every resource a proxyless client in `namespace` is served, for `table`, the routes compiled
/// for clients in that namespace. A table that does not compile (the pipeline never publishes
/// one) fails every call to its frontends with UNAVAILABLE rather than bypass their routes.
pub fn resources(manifests: &Manifests, table: &TableDocument, namespace: &str) -> Resources {
    let compiled = RouteTable::compile(table).ok();
    let mut out = Resources::default();
    for service in &manifests.services {
        let (ns, name) = (&service.meta.namespace, &service.meta.name);
        for port in &service.ports {
            let config_name = format!("{name}.{ns}.svc.cluster.local:{}", port.port);
            let names = dial_names(ns, name, port.port, namespace);
            let own_cluster = model::cluster_name(ns, name, port.port);
            let routes = match compiled.as_ref() {
                Some(compiled) => match compiled.frontend_of(ns, name, port.port) {
                    Some(frontend) => frontend_routes(table, frontend),
                    None => vec![pass_through(&own_cluster)],
                },
                None if table.frontends.iter().any(|f| f.namespace == *ns && f.name == *name && f.port == port.port) => {
                    vec![refusing("table-refused", catch_all(), UNAVAILABLE)]
                }
                None => vec![pass_through(&own_cluster)],
            };
            let config = RouteConfiguration {
                name: config_name.clone(),
                virtual_hosts: vec![VirtualHost {
                    name: config_name.clone(),
                    domains: names.clone(),
                    routes,
                    ..Default::default()
                }],
                ..Default::default()
            };
            insert(&mut out, ROUTE_TYPE, config_name.clone(), pack_any(config));
            for listener_name in names {
                insert(&mut out, LISTENER_TYPE, listener_name.clone(), pack_any(listener(&listener_name, &config_name)));
            }
            insert(&mut out, CLUSTER_TYPE, own_cluster.clone(), pack_any(eds_cluster(&own_cluster)));
            let assignment = load_assignment(&own_cluster, &endpoints_of(manifests, service, port));
            insert(&mut out, ENDPOINT_TYPE, own_cluster, pack_any(assignment));
        }
    }
    insert(&mut out, CLUSTER_TYPE, UNRESOLVED_CLUSTER.to_owned(), pack_any(eds_cluster(UNRESOLVED_CLUSTER)));
    insert(&mut out, ENDPOINT_TYPE, UNRESOLVED_CLUSTER.to_owned(), pack_any(load_assignment(UNRESOLVED_CLUSTER, &[])));
    out
}

fn insert(out: &mut Resources, type_url: &'static str, name: String, resource: Any) {
    out.by_type.entry(type_url).or_default().insert(name, resource);
}

/// The names a client in `client_namespace` may dial a Service port by, most qualified first:
/// each is a Listener (A27: the Listener is named exactly as the target) and a domain of the
/// port's virtual host. A target without a port means port 80.
pub fn dial_names(namespace: &str, name: &str, port: u16, client_namespace: &str) -> Vec<String> {
    let mut hosts =
        vec![format!("{name}.{namespace}.svc.cluster.local"), format!("{name}.{namespace}.svc"), format!("{name}.{namespace}")];
    if namespace == client_namespace {
        hosts.push(name.to_owned());
    }
    let mut names: Vec<String> = hosts.iter().map(|host| format!("{host}:{port}")).collect();
    if port == 80 {
        names.extend(hosts);
    }
    names
}

/// An API listener: the connection manager, its routes by RDS over ADS, the fault filter (idle
/// but where a route's override aborts), the router last (A39).
fn listener(name: &str, route_config: &str) -> Listener {
    let filter = |name: &str, config: Any| HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let manager = HttpConnectionManager {
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_config.to_owned(),
        })),
        http_filters: vec![
            filter(FAULT_FILTER, pack_any(HttpFault::default())),
            filter(ROUTER_FILTER, pack_any(Router::default())),
        ],
        ..Default::default()
    };
    Listener {
        name: name.to_owned(),
        api_listener: Some(ApiListener { api_listener: Some(pack_any(manager)) }),
        ..Default::default()
    }
}

/// The ADS config source, for what a resource served over ADS discovers in turn.
pub(crate) fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3.into(),
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds.into())),
        eds_cluster_config: Some(cluster::EdsClusterConfig { eds_config: Some(ads()), service_name: String::new() }),
        lb_policy: cluster::LbPolicy::RoundRobin.into(),
        ..Default::default()
    }
}

/// The ready endpoints of a Service port, as Envoy's clusters have them.
fn endpoints_of(manifests: &Manifests, service: &Service, port: &ServicePort) -> Vec<(String, u16)> {
    let slices: Vec<&EndpointSlice> = manifests
        .endpoint_slices
        .iter()
        .filter(|slice| slice.meta.namespace == service.meta.namespace && slice.service_name == service.meta.name)
        .collect();
    ready_endpoints(&slices, port).into_iter().collect()
}

/// One locality of weight 1 holding `endpoints`, or none at all: then every call sent to the
/// cluster fails at once with UNAVAILABLE (measured). gRPC skips a locality without a weight,
/// and NACKs the whole response for one without a `locality` (measured: "endpoints[0].locality
/// error:field not present"); an empty one will do.
fn load_assignment(cluster: &str, endpoints: &[(String, u16)]) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = endpoints
        .iter()
        .map(|(ip, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: ip.clone(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(*port))),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            health_status: HealthStatus::Healthy.into(),
            ..Default::default()
        })
        .collect();
    let localities = if lb_endpoints.is_empty() {
        Vec::new()
    } else {
        vec![LocalityLbEndpoints {
            locality: Some(Locality::default()),
            lb_endpoints,
            load_balancing_weight: Some(UInt32Value { value: 1 }),
            ..Default::default()
        }]
    };
    ClusterLoadAssignment { cluster_name: cluster.to_owned(), endpoints: localities, ..Default::default() }
}

/// A port without routes: every call to the Service port's own cluster.
fn pass_through(cluster: &str) -> Route {
    Route {
        name: "pass-through".to_owned(),
        r#match: Some(catch_all()),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_owned())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn catch_all() -> RouteMatch {
    RouteMatch { path_specifier: Some(route_match::PathSpecifier::Prefix(String::new())), ..Default::default() }
}

/// A route whose calls fail at once with `status`: a fault abort of every call, on a cluster
/// that is served and has no endpoints (which fails them with UNAVAILABLE were the abort
/// ignored).
fn refusing(name: &str, route_match: RouteMatch, status: u32) -> Route {
    Route {
        name: name.to_owned(),
        r#match: Some(route_match),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(UNRESOLVED_CLUSTER.to_owned())),
            ..Default::default()
        })),
        typed_per_filter_config: abort(status),
        ..Default::default()
    }
}

/// The fault filter's override that aborts every call with the gRPC `status` (A33). The
/// percentage must be set: unset means 0 %.
fn abort(status: u32) -> HashMap<String, Any> {
    let fault = HttpFault {
        abort: Some(FaultAbort {
            error_type: Some(fault_abort::ErrorType::GrpcStatus(status)),
            percentage: Some(FractionalPercent {
                numerator: 100,
                denominator: fractional_percent::DenominatorType::Hundred.into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    HashMap::from([(FAULT_FILTER.to_owned(), pack_any(fault))])
}

/// The status Envoy gives a gRPC call that a rule of `kind` cannot forward: the filter answers
/// UNAVAILABLE on a GRPCRoute port, and 500 on an HTTPRoute port, which Envoy turns into UNKNOWN.
fn unavailable(kind: RouteKind) -> u32 {
    match kind {
        RouteKind::Grpc => UNAVAILABLE,
        RouteKind::Http => UNKNOWN,
    }
}

/// A frontend's routes, most specific first, then UNIMPLEMENTED for every other call.
fn frontend_routes(table: &TableDocument, frontend: &Frontend) -> Vec<Route> {
    let mut routes = Vec::new();
    for entry in frontend.precedence_order().filter_map(|at| at.in_document(table)) {
        // A match no gRPC call can meet has no route (see `never_matches`).
        let Some(route_match) = route_match(entry.route.kind, entry.matched) else { continue };
        routes.push(rule_route(table, entry.route_name(), route_match, entry.route.kind, entry.rule));
    }
    routes.push(refusing("no-route", catch_all(), UNIMPLEMENTED));
    routes
}

/// A rule's match as gRPC matches it, or `None` when no gRPC call can meet it.
fn route_match(kind: RouteKind, doc: Option<&MatchDoc>) -> Option<RouteMatch> {
    let Some(doc) = doc else { return Some(catch_all()) };
    if never_matches(doc).is_some() {
        return None;
    }
    let path_specifier = match kind {
        RouteKind::Http => match &doc.path {
            None => route_match::PathSpecifier::Prefix(String::new()),
            Some(path) => match path.kind {
                PathMatchType::Exact => route_match::PathSpecifier::Path(path.value.clone()),
                PathMatchType::PathPrefix => match path.value.trim_end_matches('/') {
                    "" => route_match::PathSpecifier::Prefix(String::new()),
                    // Segment-wise: `/v2` takes `/v2` and `/v2/...`, never `/v2x`. gRPC has no
                    // `path_separated_prefix`, and a regex is matched whole.
                    prefix => route_match::PathSpecifier::SafeRegex(regex(format!("{}(/.*)?", regex_escape(prefix)))),
                },
                PathMatchType::RegularExpression => route_match::PathSpecifier::SafeRegex(regex(path.value.clone())),
            },
        },
        RouteKind::Grpc => match &doc.grpc_method {
            None => route_match::PathSpecifier::Prefix(String::new()),
            Some(GrpcMethodDoc { kind: ValueMatchType::Exact, service: Some(service), method: Some(method) }) => {
                route_match::PathSpecifier::Path(format!("/{service}/{method}"))
            }
            Some(GrpcMethodDoc { kind, service, method }) => {
                let part = |name: &Option<String>| match (kind, name) {
                    (_, None) => "[^/]+".to_owned(),
                    (ValueMatchType::Exact, Some(name)) => regex_escape(name),
                    (ValueMatchType::RegularExpression, Some(name)) => format!("(?:{name})"),
                };
                route_match::PathSpecifier::SafeRegex(regex(format!("/{}/{}", part(service), part(method))))
            }
        },
    };
    // An HTTPRoute's `method` can only be POST here: every gRPC call is one.
    Some(RouteMatch {
        path_specifier: Some(path_specifier),
        headers: doc.headers.iter().map(header_matcher).collect(),
        ..Default::default()
    })
}

/// Why no gRPC call can meet a match: the part of it that excludes every call, and why.
fn never_matches(doc: &MatchDoc) -> Option<(String, &'static str)> {
    if let Some(method) = doc.method.as_deref().filter(|m| *m != "POST") {
        return Some((format!("method {method}"), "every gRPC call is a POST (the same through Envoy)"));
    }
    if let Some(q) = doc.query_params.first() {
        return Some((format!("queryParams {}", q.name), "a gRPC call has no query string (the same through Envoy)"));
    }
    if let Some(h) = doc.headers.iter().find(|h| h.name.to_ascii_lowercase().ends_with("-bin")) {
        return Some((
            format!("headers {}", h.name),
            "gRPC never matches binary (-bin) metadata (gRFC A28); through Envoy its base64 text is matched",
        ));
    }
    None
}

fn header_matcher(h: &ValueMatchDoc) -> HeaderMatcher {
    let pattern = match h.kind {
        ValueMatchType::Exact => string_matcher::MatchPattern::Exact(h.value.clone()),
        ValueMatchType::RegularExpression => string_matcher::MatchPattern::SafeRegex(regex(h.value.clone())),
    };
    HeaderMatcher {
        name: h.name.to_ascii_lowercase(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
            match_pattern: Some(pattern),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn regex(regex: String) -> RegexMatcher {
    RegexMatcher { regex, ..Default::default() }
}

/// A backendRef's share of a rule's calls: its cluster, its weight, and the status its calls
/// fail with, if they do.
#[derive(Debug, PartialEq)]
struct Share {
    cluster: String,
    weight: u64,
    fails: Option<u32>,
}

/// Whether filters change what the backend or the client sees: what gRPC cannot do.
fn alters_call(filters: &FiltersDoc) -> bool {
    filters.request_headers.is_some() || filters.response_headers.is_some() || filters.rewrite.is_some()
}

/// What a rule does with the calls it takes: fail them all with a status, or share them.
fn shares(table: &TableDocument, kind: RouteKind, rule: &RuleDoc) -> Result<Vec<Share>, u32> {
    if rule.filters.redirect.is_some() {
        // The Envoy path answers a gRPC call with the redirect, which the client takes as UNKNOWN.
        return Err(UNKNOWN);
    }
    if alters_call(&rule.filters) {
        return Err(unavailable(kind));
    }
    let mut shares: Vec<Share> = Vec::new();
    for backend in rule.backends.iter().filter(|b| b.weight > 0) {
        let (cluster, fails) = match table.target(backend).and_then(|t| t.cluster.as_ref()) {
            Some(cluster) if !alters_call(&backend.filters) => (cluster.clone(), None),
            Some(_) | None => (UNRESOLVED_CLUSTER.to_owned(), Some(unavailable(kind))),
        };
        match shares.iter_mut().find(|s| s.cluster == cluster && s.fails == fails) {
            Some(share) => share.weight += u64::from(backend.weight),
            None => shares.push(Share { cluster, weight: u64::from(backend.weight), fails }),
        }
    }
    if shares.is_empty() {
        return Err(unavailable(kind));
    }
    Ok(shares)
}

/// A rule's route: its shares, then its timeout and retries.
fn rule_route(table: &TableDocument, name: String, route_match: RouteMatch, kind: RouteKind, rule: &RuleDoc) -> Route {
    let shares = match shares(table, kind, rule) {
        Err(status) => return refusing(&name, route_match, status),
        Ok(shares) => shares,
    };
    let mut route = Route { name, r#match: Some(route_match), ..Default::default() };
    let cluster_specifier = match shares.as_slice() {
        [one] => {
            if let Some(status) = one.fails {
                route.typed_per_filter_config = abort(status);
            }
            route_action::ClusterSpecifier::Cluster(one.cluster.clone())
        }
        shares => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: shares
                .iter()
                .map(|share| weighted_cluster::ClusterWeight {
                    name: share.cluster.clone(),
                    weight: Some(UInt32Value { value: u32::try_from(share.weight).unwrap_or(u32::MAX) }),
                    typed_per_filter_config: share.fails.map(abort).unwrap_or_default(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    let mut action = RouteAction { cluster_specifier: Some(cluster_specifier), ..Default::default() };
    let retry = retry_policy_of(rule.retry.as_deref());
    action.max_stream_duration = max_stream_duration(rule.timeouts.as_deref(), retry.is_some());
    action.retry_policy = retry;
    route.action = Some(route::Action::Route(action));
    route
}

/// The retry policy gRPC applies (A44): the rule's status codes as the gRPC statuses a client
/// sees for them (`internal` for 400; `unavailable` for 429, 502, 503 and 504: gRPC's HTTP to
/// gRPC mapping, which Envoy's is), at most 4 retries, `backoff` as the base interval. `None`
/// when no code maps or there is no retry.
fn retry_policy_of(retry: Option<&RetryDoc>) -> Option<RetryPolicy> {
    let retry = retry.filter(|r| r.attempts > 0)?;
    let mut on: Vec<&str> = Vec::new();
    for name in retry.codes.iter().filter_map(|&code| retry_on(code)) {
        if !on.contains(&name) {
            on.push(name);
        }
    }
    if on.is_empty() {
        return None;
    }
    let back_off = retry.backoff_ms.filter(|&ms| ms > 0).map(|ms| retry_policy::RetryBackOff {
        base_interval: Some(duration(ms)),
        max_interval: Some(duration(ms.saturating_mul(10))),
    });
    Some(RetryPolicy {
        retry_on: on.join(","),
        num_retries: Some(UInt32Value { value: retry.attempts.min(MAX_RETRIES) }),
        retry_back_off: back_off,
        ..Default::default()
    })
}

/// The A44 `retry_on` name of an HTTP status code, if gRPC can retry on it.
fn retry_on(code: u16) -> Option<&'static str> {
    match GrpcStatus::from_http_status(u32::from(code)) {
        GrpcStatus::Internal => Some("internal"),
        GrpcStatus::Unavailable => Some("unavailable"),
        _ => None,
    }
}

/// The call's time limit (A31: gRPC's only route timeout is `max_stream_duration`): the
/// request timeout, and without retries the backend request timeout too, since the one try
/// is then the whole call. 0 means none.
fn max_stream_duration(timeouts: Option<&TimeoutsDoc>, retries: bool) -> Option<route_action::MaxStreamDuration> {
    let timeouts = timeouts?;
    let request = timeouts.request_ms.filter(|&ms| ms > 0);
    let per_try = timeouts.backend_request_ms.filter(|&ms| ms > 0 && !retries);
    let ms = match (request, per_try) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(route_action::MaxStreamDuration { max_stream_duration: Some(duration(ms)), ..Default::default() })
}

fn duration(ms: u64) -> Duration {
    Duration { seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX), nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0) }
}

/// What a proxyless gRPC client does where it cannot do what Envoy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The calls (the rule's, or one backendRef's share) fail with this gRPC status.
    Fails(u32),
    /// Not applied: the calls go on as if it were absent.
    Ignored,
    /// The match takes no gRPC call.
    NeverMatches,
}

/// A route field a proxyless gRPC client cannot honour as Envoy does, for `check` to warn about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    /// Where, in the route: `spec.rules[0].matches[1] (queryParams a)`.
    pub field: String,
    pub effect: Effect,
    pub why: &'static str,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        };
        let effect = match self.effect {
            Effect::Fails(code) => format!("its calls fail with {}", status_name(code)),
            Effect::Ignored => "not applied".to_owned(),
            Effect::NeverMatches => "never matches".to_owned(),
        };
        write!(f, "{kind} {}/{} {}: {effect} for proxyless gRPC clients: {}", self.namespace, self.name, self.field, self.why)
    }
}

fn status_name(code: u32) -> String {
    match code {
        UNKNOWN => "UNKNOWN".to_owned(),
        DEADLINE_EXCEEDED => "DEADLINE_EXCEEDED".to_owned(),
        UNIMPLEMENTED => "UNIMPLEMENTED".to_owned(),
        UNAVAILABLE => "UNAVAILABLE".to_owned(),
        code => format!("gRPC status {code}"),
    }
}

/// Every route field of `table` that proxyless gRPC clients cannot honour as Envoy does, in
/// route and rule order: what [`resources`] does instead, for `check` to print as warnings.
/// Unresolved backends are not listed: their status already says so, and they fail as through
/// Envoy.
pub fn unsupported(table: &TableDocument) -> Vec<Unsupported> {
    let mut out = Vec::new();
    for route in &table.routes {
        let mut push = |field: String, effect: Effect, why: &'static str| {
            out.push(Unsupported {
                kind: route.kind,
                namespace: route.namespace.clone(),
                name: route.name.clone(),
                field,
                effect,
                why,
            });
        };
        for (r, rule) in route.rules.iter().enumerate() {
            let at = format!("spec.rules[{r}]");
            for (m, doc) in rule.matches.iter().enumerate() {
                if let Some((what, why)) = never_matches(doc) {
                    push(format!("{at}.matches[{m}] ({what})"), Effect::NeverMatches, why);
                }
            }
            rule_gaps(table, route, rule, &at, &mut push);
        }
    }
    out
}

/// A rule's filters, timeouts and retries that gRPC cannot honour, as [`shares`] and
/// [`rule_route`] treat them.
fn rule_gaps(
    table: &TableDocument,
    route: &RouteDoc,
    rule: &RuleDoc,
    at: &str,
    push: &mut impl FnMut(String, Effect, &'static str),
) {
    let fails = Effect::Fails(unavailable(route.kind));
    const ALTERS: &str = "gRPC cannot modify headers or rewrite a call, and a filter is never skipped";
    if rule.filters.redirect.is_some() {
        push(
            format!("{at}.filters (RequestRedirect)"),
            Effect::Fails(UNKNOWN),
            "a gRPC client cannot follow a redirect (UNKNOWN through Envoy too)",
        );
        return;
    }
    for (name, present) in [
        ("RequestHeaderModifier", rule.filters.request_headers.is_some()),
        ("ResponseHeaderModifier", rule.filters.response_headers.is_some()),
        ("URLRewrite", rule.filters.rewrite.is_some()),
    ] {
        if present {
            push(format!("{at}.filters ({name})"), fails, ALTERS);
        }
    }
    if alters_call(&rule.filters) {
        return;
    }
    let forwarded: Vec<(usize, &BackendDoc)> = rule.backends.iter().enumerate().filter(|(_, b)| b.weight > 0).collect();
    for (b, backend) in &forwarded {
        if table.target(backend).is_some_and(|t| t.cluster.is_some()) && alters_call(&backend.filters) {
            push(format!("{at}.backendRefs[{b}].filters"), fails, ALTERS);
        }
    }
    let mirrored = !rule.filters.mirrors.is_empty() || forwarded.iter().any(|(_, b)| !b.filters.mirrors.is_empty());
    if mirrored && !forwarded.is_empty() {
        push(format!("{at}.filters (RequestMirror)"), Effect::Ignored, "gRPC sends no copies; the calls themselves go on");
    }
    let retry = retry_policy_of(rule.retry.as_deref());
    if let Some(doc) = rule.retry.as_deref().filter(|r| r.attempts > 0) {
        if doc.codes.iter().any(|&code| retry_on(code).is_none()) {
            push(
                format!("{at}.retry.codes"),
                Effect::Ignored,
                "gRPC retries only the codes it sees as INTERNAL (400) or UNAVAILABLE (429, 502, 503, 504) (gRFC A44)",
            );
        }
        if doc.attempts > MAX_RETRIES {
            push(format!("{at}.retry.attempts"), Effect::Ignored, "gRPC makes at most 5 attempts (gRFC A44)");
        }
    }
    // Measured with grpcio 1.85.1, also without xDS (a service config `timeout`): gRPC C-core
    // ends a call 1 to 2 s before its method timeout, so a short one fails every call at once.
    if rule.timeouts.as_deref().and_then(|t| t.request_ms).is_some_and(|ms| ms > 0 && ms < SHORTEST_GRPC_TIMEOUT_MS) {
        push(
            format!("{at}.timeouts.request"),
            Effect::Fails(DEADLINE_EXCEEDED),
            "gRPC C-core clients (grpcio 1.85.1 measured) end a call 1 to 2 s before its timeout, so one under 2s fails every call",
        );
    }
    if retry.is_some() && rule.timeouts.as_deref().and_then(|t| t.backend_request_ms).is_some_and(|ms| ms > 0) {
        push(
            format!("{at}.timeouts.backendRequest"),
            Effect::Ignored,
            "gRPC has no per-try timeout (gRFC A44); only timeouts.request bounds the call",
        );
    }
}

/// The shortest `timeouts.request` a gRPC C-core client honours without failing every call.
const SHORTEST_GRPC_TIMEOUT_MS: u64 = 2_000;

#[cfg(test)]
#[path = "grpc_tests.rs"]
mod tests;
