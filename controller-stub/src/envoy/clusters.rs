//! CDS: one cluster per Service port, named as Istio names it, with the endpoints Kubernetes
//! would send that port's traffic to.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::model::{self, EndpointSlice, Manifests, Service, ServicePort, TargetPort};

/// How long a connection to an upstream endpoint may take before Envoy tries another.
const CONNECT_TIMEOUT: &str = "2s";

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
    let (namespace, name) = (&service.meta.namespace, &service.meta.name);
    let cluster_name = model::cluster_name(namespace, name, port.port);
    let slices: Vec<&EndpointSlice> = manifests
        .endpoint_slices
        .iter()
        .filter(|slice| slice.meta.namespace == *namespace && slice.service_name == *name)
        .collect();
    let mut cluster = if slices.is_empty() {
        // Nothing known about the endpoints: let DNS find them, as a pod's client would.
        let fqdn = format!("{name}.{namespace}.svc.cluster.local");
        json!({
            "name": cluster_name,
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "type": "STRICT_DNS",
            "connect_timeout": CONNECT_TIMEOUT,
            "load_assignment": {
                "cluster_name": cluster_name,
                "endpoints": [{ "lb_endpoints": [endpoint(&fqdn, port.port)] }],
            },
        })
    } else {
        let endpoints: Vec<Value> =
            ready_endpoints(&slices, port).iter().map(|(address, target)| endpoint(address, *target)).collect();
        json!({
            "name": cluster_name,
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "type": "STATIC",
            "connect_timeout": CONNECT_TIMEOUT,
            "load_assignment": {
                "cluster_name": cluster_name,
                "endpoints": [{ "lb_endpoints": endpoints }],
            },
        })
    };
    if speaks_http2(port) {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            }
        });
    }
    cluster
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

/// Whether the upstream speaks HTTP/2 (h2c or gRPC), by `appProtocol` or by Istio's port-name
/// convention (`grpc`, `grpc-*`, `http2`, `http2-*`; `grpc-web` is HTTP/1.1).
pub fn speaks_http2(port: &ServicePort) -> bool {
    if let Some(protocol) = &port.app_protocol {
        let protocol = protocol.to_ascii_lowercase();
        return matches!(protocol.as_str(), "kubernetes.io/h2c" | "grpc" | "http2");
    }
    let Some(name) = &port.name else { return false };
    let name = name.to_ascii_lowercase();
    let protocol = name.split('-').next().unwrap_or("");
    (protocol == "grpc" && !name.starts_with("grpc-web")) || protocol == "http2"
}
