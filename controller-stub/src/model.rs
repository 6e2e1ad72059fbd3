//! The Kubernetes resources meshroute reads, decoded and validated, each with where it came
//! from. Everything downstream (reference resolution, the route table, Envoy's files) is a pure
//! function of a [`Manifests`].

use std::path::PathBuf;

use meshroute_filter::document::{MatchDoc, ValueMatchDoc};

/// Where a resource or field was written: a path relative to the manifests directory and a
/// 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub file: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub namespace: String,
    pub name: String,
    /// RFC 3339 in UTC, as Kubernetes writes it.
    pub creation_timestamp: Option<String>,
    pub source: Source,
}

/// Everything read from one manifests directory.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub http_routes: Vec<HttpRoute>,
    pub grpc_routes: Vec<GrpcRoute>,
    /// `gateway.networking.k8s.io/v1beta1` ReferenceGrants: what may point across namespaces.
    pub reference_grants: Vec<ReferenceGrant>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub meta: Meta,
    /// `spec.clusterIPs` (or `spec.clusterIP`); empty for headless Services (`None`) and
    /// ExternalName Services.
    pub cluster_ips: Vec<String>,
    pub ports: Vec<ServicePort>,
}

/// A TCP port of a Service (UDP and SCTP ports carry no HTTP and are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target_port: Option<TargetPort>,
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone)]
pub struct EndpointSlice {
    pub meta: Meta,
    /// The `kubernetes.io/service-name` label.
    pub service_name: String,
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPort {
    pub name: Option<String>,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Vec<String>,
    /// `conditions.ready`; absent means ready.
    pub ready: bool,
}

/// A `parentRefs` entry. Only `group: ""`/`core`, `kind: Service` entries attach in the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentRef {
    pub group: String,
    pub kind: String,
    /// Defaults to the route's namespace.
    pub namespace: String,
    pub name: String,
    pub port: Option<u16>,
    /// Written for Gateways; a Service parent is scoped with `port` instead.
    pub section_name: Option<String>,
    pub source: Source,
}

/// A `backendRefs` entry, defaults applied (`group: ""`, `kind: Service`, `weight: 1`,
/// the route's namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRef {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub port: Option<u16>,
    pub weight: u32,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub meta: Meta,
    pub parent_refs: Vec<ParentRef>,
    pub rules: Vec<HttpRule>,
}

#[derive(Debug, Clone)]
pub struct HttpRule {
    /// As the filter reads them: the same types, already validated.
    pub matches: Vec<MatchDoc>,
    pub backend_refs: Vec<BackendRef>,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct GrpcRoute {
    pub meta: Meta,
    pub parent_refs: Vec<ParentRef>,
    pub rules: Vec<GrpcRule>,
}

#[derive(Debug, Clone)]
pub struct GrpcRule {
    /// ORed; empty means every call.
    pub matches: Vec<GrpcMatch>,
    pub backend_refs: Vec<BackendRef>,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GrpcMatch {
    pub method: Option<GrpcMethodMatch>,
    pub headers: Vec<ValueMatchDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcMethodMatch {
    /// `Exact` (default) or `RegularExpression`.
    pub regex: bool,
    pub service: Option<String>,
    pub method: Option<String>,
}

/// Permission for objects of the `from` kinds and namespaces to refer to objects of the `to`
/// kinds (and names) in the grant's own namespace.
#[derive(Debug, Clone)]
pub struct ReferenceGrant {
    pub meta: Meta,
    pub from: Vec<GrantFrom>,
    pub to: Vec<GrantTo>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFrom {
    pub group: String,
    pub kind: String,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantTo {
    pub group: String,
    pub kind: String,
    /// `None`: every object of the kind.
    pub name: Option<String>,
}

/// The Envoy cluster of a Service port, named as Istio names it so that one table can serve an
/// Istio sidecar too.
pub fn cluster_name(namespace: &str, name: &str, port: u16) -> String {
    format!("outbound|{port}||{name}.{namespace}.svc.cluster.local")
}
