//! CDS: one cluster per Service port, named as Istio names it, with the endpoints Kubernetes
//! would send that port's traffic to.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::model::{self, EndpointSlice, Manifests, Service, ServicePort, TargetPort};
use crate::protocol::{self, Declared};

/// How long a connection to an upstream endpoint may take before Envoy tries another.
pub const CONNECT_TIMEOUT: &str = "2s";
/// [`CONNECT_TIMEOUT`] in seconds, for the clusters sent over ADS.
pub const CONNECT_TIMEOUT_SECONDS: i64 = 2;

/// The CDS document: `resources` holding one Cluster per Service port.
pub fn clusters(manifests: &Manifests) -> Value {
    let resources: Vec<Value> = manifests
        .services
        .iter()
        .flat_map(|service| service.ports.iter().map(move |port| cluster(manifests, service, port)))
        .collect();
    json!({ "resources": resources })
}

fn cluster(manifests: &Manifests, service: &Service, port: &ServicePort) -> Value {
    let cluster_name = model::cluster_name(&service.meta.namespace, &service.meta.name, port.port);
    let (kind, endpoints) = match endpoints(manifests, service, port) {
        Endpoints::Dns { host, port } => ("STRICT_DNS", vec![endpoint(&host, port)]),
        Endpoints::Static(found) => ("STATIC", found.iter().map(|(address, target)| endpoint(address, *target)).collect()),
    };
    let mut cluster = json!({
        "name": cluster_name,
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "type": kind,
        "connect_timeout": CONNECT_TIMEOUT,
        "metadata": super::metrics::cluster_metadata(&service.meta.namespace, &service.meta.name, port.port),
        "load_assignment": {
            "cluster_name": cluster_name,
            "endpoints": [{ "lb_endpoints": endpoints }],
        },
    });
    if let Some(options) = upstream_protocol(port) {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                options.0: options.1,
            }
        });
    }
    cluster
}

/// Where a Service port's cluster finds its endpoints; the one place both the CDS file and the
/// clusters `serve` sends Envoy over ADS take it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// No EndpointSlice: let DNS find them, as a pod's client would (`STRICT_DNS`).
    Dns { host: String, port: u16 },
    /// The ready addresses of the Service's EndpointSlices (`STATIC`).
    Static(BTreeSet<(String, u16)>),
}

pub fn endpoints(manifests: &Manifests, service: &Service, port: &ServicePort) -> Endpoints {
    let (namespace, name) = (&service.meta.namespace, &service.meta.name);
    let slices: Vec<&EndpointSlice> = manifests
        .endpoint_slices
        .iter()
        .filter(|slice| slice.meta.namespace == *namespace && slice.service_name == *name)
        .collect();
    if slices.is_empty() {
        Endpoints::Dns { host: format!("{name}.{namespace}.svc.cluster.local"), port: port.port }
    } else {
        Endpoints::Static(ready_endpoints(&slices, port))
    }
}

fn endpoint(address: &str, port: u16) -> Value {
    json!({ "endpoint": { "address": { "socket_address": { "address": address, "port_value": port } } } })
}

/// The ready addresses behind a Service port, each with the port to connect to, sorted and
/// without duplicates (so the file only changes when the endpoints do).
pub fn ready_endpoints(slices: &[&EndpointSlice], port: &ServicePort) -> BTreeSet<(String, u16)> {
    let mut found = BTreeSet::new();
    for slice in slices {
        let Some(target) = endpoint_port(slice, port) else { continue };
        for endpoint in slice.endpoints.iter().filter(|endpoint| endpoint.ready) {
            for address in &endpoint.addresses {
                found.insert((address.clone(), target));
            }
        }
    }
    found
}

/// The port an EndpointSlice serves a Service port on. As kube-proxy does, the slice port with
/// the Service port's name (unnamed matches unnamed); a slice with a single port serves an
/// unnamed Service port; failing those, a numeric `targetPort` (or the port itself when there
/// is no `targetPort`). A named `targetPort` that no slice port carries has no endpoints here.
pub fn endpoint_port(slice: &EndpointSlice, port: &ServicePort) -> Option<u16> {
    let wanted = port.name.as_deref().unwrap_or("");
    if let Some(by_name) = slice.ports.iter().find(|p| p.name.as_deref().unwrap_or("") == wanted) {
        return Some(by_name.port);
    }
    if wanted.is_empty() {
        if let [only] = slice.ports.as_slice() {
            return Some(only.port);
        }
    }
    match &port.target_port {
        None => Some(port.port),
        Some(TargetPort::Number(number)) => Some(*number),
        Some(TargetPort::Name(_)) => None,
    }
}

/// How Envoy speaks HTTP to a Service port, as `HttpProtocolOptions`' `upstream_protocol_options`
/// (key and value); `None` for Envoy's default, HTTP/1.1. A port declared HTTP/2 gets HTTP/2; an
/// undeclared one gets the client's own protocol, so gRPC routed to `ports: [{port: 8080}]`
/// works (see [`crate::protocol::Declared::Undeclared`]).
pub fn upstream_protocol(port: &ServicePort) -> Option<(&'static str, Value)> {
    match protocol::declared(port).0 {
        Declared::Http2 => Some(("explicit_http_config", json!({ "http2_protocol_options": {} }))),
        Declared::Undeclared => {
            Some(("use_downstream_protocol_config", json!({ "http_protocol_options": {}, "http2_protocol_options": {} })))
        }
        Declared::Http1 | Declared::NotHttp => None,
    }
}
