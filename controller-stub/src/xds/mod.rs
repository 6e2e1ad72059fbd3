//! xDS for proxyless gRPC clients (and Envoy): the resources meshroute serves over ADS, built
//! from the same compiled route table as the files `sync` writes.

pub mod ads;

use std::collections::BTreeMap;

use envoy_types::pb::google::protobuf::Any;

pub mod envoy;
pub mod grpc;

/// Listener, RouteConfiguration, Cluster and ClusterLoadAssignment type URLs (xDS v3).
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT_TYPE: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// ECDS: an HTTP filter's configuration (Envoy's `config_discovery`).
pub const EXTENSION_CONFIG_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// Every resource one client is served, by type URL, then by resource name. A state-of-the-world
/// response for a type holds the subscribed names of that type's map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub by_type: BTreeMap<&'static str, BTreeMap<String, Any>>,
}
