//! The Kubernetes resources meshroute reads, decoded and validated, each with where it came
//! from. Everything downstream (reference resolution, the route table, Envoy's files) is a pure
//! function of a [`Manifests`].

use std::path::PathBuf;

use meshroute_filter::document::{FiltersDoc, FractionDoc, MatchDoc, RetryDoc, TimeoutsDoc, ValueMatchDoc};

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
    /// `metadata.generation`, what a status's `observedGeneration` reports; 0 when absent (a
    /// manifest that never went through an API server).
    pub generation: i64,
    pub source: Source,
    /// Set on the last good version of a resource whose current manifest does not validate: why
    /// it is still served.
    pub last_good: Option<RejectedVersion>,
}

/// The current manifest of a resource whose last good version is served instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedVersion {
    /// Its first error.
    pub error: String,
    /// Its `metadata.generation`, where one can be read: a route's status reports it beside the
    /// older generation its conditions were computed from.
    pub generation: Option<i64>,
}

impl std::fmt::Display for RejectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

/// Everything read from one manifests directory.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub http_routes: Vec<HttpRoute>,
    pub grpc_routes: Vec<GrpcRoute>,
}

/// One resource meshroute reads, as decoded and validated.
#[derive(Debug, Clone)]
pub enum Resource {
    Service(Service),
    EndpointSlice(EndpointSlice),
    HttpRoute(HttpRoute),
    GrpcRoute(GrpcRoute),
}

/// A resource's identity from one version of the directory to the next: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Service(_) => "Service",
            Resource::EndpointSlice(_) => "EndpointSlice",
            Resource::HttpRoute(_) => "HTTPRoute",
            Resource::GrpcRoute(_) => "GRPCRoute",
        }
    }

    pub fn meta(&self) -> &Meta {
        match self {
            Resource::Service(r) => &r.meta,
            Resource::EndpointSlice(r) => &r.meta,
            Resource::HttpRoute(r) => &r.meta,
            Resource::GrpcRoute(r) => &r.meta,
        }
    }

    pub fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Resource::Service(r) => &mut r.meta,
            Resource::EndpointSlice(r) => &mut r.meta,
            Resource::HttpRoute(r) => &mut r.meta,
            Resource::GrpcRoute(r) => &mut r.meta,
        }
    }

    pub fn key(&self) -> ResourceKey {
        let meta = self.meta();
        ResourceKey { kind: self.kind(), namespace: meta.namespace.clone(), name: meta.name.clone() }
    }
}

impl Manifests {
    /// The Service each ClusterIP and port belongs to: the first in manifest order that claims
    /// it (Kubernetes never gives two Services one ClusterIP; a directory of manifests can). An
    /// address that is not an IP address (a headless Service's `None`) is nobody's. The one
    /// rule for the local listener's addresses and the table's pass-through ports.
    pub fn address_owners(&self) -> std::collections::HashMap<(std::net::IpAddr, u16), &Service> {
        let mut owners = std::collections::HashMap::new();
        for service in &self.services {
            for ip in service.cluster_ips.iter().filter_map(|ip| ip.parse().ok()) {
                for port in &service.ports {
                    owners.entry((ip, port.port)).or_insert(service);
                }
            }
        }
        owners
    }

    pub fn push(&mut self, resource: Resource) {
        match resource {
            Resource::Service(r) => self.services.push(r),
            Resource::EndpointSlice(r) => self.endpoint_slices.push(r),
            Resource::HttpRoute(r) => self.http_routes.push(r),
            Resource::GrpcRoute(r) => self.grpc_routes.push(r),
        }
    }

    /// Every resource, Services first, then EndpointSlices, HTTPRoutes and GRPCRoutes.
    pub fn resources(&self) -> impl Iterator<Item = Resource> + '_ {
        self.services
            .iter()
            .cloned()
            .map(Resource::Service)
            .chain(self.endpoint_slices.iter().cloned().map(Resource::EndpointSlice))
            .chain(self.http_routes.iter().cloned().map(Resource::HttpRoute))
            .chain(self.grpc_routes.iter().cloned().map(Resource::GrpcRoute))
    }
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
    /// For a Service parent, the name of one of its ports (ParentReference.sectionName).
    pub section_name: Option<String>,
    /// Whether `namespace` was written (the status repeats a parentRef as written; `group` and
    /// `kind` have CRD defaults, so an API server always stores them).
    pub namespace_written: bool,
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
    /// The backendRef's own `filters`.
    pub filters: FiltersDoc,
    /// Its own RequestMirror filters, resolved into `filters` when the table is compiled.
    pub mirrors: Vec<MirrorRef>,
    /// A filter of a type meshroute does not implement: its rule is dropped.
    pub dropped: Option<String>,
    pub source: Source,
}

/// A `RequestMirror` filter as written: the Service port the copies go to (a reference like a
/// backendRef's, with no weight nor filters of its own) and the share of requests copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRef {
    pub to: BackendRef,
    /// `percent` as `percent/100`, or `fraction`; `None`: every request.
    pub fraction: Option<FractionDoc>,
    /// Where it is written (`spec.rules[0].filters[1].requestMirror.backendRef`).
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct HttpRoute {
    pub meta: Meta,
    pub parent_refs: Vec<ParentRef>,
    /// Validated, and ignored on a Service parent: a mesh route matches by the Service the
    /// client dialled, never by the Host header.
    pub hostnames: Vec<String>,
    pub rules: Vec<HttpRule>,
}

#[derive(Debug, Clone)]
pub struct HttpRule {
    /// `name`, when the rule has one.
    pub name: Option<String>,
    /// As the filter reads them: the same types, already validated.
    pub matches: Vec<MatchDoc>,
    pub backend_refs: Vec<BackendRef>,
    /// The rule's `filters`, as the filter reads them.
    pub filters: FiltersDoc,
    /// Its RequestMirror filters, resolved into `filters` when the table is compiled.
    pub mirrors: Vec<MirrorRef>,
    pub timeouts: Option<TimeoutsDoc>,
    pub retry: Option<RetryDoc>,
    /// Why the rule is dropped (a filter of a type meshroute does not implement): it then takes
    /// its requests and answers 500.
    pub dropped: Option<String>,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct GrpcRoute {
    pub meta: Meta,
    pub parent_refs: Vec<ParentRef>,
    /// As [`HttpRoute::hostnames`].
    pub hostnames: Vec<String>,
    pub rules: Vec<GrpcRule>,
}

#[derive(Debug, Clone)]
pub struct GrpcRule {
    /// `name`, when the rule has one.
    pub name: Option<String>,
    /// ORed; empty means every call.
    pub matches: Vec<GrpcMatch>,
    pub backend_refs: Vec<BackendRef>,
    /// The rule's `filters`, as the filter reads them.
    pub filters: FiltersDoc,
    /// As [`HttpRule::mirrors`].
    pub mirrors: Vec<MirrorRef>,
    /// As [`HttpRule::dropped`].
    pub dropped: Option<String>,
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

/// The Envoy cluster of a Service port, named as Istio names it so that one table can serve an
/// Istio sidecar too.
pub fn cluster_name(namespace: &str, name: &str, port: u16) -> String {
    format!("outbound|{port}||{name}.{namespace}.svc.cluster.local")
}
