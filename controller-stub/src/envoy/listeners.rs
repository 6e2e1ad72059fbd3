//! LDS for the local mesh: one listener bound to every Service ClusterIP and port, running the
//! meshroute filter (by ECDS) before the router.
//!
//! One listener, not one per address: Envoy keeps a filter's configuration, the whole route
//! table, once per listener that uses it, and at 10,000 Services one listener each held the
//! table 10,000 times. The filter tells the Services apart by the connection's local address
//! (`destination.address`), and sends requests to ports without routes to their own cluster
//! ([`meshroute_filter::document::TableDocument::pass_through`]), which a listener per port
//! used to do with its own default route.

use serde_json::{json, Value};

use meshroute_filter::document::TableDocument;
use meshroute_filter::mirror::{MirrorSet, MIRROR_HEADER};
use meshroute_filter::{DESTINATION_HEADER, SELECTION_HEADER};

use super::mirrors;
use crate::model::{self, Manifests};

/// The name of the filter in every HTTP filter chain, and of its ECDS resource.
pub const FILTER_NAME: &str = "meshroute";
pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// Where Envoy reads the filter's configuration: a file, reloaded when a new one is renamed onto
/// it.
pub struct EcdsSource<'a> {
    pub path: &'a str,
}

/// The local listener's name, and its connection manager's stat prefix.
pub const LISTENER_NAME: &str = "meshroute";

/// The LDS document, and a warning for each Service address that could not be bound.
/// `mirror_sets`: the route table's, each a route of the listener.
pub fn listeners(manifests: &Manifests, ecds: &EcdsSource, mirror_sets: &[MirrorSet]) -> (Value, Vec<String>) {
    let (addresses, warnings) = listener_addresses(manifests);
    let resources: Vec<Value> =
        addresses.split_first().map(|(first, rest)| listener(first, rest, ecds, mirror_sets)).into_iter().collect();
    (json!({ "resources": resources }), warnings)
}

/// A Service ClusterIP and port that gets a listener, and the cluster of that Service port.
pub struct ListenerAddress {
    pub ip: String,
    pub port: u16,
    pub default_cluster: String,
}

/// Every Service ClusterIP and port, in manifest order; an address two Services claim goes to
/// the first, with a warning.
pub fn listener_addresses(manifests: &Manifests) -> (Vec<ListenerAddress>, Vec<String>) {
    let owners = manifests.address_owners();
    let mut addresses = Vec::new();
    let mut warnings = Vec::new();
    for service in &manifests.services {
        let (namespace, name) = (&service.meta.namespace, &service.meta.name);
        for (ip, address) in service.cluster_ips.iter().filter_map(|ip| Some((ip, ip.parse::<std::net::IpAddr>().ok()?))) {
            for port in &service.ports {
                match owners.get(&(address, port.port)) {
                    Some(owner) if !std::ptr::eq(*owner, service) => warnings.push(format!(
                        "Service {namespace}/{name}: {ip}:{} is already Service {}/{}'s; no listener for it",
                        port.port, owner.meta.namespace, owner.meta.name
                    )),
                    _ => addresses.push(ListenerAddress {
                        ip: ip.clone(),
                        port: port.port,
                        default_cluster: model::cluster_name(namespace, name, port.port),
                    }),
                }
            }
        }
    }
    (addresses, warnings)
}

/// Istio's name for an outbound listener: `IP_PORT`.
pub fn listener_name(ip: &str, port: u16) -> String {
    format!("{ip}_{port}")
}

fn listener(first: &ListenerAddress, rest: &[ListenerAddress], ecds: &EcdsSource, mirror_sets: &[MirrorSet]) -> Value {
    let socket = |at: &ListenerAddress| json!({ "socket_address": { "address": at.ip, "port_value": at.port } });
    let additional: Vec<Value> = rest.iter().map(|at| json!({ "address": socket(at) })).collect();
    json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": LISTENER_NAME,
        "address": socket(first),
        "additional_addresses": additional,
        "filter_chains": [{ "filters": [http_connection_manager(LISTENER_NAME, route_config(None, mirror_sets), ecds)] }],
    })
}

/// What the listener writes in [`DESTINATION_HEADER`] before any filter runs, replacing any
/// copy a client sent: the connection's local address, as Envoy writes `destination.address`
/// (`10.0.0.1:80`, `[fd00::1]:80`).
pub const DESTINATION_VALUE: &str = "%DOWNSTREAM_LOCAL_ADDRESS%";

/// The route table as the filter in these listeners receives it: they name each request's
/// destination ([`destination_mutation`]), so it may read that header.
pub fn table_json(table: &TableDocument) -> serde_json::Result<String> {
    serde_json::to_string(&TableDocument { destination_header: true, ..table.clone() })
}

/// The connection manager's early header mutation that names each request's destination
/// ([`meshroute_filter::document::TableDocument::destination_header`]).
pub fn destination_mutation() -> Value {
    json!([{
        "name": "envoy.http.early_header_mutation.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
            "mutations": [{
                "append": {
                    "header": { "key": DESTINATION_HEADER, "value": DESTINATION_VALUE },
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            }],
        }
    }])
}

/// The HCM shared by the local listeners and (in the same shape) the sidecar bootstrap.
pub fn http_connection_manager(stat_prefix: &str, route_config: Value, ecds: &EcdsSource) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            // HTTP/1.1, and HTTP/2 with prior knowledge (h2c, gRPC).
            "codec_type": "AUTO",
            "normalize_path": true,
            "merge_slashes": true,
            "early_header_mutation_extensions": destination_mutation(),
            "route_config": route_config,
            "http_filters": [
                {
                    "name": FILTER_NAME,
                    "config_discovery": {
                        "config_source": {
                            "path_config_source": { "path": ecds.path }
                        },
                        "type_urls": [WASM_TYPE_URL],
                    },
                },
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                    },
                },
            ],
        }
    })
}

/// First the cluster the filter chose, with the copies of a mirror set when it named one
/// ([`mirrors::selection_routes`]), then, when it chose none (an address its table does not
/// know), `default_cluster` (the sidecar's original destination), or where there is none (the
/// local listener) a 404. The filter's headers, and the listener's, never leave Envoy. Clusters are not validated
/// when the listener loads: Envoy may read a new lds.json before the cds.json that names its
/// cluster (both change in one publication), and would otherwise refuse the listener for good.
pub fn route_config(default_cluster: Option<&str>, mirror_sets: &[MirrorSet]) -> Value {
    let mut routes = mirrors::selection_routes(mirror_sets);
    routes.extend([
        json!({
            "name": "selected",
            "match": { "prefix": "/", "headers": [{ "name": SELECTION_HEADER, "present_match": true }] },
            // No timeout, as in Istio: long streams (gRPC) are the application's call.
            "route": { "cluster_header": SELECTION_HEADER, "timeout": "0s" },
        }),
        match default_cluster {
            Some(cluster) => json!({
                "name": "pass-through",
                "match": { "prefix": "/" },
                "route": { "cluster": cluster, "timeout": "0s" },
            }),
            // Only while Envoy has a listener address before the table that names it.
            None => json!({
                "name": "unknown-address",
                "match": { "prefix": "/" },
                "direct_response": { "status": 404, "body": { "inline_string": "meshroute: no Service known at this address\n" } },
            }),
        },
    ]);
    json!({
        "name": "meshroute",
        "validate_clusters": false,
        "request_headers_to_remove": [SELECTION_HEADER, MIRROR_HEADER, DESTINATION_HEADER],
        "virtual_hosts": [{ "name": "meshroute", "domains": ["*"], "routes": routes }],
    })
}
