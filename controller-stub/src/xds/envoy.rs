//! The resources an Envoy node is served over ADS: what `sync` writes to files, the same
//! listeners, clusters and filter configuration, as protobuf messages.
//!
//! envoy-types has no serde (and no pbjson), so the JSON documents of [`crate::envoy`] cannot
//! be converted generically; the messages are built here field by field, mirroring those
//! builders. What decides their content is shared rather than copied: listener addresses
//! ([`listeners::listener_addresses`]), endpoints ([`clusters::endpoints`]), the upstream
//! protocol ([`protocol::declared`]), mirror sets and their sampling ([`Mirror::fraction`]),
//! names and constants. The tests beside this file check both shapes field by field, and the
//! end-to-end suites run against both (`MESHROUTE_E2E_MODE=ads`).
//!
//! - **LDS**: one listener per Service ClusterIP and port, as in local mode, with the filter's
//!   configuration discovered over ADS (`config_discovery` with an `ads` config source: ECDS,
//!   Envoy's "Extension configuration discovery service").
//! - **CDS**: one cluster per Service port, with the protocol options of the CDS file.
//! - **ECDS**: the `TypedExtensionConfig` named [`FILTER_NAME`]: the wasm plugin, its code
//!   fetched by Envoy from `serve` itself (`remote` with the module's `sha256`: Envoy's
//!   `AsyncDataSource`) through the bootstrap's xDS cluster, and the route table as its plugin
//!   configuration. A new table keeps `vm_config` unchanged, so Envoy keeps the VM and only
//!   configures a new plugin instance (as with files); Envoy caches fetched code by its sha256.
//! - **RDS**: the sidecar bootstrap's routes (`envoy-config/sidecar-ads-bootstrap.yaml`),
//!   named [`SIDECAR_ROUTES`]; the local bootstrap never asks for them.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{cluster, Cluster};
use envoy_types::pb::envoy::config::common::mutation_rules::v3::{header_mutation, HeaderMutation};
use envoy_types::pb::envoy::config::core::v3::{
    address, async_data_source, http_uri, socket_address, Address, AsyncDataSource, HttpUri, RemoteDataSource,
    RuntimeFractionalPercent, SocketAddress, TypedExtensionConfig,
};
use envoy_types::pb::envoy::config::core::v3::{
    data_source, header_value_option, DataSource, ExtensionConfigSource, HeaderValue, HeaderValueOption, Http1ProtocolOptions,
    Http2ProtocolOptions,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfigType;
use envoy_types::pb::envoy::config::listener::v3::{AdditionalAddress, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher, route, route_action, route_match, DirectResponseAction, HeaderMatcher, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, http_filter, HttpConnectionManager, HttpFilter,
};
use envoy_types::pb::envoy::extensions::http::early_header_mutation::header_mutation::v3::HeaderMutation as EarlyHeaderMutation;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{http_protocol_options, HttpProtocolOptions};
use envoy_types::pb::envoy::extensions::wasm::v3::{plugin_config, PluginConfig, ReloadConfig, VmConfig};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent, FractionalPercent};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration, StringValue};
use envoy_types::util::pack_any;

use meshroute_filter::document::TableDocument;
use meshroute_filter::mirror::{Mirror, MirrorSet, MIRROR_HEADER};
use meshroute_filter::table::RouteTable;
use meshroute_filter::{DESTINATION_HEADER, SELECTION_HEADER};

use super::grpc::ads;
use super::{Resources, CLUSTER_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use crate::envoy::clusters::{self, Endpoints};
use crate::envoy::listeners::{self, ListenerAddress, FILTER_NAME, WASM_TYPE_URL};
use crate::envoy::SIDECAR_PASSTHROUGH_CLUSTER;
use crate::model::{self, Manifests, ServicePort};
use crate::protocol::{self, Declared};

/// The bootstrap's static cluster for the xDS server, which also serves the module: named in
/// the bootstrap `sync --xds` writes and in `envoy-config/sidecar-ads-bootstrap.yaml`.
pub const XDS_CLUSTER: &str = "meshroute_xds";
/// Where `serve` answers `GET` for a module it serves, by the module's file name.
pub const MODULE_PATH: &str = "/modules/";
/// The sidecar bootstrap's RouteConfiguration (RDS over ADS).
pub const SIDECAR_ROUTES: &str = "meshroute";
/// How long Envoy may take to fetch the module; it retries a failed fetch
/// (`RemoteDataSource.retry_policy`, Envoy's default of one retry with back-off).
const MODULE_FETCH_TIMEOUT_SECONDS: i64 = 10;

/// The filter module as `serve` offers it: Envoy fetches `MODULE_PATH` + `file_name` and checks
/// the bytes against `sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    pub file_name: String,
    /// Lower-case hex, as Envoy's `RemoteDataSource.sha256` wants it.
    pub sha256: String,
}

impl ModuleRef {
    pub fn of(module: &[u8]) -> ModuleRef {
        use sha2::{Digest, Sha256};
        let sha256 = Sha256::digest(module).iter().map(|byte| format!("{byte:02x}")).collect();
        ModuleRef { file_name: crate::envoy::module_file_name(module), sha256 }
    }
}

/// Every resource an Envoy node routing by `table` is served. Without a module (`serve` was
/// given no `--wasm`), no filter configuration: Envoy's listeners then wait for it (warming).
pub fn resources(manifests: &Manifests, table: &TableDocument, module: Option<&ModuleRef>) -> Resources {
    let mut out = Resources::default();
    let mirror_sets: Vec<MirrorSet> =
        RouteTable::compile(table).map(|compiled| compiled.mirror_sets().to_vec()).unwrap_or_default();
    for service in &manifests.services {
        for port in &service.ports {
            let cluster = service_cluster(manifests, service, port);
            insert(&mut out, CLUSTER_TYPE, cluster.name.clone(), pack_any(cluster));
        }
    }
    let (addresses, _warnings) = listeners::listener_addresses(manifests);
    if let Some((first, rest)) = addresses.split_first() {
        let listener = listener(first, rest, &mirror_sets);
        insert(&mut out, LISTENER_TYPE, listener.name.clone(), pack_any(listener));
    }
    insert(
        &mut out,
        ROUTE_TYPE,
        SIDECAR_ROUTES.to_owned(),
        pack_any(route_config(Some(SIDECAR_PASSTHROUGH_CLUSTER), &mirror_sets)),
    );
    if let Some(module) = module {
        // The table as the files hold it, for listeners that name each request's destination;
        // serializing a TableDocument cannot fail.
        let table_json = serde_json::to_string(&TableDocument { destination_header: true, ..table.clone() }).unwrap_or_default();
        insert(&mut out, EXTENSION_CONFIG_TYPE, FILTER_NAME.to_owned(), pack_any(extension_config(module, &table_json)));
    }
    out
}

fn insert(out: &mut Resources, type_url: &'static str, name: String, resource: Any) {
    out.by_type.entry(type_url).or_default().insert(name, resource);
}

fn seconds(seconds: i64) -> Duration {
    Duration { seconds, nanos: 0 }
}

fn millis(ms: i32) -> Duration {
    Duration { seconds: i64::from(ms / 1000), nanos: (ms % 1000) * 1_000_000 }
}

fn socket(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// [`clusters`]' cluster of a Service port.
fn service_cluster(manifests: &Manifests, service: &model::Service, port: &ServicePort) -> Cluster {
    let name = model::cluster_name(&service.meta.namespace, &service.meta.name, port.port);
    let (kind, endpoints) = match clusters::endpoints(manifests, service, port) {
        Endpoints::Dns { host, port } => (cluster::DiscoveryType::StrictDns, vec![(host, port)]),
        Endpoints::Static(found) => (cluster::DiscoveryType::Static, found.into_iter().collect()),
    };
    let lb_endpoints = endpoints
        .iter()
        .map(|(host, port)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(host, *port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    let mut typed_extension_protocol_options = HashMap::new();
    if let Some(options) = upstream_protocol(port) {
        typed_extension_protocol_options
            .insert("envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(), pack_any(options));
    }
    Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(kind.into())),
        connect_timeout: Some(seconds(clusters::CONNECT_TIMEOUT_SECONDS)),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints { lb_endpoints, ..Default::default() }],
            ..Default::default()
        }),
        typed_extension_protocol_options,
        ..Default::default()
    }
}

/// [`clusters::upstream_protocol`] as a message.
fn upstream_protocol(port: &ServicePort) -> Option<HttpProtocolOptions> {
    use http_protocol_options::{explicit_http_config, ExplicitHttpConfig, UpstreamProtocolOptions, UseDownstreamHttpConfig};
    let options = match protocol::declared(port).0 {
        Declared::Http2 => UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(explicit_http_config::ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())),
        }),
        Declared::Undeclared => UpstreamProtocolOptions::UseDownstreamProtocolConfig(UseDownstreamHttpConfig {
            http_protocol_options: Some(Http1ProtocolOptions::default()),
            http2_protocol_options: Some(Http2ProtocolOptions::default()),
            ..Default::default()
        }),
        Declared::Http1 | Declared::NotHttp => return None,
    };
    Some(HttpProtocolOptions { upstream_protocol_options: Some(options), ..Default::default() })
}

/// [`listeners`]' one listener on every Service ClusterIP and port, its filter configuration
/// by ECDS over ADS.
fn listener(first: &ListenerAddress, rest: &[ListenerAddress], mirror_sets: &[MirrorSet]) -> Listener {
    let manager = http_connection_manager(listeners::LISTENER_NAME, route_config(None, mirror_sets));
    Listener {
        name: listeners::LISTENER_NAME.to_owned(),
        address: Some(socket(&first.ip, first.port)),
        additional_addresses: rest
            .iter()
            .map(|at| AdditionalAddress { address: Some(socket(&at.ip, at.port)), ..Default::default() })
            .collect(),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(NetworkConfigType::TypedConfig(pack_any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// [`listeners::http_connection_manager`], discovering the filter over ADS.
fn http_connection_manager(stat_prefix: &str, route_config: RouteConfiguration) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: stat_prefix.to_owned(),
        codec_type: http_connection_manager::CodecType::Auto.into(),
        normalize_path: Some(BoolValue { value: true }),
        merge_slashes: true,
        early_header_mutation_extensions: vec![destination_mutation()],
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(route_config)),
        http_filters: vec![
            HttpFilter {
                name: FILTER_NAME.to_owned(),
                config_type: Some(http_filter::ConfigType::ConfigDiscovery(ExtensionConfigSource {
                    config_source: Some(ads()),
                    type_urls: vec![WASM_TYPE_URL.to_owned()],
                    ..Default::default()
                })),
                ..Default::default()
            },
            HttpFilter {
                name: "envoy.filters.http.router".to_owned(),
                config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

/// [`listeners::destination_mutation`] as a message.
fn destination_mutation() -> TypedExtensionConfig {
    let append = HeaderValueOption {
        header: Some(HeaderValue {
            key: DESTINATION_HEADER.to_owned(),
            value: listeners::DESTINATION_VALUE.to_owned(),
            ..Default::default()
        }),
        append_action: header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        ..Default::default()
    };
    let mutation = HeaderMutation { action: Some(header_mutation::Action::Append(append)) };
    TypedExtensionConfig {
        name: "envoy.http.early_header_mutation.header_mutation".to_owned(),
        typed_config: Some(pack_any(EarlyHeaderMutation { mutations: vec![mutation] })),
    }
}

/// [`listeners::route_config`] as a message.
pub fn route_config(default_cluster: Option<&str>, mirror_sets: &[MirrorSet]) -> RouteConfiguration {
    let present = |name: &str| HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::PresentMatch(true)),
        ..Default::default()
    };
    let forward = |cluster: route_action::ClusterSpecifier, mirrors: Vec<route_action::RequestMirrorPolicy>| {
        Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(cluster),
            timeout: Some(seconds(0)),
            request_mirror_policies: mirrors,
            ..Default::default()
        }))
    };
    let prefix = |headers: Vec<HeaderMatcher>| RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
        headers,
        ..Default::default()
    };
    let selected = || route_action::ClusterSpecifier::ClusterHeader(SELECTION_HEADER.to_owned());
    let mut routes: Vec<Route> = mirror_sets
        .iter()
        .map(|set| Route {
            name: format!("mirror-{}", set.header_value()),
            r#match: Some(prefix(vec![
                present(SELECTION_HEADER),
                HeaderMatcher {
                    name: MIRROR_HEADER.to_owned(),
                    header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
                        match_pattern: Some(string_matcher::MatchPattern::Exact(set.header_value().to_owned())),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
            ])),
            action: forward(selected(), set.mirrors.iter().map(mirror_policy).collect()),
            ..Default::default()
        })
        .collect();
    routes.push(Route {
        name: "selected".to_owned(),
        r#match: Some(prefix(vec![present(SELECTION_HEADER)])),
        action: forward(selected(), Vec::new()),
        ..Default::default()
    });
    routes.push(match default_cluster {
        Some(cluster) => Route {
            name: "pass-through".to_owned(),
            r#match: Some(prefix(Vec::new())),
            action: forward(route_action::ClusterSpecifier::Cluster(cluster.to_owned()), Vec::new()),
            ..Default::default()
        },
        None => Route {
            name: "unknown-address".to_owned(),
            r#match: Some(prefix(Vec::new())),
            action: Some(route::Action::DirectResponse(DirectResponseAction {
                status: 404,
                body: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(
                        "meshroute: no Service known at this address\n".to_owned(),
                    )),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        },
    });
    RouteConfiguration {
        name: "meshroute".to_owned(),
        validate_clusters: Some(BoolValue { value: false }),
        request_headers_to_remove: vec![SELECTION_HEADER.to_owned(), MIRROR_HEADER.to_owned(), DESTINATION_HEADER.to_owned()],
        virtual_hosts: vec![VirtualHost {
            name: "meshroute".to_owned(),
            domains: vec!["*".to_owned()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// [`crate::envoy::mirrors::policy`] as a message.
fn mirror_policy(mirror: &Mirror) -> route_action::RequestMirrorPolicy {
    route_action::RequestMirrorPolicy {
        cluster: mirror.cluster.clone(),
        disable_shadow_host_suffix_append: true,
        runtime_fraction: (!mirror.fraction.is_all()).then(|| RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: mirror.fraction.per_million(),
                denominator: fractional_percent::DenominatorType::Million.into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// [`crate::envoy::ecds::extension_configs`]' resource, its code fetched from `serve`.
pub fn extension_config(module: &ModuleRef, table_json: &str) -> TypedExtensionConfig {
    let code = AsyncDataSource {
        specifier: Some(async_data_source::Specifier::Remote(RemoteDataSource {
            http_uri: Some(HttpUri {
                // The authority is only a header here: the cluster says where to connect.
                uri: format!("http://{XDS_CLUSTER}{MODULE_PATH}{}", module.file_name),
                timeout: Some(seconds(MODULE_FETCH_TIMEOUT_SECONDS)),
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(XDS_CLUSTER.to_owned())),
            }),
            sha256: module.sha256.clone(),
            retry_policy: None,
        })),
    };
    let plugin = PluginConfig {
        name: FILTER_NAME.to_owned(),
        root_id: FILTER_NAME.to_owned(),
        vm: Some(plugin_config::Vm::VmConfig(VmConfig {
            vm_id: FILTER_NAME.to_owned(),
            runtime: "envoy.wasm.runtime.v8".to_owned(),
            code: Some(code),
            ..Default::default()
        })),
        configuration: Some(pack_any(StringValue { value: table_json.to_owned() })),
        failure_policy: envoy_types::pb::envoy::extensions::wasm::v3::FailurePolicy::FailReload.into(),
        reload_config: Some(ReloadConfig {
            backoff: Some(envoy_types::pb::envoy::config::core::v3::BackoffStrategy {
                base_interval: Some(millis(100)),
                max_interval: Some(millis(2000)),
            }),
        }),
        ..Default::default()
    };
    TypedExtensionConfig { name: FILTER_NAME.to_owned(), typed_config: Some(pack_any(Wasm { config: Some(plugin) })) }
}

#[cfg(test)]
#[path = "envoy_tests.rs"]
mod tests;
