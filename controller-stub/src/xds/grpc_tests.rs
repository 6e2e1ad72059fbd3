//! The proxyless resources decoded back, from manifests through the whole pipeline: names,
//! domains, matches in precedence order, weights, refusals, clusters and assignments.

use std::path::Path;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::core::v3::{address, config_source, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{lb_endpoint, ClusterLoadAssignment};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, route_match, Route, RouteAction, RouteConfiguration,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{fault_abort, HttpFault};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, http_filter, HttpConnectionManager,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::*;
use crate::load::SourceFile;
use crate::pipeline::{build, build_files, Build, LastGood};

fn from_text(text: &str) -> Build {
    let files = [SourceFile { path: "m.yaml".into(), text: text.to_owned() }];
    build_files(&files, Vec::new(), &LastGood::default(), "default").unwrap_or_else(|e| panic!("{e:#?}"))
}

fn served(b: &Build, namespace: &str) -> Resources {
    resources(&b.manifests, &b.table, namespace)
}

fn decode<T: Message + Default>(any: &Any) -> T {
    T::decode(any.value.as_slice()).unwrap()
}

fn get<T: Message + Default>(r: &Resources, type_url: &str, name: &str) -> T {
    let any = r.by_type.get(type_url).and_then(|m| m.get(name)).unwrap_or_else(|| panic!("no {type_url} {name}"));
    decode(any)
}

fn names(r: &Resources, type_url: &str) -> Vec<String> {
    r.by_type.get(type_url).map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

fn routes(r: &Resources, config: &str) -> Vec<Route> {
    let config: RouteConfiguration = get(r, ROUTE_TYPE, config);
    assert_eq!(config.virtual_hosts.len(), 1);
    config.virtual_hosts.into_iter().next().unwrap().routes
}

fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(route::Action::Route(action)) => action,
        other => panic!("{}: not a route action: {other:?}", route.name),
    }
}

fn cluster_of(route: &Route) -> &str {
    match &action(route).cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(c)) => c,
        other => panic!("{}: not one cluster: {other:?}", route.name),
    }
}

/// `(cluster, weight, aborted with)` of a weighted split.
fn split(route: &Route) -> Vec<(String, u32, Option<u32>)> {
    match &action(route).cluster_specifier {
        Some(route_action::ClusterSpecifier::WeightedClusters(w)) => w
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.map_or(0, |w| w.value), aborted(&c.typed_per_filter_config)))
            .collect(),
        other => panic!("{}: not a split: {other:?}", route.name),
    }
}

/// The gRPC status a fault override aborts every call with.
fn aborted(config: &std::collections::HashMap<String, Any>) -> Option<u32> {
    let fault: HttpFault = decode(config.get(FAULT_FILTER)?);
    let abort = fault.abort.unwrap();
    let percentage = abort.percentage.unwrap();
    assert_eq!((percentage.numerator, percentage.denominator), (100, 0), "100 % (HUNDRED)");
    match abort.error_type {
        Some(fault_abort::ErrorType::GrpcStatus(status)) => Some(status),
        other => panic!("not a gRPC abort: {other:?}"),
    }
}

fn path_of(route: &Route) -> route_match::PathSpecifier {
    route.r#match.as_ref().and_then(|m| m.path_specifier.clone()).unwrap()
}

fn regex_path(regex: &str) -> route_match::PathSpecifier {
    route_match::PathSpecifier::SafeRegex(super::regex(regex.to_owned()))
}

fn route_names(routes: &[Route]) -> Vec<String> {
    routes.iter().map(|r| r.name.clone()).collect()
}

/// The routes of a Service port in the filter's own order, as `native.rs` names them, then the
/// catch-all.
fn precedence_names(b: &Build, service: &str, port: u16) -> Vec<String> {
    let frontend = b.compiled.frontend_of("default", service, port).unwrap();
    let mut names: Vec<String> = frontend
        .precedence_order()
        .map(|at| {
            let route = &b.table.routes[at.route];
            match at.match_index {
                Some(i) => format!("{}/{}/rules/{}/matches/{i}", route.namespace, route.name, at.rule),
                None => format!("{}/{}/rules/{}", route.namespace, route.name, at.rule),
            }
        })
        .collect();
    names.push("no-route".to_owned());
    names
}

const V1: &str = "outbound|8080||grpc-infra-backend-v1.default.svc.cluster.local";
const V2: &str = "outbound|8080||grpc-infra-backend-v2.default.svc.cluster.local";
const ECHO_GRPC: &str = "echo-service.default.svc.cluster.local:8080";

fn example_mesh() -> Build {
    build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mesh"), "default").unwrap_or_else(|e| panic!("{e:#?}"))
}

/// The product page's GRPCRoute: Echo and EchoTwo to their backends, then UNIMPLEMENTED.
#[test]
fn the_product_page_grpc_route() {
    let r = served(&example_mesh(), "default");
    let routes = routes(&r, ECHO_GRPC);
    let paths: Vec<_> = routes.iter().map(path_of).collect();
    // The filter's precedence: the longer method name first.
    assert_eq!(
        paths[..2],
        [
            route_match::PathSpecifier::Path("/echo_basic.grpcecho.GrpcEcho/EchoTwo".into()),
            route_match::PathSpecifier::Path("/echo_basic.grpcecho.GrpcEcho/Echo".into()),
        ]
    );
    assert_eq!((cluster_of(&routes[0]), cluster_of(&routes[1])), (V2, V1));
    assert!(routes[0].typed_per_filter_config.is_empty());
    let last = routes.last().unwrap();
    assert_eq!((last.name.as_str(), path_of(last)), ("no-route", route_match::PathSpecifier::Prefix(String::new())));
    assert_eq!(aborted(&last.typed_per_filter_config), Some(12), "UNIMPLEMENTED");
    assert_eq!(cluster_of(last), UNRESOLVED_CLUSTER, "a served cluster, so nothing waits for it");
    assert_eq!(routes.len(), 3);
}

#[test]
fn every_name_a_client_may_dial_is_a_listener_and_a_domain_with_its_port() {
    let b = example_mesh();
    let r = served(&b, "default");
    let listeners = names(&r, LISTENER_TYPE);
    for name in [
        "echo-service.default.svc.cluster.local:8080",
        "echo-service.default.svc:8080",
        "echo-service.default:8080",
        "echo-service:8080",
        // Port 80 also without the port.
        "echo-service:80",
        "echo-service",
        "echo-service.default",
        "echo-service.default.svc",
        "echo-service.default.svc.cluster.local",
    ] {
        assert!(listeners.contains(&name.to_owned()), "{name} in {listeners:?}");
    }
    assert!(!listeners.contains(&"grpc-infra-backend-v1".to_owned()), "a port 8080 Service has no port-less name");
    let config: RouteConfiguration = get(&r, ROUTE_TYPE, ECHO_GRPC);
    assert_eq!(
        config.virtual_hosts[0].domains,
        [
            "echo-service.default.svc.cluster.local:8080",
            "echo-service.default.svc:8080",
            "echo-service.default:8080",
            "echo-service:8080"
        ]
    );

    // A client in another namespace has no short name for it.
    let other = served(&b, "team-b");
    let listeners = names(&other, LISTENER_TYPE);
    assert!(listeners.contains(&"echo-service.default:8080".to_owned()));
    assert!(!listeners.contains(&"echo-service:8080".to_owned()) && !listeners.contains(&"echo-service".to_owned()));
}

#[test]
fn a_listener_routes_by_rds_over_ads_through_the_fault_filter_then_the_router() {
    let r = served(&example_mesh(), "default");
    for name in ["echo-service:8080", ECHO_GRPC] {
        let listener: Listener = get(&r, LISTENER_TYPE, name);
        assert_eq!(listener.name, name);
        let manager: HttpConnectionManager = decode(listener.api_listener.unwrap().api_listener.as_ref().unwrap());
        let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = manager.route_specifier else { panic!("no rds") };
        assert_eq!(rds.route_config_name, ECHO_GRPC);
        let source = rds.config_source.unwrap();
        assert!(matches!(source.config_source_specifier, Some(config_source::ConfigSourceSpecifier::Ads(_))));
        assert_eq!(source.resource_api_version, 2, "V3");
        let filters: Vec<(&str, &str)> = manager
            .http_filters
            .iter()
            .map(|f| match &f.config_type {
                Some(http_filter::ConfigType::TypedConfig(any)) => (f.name.as_str(), any.type_url.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            filters,
            [
                (FAULT_FILTER, "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"),
                (ROUTER_FILTER, "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"),
            ]
        );
    }
}

#[test]
fn clusters_are_eds_over_ads_with_the_ready_endpoints_in_one_weighted_locality() {
    let r = served(&example_mesh(), "default");
    let cluster: Cluster = get(&r, CLUSTER_TYPE, V1);
    assert_eq!(cluster.cluster_discovery_type, Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds.into())));
    let eds = cluster.eds_cluster_config.unwrap().eds_config.unwrap();
    assert!(matches!(eds.config_source_specifier, Some(config_source::ConfigSourceSpecifier::Ads(_))));
    assert_eq!(cluster.lb_policy, cluster::LbPolicy::RoundRobin as i32);

    let cla: ClusterLoadAssignment = get(&r, ENDPOINT_TYPE, V1);
    assert_eq!(cla.cluster_name, V1);
    assert_eq!(cla.endpoints.len(), 1);
    assert_eq!(cla.endpoints[0].load_balancing_weight.map(|w| w.value), Some(1));
    assert!(cla.endpoints[0].locality.is_some(), "gRPC NACKs a locality that is not there");
    let addresses: Vec<(String, u32)> = cla.endpoints[0]
        .lb_endpoints
        .iter()
        .map(|e| {
            let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &e.host_identifier else { panic!() };
            let Some(address::Address::SocketAddress(socket)) = endpoint.address.as_ref().and_then(|a| a.address.clone()) else {
                panic!()
            };
            let Some(socket_address::PortSpecifier::PortValue(port)) = socket.port_specifier else { panic!() };
            (socket.address, port)
        })
        .collect();
    assert!(!addresses.is_empty() && addresses.iter().all(|(ip, _)| ip == "127.0.0.1"), "{addresses:?}");

    // The cluster refusals name: served, with no endpoints at all.
    let _: Cluster = get(&r, CLUSTER_TYPE, UNRESOLVED_CLUSTER);
    let empty: ClusterLoadAssignment = get(&r, ENDPOINT_TYPE, UNRESOLVED_CLUSTER);
    assert!(empty.endpoints.is_empty());
    // Every cluster a route names is served, with an assignment.
    for config in r.by_type[ROUTE_TYPE].values() {
        let config: RouteConfiguration = decode(config);
        for route in &config.virtual_hosts[0].routes {
            let clusters = match &action(route).cluster_specifier {
                Some(route_action::ClusterSpecifier::Cluster(c)) => vec![c.clone()],
                _ => split(route).into_iter().map(|(c, _, _)| c).collect(),
            };
            for c in clusters {
                assert!(r.by_type[CLUSTER_TYPE].contains_key(&c) && r.by_type[ENDPOINT_TYPE].contains_key(&c), "{c}");
            }
        }
    }
}

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  clusterIP: 10.0.0.1
  ports:
  - {name: grpc, port: 8080, appProtocol: kubernetes.io/h2c}
  - {name: http, port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  clusterIP: 10.0.0.2
  ports: [{name: grpc, port: 8080, appProtocol: kubernetes.io/h2c}]
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  clusterIP: 10.0.0.3
  ports: [{name: grpc, port: 8080, appProtocol: kubernetes.io/h2c}]
---
apiVersion: v1
kind: Service
metadata: {name: c}
spec:
  clusterIP: 10.0.0.4
  ports: [{name: grpc, port: 8080, appProtocol: kubernetes.io/h2c}]
";

fn cluster(name: &str) -> String {
    format!("outbound|8080||{name}.default.svc.cluster.local")
}

fn with_services(routes: &str) -> Build {
    if routes.is_empty() {
        return from_text(SERVICES);
    }
    from_text(&format!("{SERVICES}---\n{routes}"))
}

/// Weight 0 is left out; an unresolved backend keeps its share, which fails at once with
/// UNAVAILABLE (its own override, on a served cluster); a rule without backends fails whole.
#[test]
fn weights_skip_zero_and_unresolved_shares_fail_with_unavailable() {
    let b = with_services(
        "\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: split}
spec:
  parentRefs: [{kind: Service, group: '', name: front, port: 8080}]
  rules:
  - matches: [{method: {service: pkg.Svc, method: Split}}]
    backendRefs:
    - {name: a, port: 8080, weight: 70}
    - {name: b, port: 8080, weight: 30}
    - {name: c, port: 8080, weight: 0}
    - {name: gone, port: 8080, weight: 10}
  - matches: [{method: {service: pkg.Svc, method: None}}]
",
    );
    let r = served(&b, "default");
    let routes = routes(&r, "front.default.svc.cluster.local:8080");
    let by_path = |p: &str| routes.iter().find(|r| path_of(r) == route_match::PathSpecifier::Path(p.into())).unwrap();
    assert_eq!(
        split(by_path("/pkg.Svc/Split")),
        [(cluster("a"), 70, None), (cluster("b"), 30, None), (UNRESOLVED_CLUSTER.to_owned(), 10, Some(14))]
    );
    let none = by_path("/pkg.Svc/None");
    assert_eq!((cluster_of(none), aborted(&none.typed_per_filter_config)), (UNRESOLVED_CLUSTER, Some(14)));
}

/// GRPCRoute matches as gRPC reads them, in the filter's precedence: exact method, then
/// service-only and regex as full-match regexes, metadata as `string_match`.
#[test]
fn grpc_matches_in_precedence_order() {
    let b = with_services(
        "\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: m}
spec:
  parentRefs: [{kind: Service, group: '', name: front, port: 8080}]
  rules:
  - matches: [{method: {service: pkg.Svc}}]
    backendRefs: [{name: a, port: 8080}]
  - matches: [{method: {type: RegularExpression, service: 'pkg\\..*', method: 'Get.*'}}]
    backendRefs: [{name: b, port: 8080}]
  - matches:
    - method: {service: pkg.Svc, method: Echo}
      headers: [{name: X-Variant, value: b}, {name: x-re, type: RegularExpression, value: 'v[0-9]+'}]
    backendRefs: [{name: c, port: 8080}]
",
    );
    let r = served(&b, "default");
    let routes = routes(&r, "front.default.svc.cluster.local:8080");
    let paths: Vec<_> = routes.iter().map(path_of).collect();
    // The filter's precedence: the longest service, then the longest method, regex or not.
    assert_eq!(
        paths,
        [
            regex_path("/(?:pkg\\..*)/(?:Get.*)"),
            route_match::PathSpecifier::Path("/pkg.Svc/Echo".into()),
            regex_path("/pkg\\.Svc/[^/]+"),
            route_match::PathSpecifier::Prefix(String::new()),
        ]
    );
    assert_eq!(route_names(&routes), precedence_names(&b, "front", 8080));
    let headers: Vec<(String, string_matcher::MatchPattern)> = routes[1]
        .r#match
        .as_ref()
        .unwrap()
        .headers
        .iter()
        .map(|h| match &h.header_match_specifier {
            Some(header_matcher::HeaderMatchSpecifier::StringMatch(s)) => (h.name.clone(), s.match_pattern.clone().unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        headers,
        [
            ("x-variant".to_owned(), string_matcher::MatchPattern::Exact("b".into())),
            ("x-re".to_owned(), string_matcher::MatchPattern::SafeRegex(super::regex("v[0-9]+".into()))),
        ]
    );
    assert!(unsupported(&b.table).is_empty());
}

/// HTTPRoute rules a gRPC client calls: PathPrefix without `path_separated_prefix` (gRPC NACKs
/// it); what no gRPC call can meet has no route; what gRPC cannot do fails or is listed.
#[test]
fn http_routes_as_grpc_clients_can_take_them() {
    let b = with_services(
        "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h}
spec:
  parentRefs: [{kind: Service, group: '', name: front, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /pkg.Svc/}}]
    backendRefs: [{name: a, port: 8080}]
  - matches: [{path: {type: Exact, value: /pkg.Svc/Get}, method: GET}, {path: {type: Exact, value: /pkg.Svc/Post}, method: POST}]
    backendRefs: [{name: b, port: 8080}]
  - matches: [{path: {type: Exact, value: /pkg.Svc/Q}, queryParams: [{name: v, value: '1'}]}]
    backendRefs: [{name: b, port: 8080}]
  - matches: [{path: {type: Exact, value: /pkg.Svc/Hdr}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: '1'}]}}]
    backendRefs: [{name: b, port: 8080}]
  - matches: [{path: {type: Exact, value: /pkg.Svc/Mirror}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: c, port: 8080}}}]
    backendRefs: [{name: b, port: 8080}]
  - matches: [{path: {type: Exact, value: /pkg.Svc/Away}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.com}}]
  - matches: [{path: {type: Exact, value: /pkg.Svc/Gone}}]
    backendRefs: [{name: gone, port: 8080}]
",
    );
    let r = served(&b, "default");
    let routes = routes(&r, "front.default.svc.cluster.local:80");
    let paths: Vec<_> = routes.iter().map(path_of).collect();
    // The filter's precedence (the longest exact path, then a method match), except the GET and
    // query matches: no gRPC call meets them, so they have no route.
    assert_eq!(
        paths,
        [
            route_match::PathSpecifier::Path("/pkg.Svc/Mirror".into()),
            route_match::PathSpecifier::Path("/pkg.Svc/Post".into()),
            route_match::PathSpecifier::Path("/pkg.Svc/Away".into()),
            route_match::PathSpecifier::Path("/pkg.Svc/Gone".into()),
            route_match::PathSpecifier::Path("/pkg.Svc/Hdr".into()),
            regex_path("/pkg\\.Svc(/.*)?"),
            route_match::PathSpecifier::Prefix(String::new()),
        ]
    );
    let expected: Vec<String> = precedence_names(&b, "front", 80)
        .into_iter()
        .filter(|n| !n.starts_with("default/h/rules/2/") && n != "default/h/rules/1/matches/0")
        .collect();
    assert_eq!(route_names(&routes), expected);
    let by_path = |p: &str| routes.iter().find(|r| path_of(r) == route_match::PathSpecifier::Path(p.into())).unwrap();
    let post = by_path("/pkg.Svc/Post");
    assert!(post.r#match.as_ref().unwrap().headers.is_empty(), "POST is every gRPC call");
    assert_eq!(cluster_of(post), cluster("b"));
    // Through Envoy a gRPC call to an HTTPRoute port gets the filter's HTTP answer, mapped:
    // a redirect or a 500 is UNKNOWN, no route is UNIMPLEMENTED.
    assert_eq!(aborted(&by_path("/pkg.Svc/Away").typed_per_filter_config), Some(2), "redirect");
    assert_eq!(aborted(&by_path("/pkg.Svc/Gone").typed_per_filter_config), Some(2), "unresolved");
    assert_eq!(aborted(&by_path("/pkg.Svc/Hdr").typed_per_filter_config), Some(2), "header modifier");
    let mirror = by_path("/pkg.Svc/Mirror");
    assert_eq!(aborted(&mirror.typed_per_filter_config), None, "a mirror never changes the call");
    assert_eq!(cluster_of(mirror), cluster("b"));
    assert_eq!(aborted(&routes.last().unwrap().typed_per_filter_config), Some(12));

    let listed: Vec<String> = unsupported(&b.table).iter().map(ToString::to_string).collect();
    assert_eq!(
        listed,
        [
            "HTTPRoute default/h spec.rules[1].matches[0] (method GET): never matches for proxyless gRPC clients: every gRPC call is a POST (the same through Envoy)",
            "HTTPRoute default/h spec.rules[2].matches[0] (queryParams v): never matches for proxyless gRPC clients: a gRPC call has no query string (the same through Envoy)",
            "HTTPRoute default/h spec.rules[3].filters (RequestHeaderModifier): its calls fail with UNKNOWN for proxyless gRPC clients: gRPC cannot modify headers or rewrite a call, and a filter is never skipped",
            "HTTPRoute default/h spec.rules[4].filters (RequestMirror): not applied for proxyless gRPC clients: gRPC sends no copies; the calls themselves go on",
            "HTTPRoute default/h spec.rules[5].filters (RequestRedirect): its calls fail with UNKNOWN for proxyless gRPC clients: a gRPC client cannot follow a redirect (UNKNOWN through Envoy too)",
        ]
    );
    // No resource anywhere uses the specifier gRPC NACKs.
    for config in r.by_type[ROUTE_TYPE].values() {
        let config: RouteConfiguration = decode(config);
        for route in &config.virtual_hosts[0].routes {
            assert!(!matches!(path_of(route), route_match::PathSpecifier::PathSeparatedPrefix(_)), "{}", route.name);
        }
    }
}

/// A backendRef's own header modifier fails its share only, on a GRPCRoute with UNAVAILABLE.
#[test]
fn a_backend_ref_filter_fails_its_share_only() {
    let b = with_services(
        "\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec:
  parentRefs: [{kind: Service, group: '', name: front, port: 8080}]
  rules:
  - backendRefs:
    - {name: a, port: 8080, weight: 1}
    - name: b
      port: 8080
      weight: 1
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: x-b, value: '1'}]}}]
",
    );
    let r = served(&b, "default");
    let routes = routes(&r, "front.default.svc.cluster.local:8080");
    assert_eq!(split(&routes[0]), [(cluster("a"), 1, None), (UNRESOLVED_CLUSTER.to_owned(), 1, Some(14))]);
    let listed = unsupported(&b.table);
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].field.as_str(), listed[0].effect), ("spec.rules[0].backendRefs[1].filters", Effect::Fails(14)));
}

/// gRFC A31 and A44: the request timeout as `max_stream_duration`; retry codes as the gRPC
/// statuses a client sees for them; what does not map is listed.
#[test]
fn timeouts_and_retries() {
    let b = with_services(
        "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: t}
spec:
  parentRefs: [{kind: Service, group: '', name: front, port: 80}]
  rules:
  - matches: [{path: {type: Exact, value: /pkg.Svc/Retried}}]
    timeouts: {request: 2500ms, backendRequest: 1s}
    retry: {codes: [503, 500, 400], attempts: 7, backoff: 10ms}
    backendRefs: [{name: a, port: 8080}]
  - matches: [{path: {type: Exact, value: /pkg.Svc/Once}}]
    timeouts: {request: 2s, backendRequest: 1s}
    backendRefs: [{name: a, port: 8080}]
",
    );
    let r = served(&b, "default");
    let routes = routes(&r, "front.default.svc.cluster.local:80");
    let seconds = |route: &Route| {
        let d = action(route).max_stream_duration.as_ref().and_then(|m| m.max_stream_duration).unwrap();
        (d.seconds, d.nanos)
    };
    let by_path = |p: &str| routes.iter().find(|r| path_of(r) == route_match::PathSpecifier::Path(p.into())).unwrap();
    let (once, retried) = (by_path("/pkg.Svc/Once"), by_path("/pkg.Svc/Retried"));
    assert_eq!(seconds(retried), (2, 500_000_000));
    assert_eq!(seconds(once), (1, 0), "one try is the whole call: the backend request timeout bounds it");
    assert!(action(once).retry_policy.is_none());
    let policy = action(retried).retry_policy.as_ref().unwrap();
    assert_eq!(policy.retry_on, "unavailable,internal");
    assert_eq!(policy.num_retries.map(|n| n.value), Some(4));
    let back_off = policy.retry_back_off.as_ref().unwrap();
    assert_eq!(back_off.base_interval.map(|d| d.nanos), Some(10_000_000));
    assert_eq!(back_off.max_interval.map(|d| d.nanos), Some(100_000_000));

    let fields: Vec<String> = unsupported(&b.table).into_iter().map(|u| u.field).collect();
    assert_eq!(fields, ["spec.rules[0].retry.codes", "spec.rules[0].retry.attempts", "spec.rules[0].timeouts.backendRequest"]);
}

/// A port without routes sends every call to its own Service.
#[test]
fn a_port_without_routes_passes_through() {
    let b = with_services("");
    let r = served(&b, "default");
    let routes = routes(&r, "a.default.svc.cluster.local:8080");
    assert_eq!(routes.len(), 1);
    assert_eq!(
        (cluster_of(&routes[0]), path_of(&routes[0])),
        (cluster("a").as_str(), route_match::PathSpecifier::Prefix(String::new()))
    );
    assert!(routes[0].typed_per_filter_config.is_empty());
}

/// A request timeout under 2 s is listed: gRPC C-core clients fail every such call.
#[test]
fn a_short_request_timeout_is_listed_for_grpc_clients() {
    let b = from_text(
        "apiVersion: v1
kind: Service
metadata: {name: s, namespace: default}
spec:
  clusterIP: 10.96.0.50
  ports: [{name: grpc, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{group: \"\", kind: Service, name: s, port: 8080}]
  rules:
  - timeouts: {request: 500ms}
    backendRefs: [{name: s, port: 8080}]
  - matches: [{path: {value: /long}}]
    timeouts: {request: 3s}
    backendRefs: [{name: s, port: 8080}]
",
    );
    let listed: Vec<String> = unsupported(&b.table).iter().map(ToString::to_string).collect();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert!(
        listed[0].contains(".timeouts.request: its calls fail with DEADLINE_EXCEEDED for proxyless gRPC clients"),
        "{}",
        listed[0]
    );
}
