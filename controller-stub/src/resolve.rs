//! References between resources, and the Gateway API status that follows from them: for each
//! route and each of its parents, `Accepted` (is it attached to that Service?) and
//! `ResolvedRefs` (do its backends exist and may it use them?). An unresolved backend is not
//! an error: the route is published and that backend's share answers 500.

use std::collections::BTreeMap;

use meshroute_filter::document::RouteKind;

use crate::model::{cluster_name, BackendRef, Manifests, Meta, MirrorRef, ParentRef, Service, Source};
use crate::protocol::{self, not_grpc};

/// One condition of a route's status for one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub status: bool,
    /// The Gateway API's reason (`Accepted`, `NoMatchingParent`, `BackendNotFound`, ...).
    pub reason: &'static str,
    pub message: String,
}

impl Condition {
    fn ok(reason: &'static str, message: impl Into<String>) -> Self {
        Condition { status: true, reason, message: message.into() }
    }

    fn failed(reason: &'static str, message: impl Into<String>) -> Self {
        Condition { status: false, reason, message: message.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentStatus {
    /// Not a Service (a Gateway, say): another implementation's business, no status from us.
    NotMesh { parent: ParentRef },
    Mesh {
        parent: ParentRef,
        accepted: Condition,
        resolved_refs: Condition,
        /// The Service ports the route is attached to (empty unless accepted).
        ports: Vec<u16>,
        /// Ports the parentRef would attach this HTTPRoute to but a GRPCRoute takes (GEP-1294:
        /// GRPCRoute > HTTPRoute on one Service port; the two are never merged), with the
        /// GRPCRoute that takes each.
        taken: Vec<(u16, String)>,
    },
}

/// A backendRef, or a RequestMirror's backendRef, that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// `spec.rules[0].backendRefs[1]`, `spec.rules[0].filters[0].requestMirror.backendRef`.
    pub path: String,
    pub reason: &'static str,
    pub message: String,
    /// A backendRef's weight; `None` for a mirror's, which has none.
    pub weight: Option<u32>,
    pub source: Source,
}

/// `(namespace, name, port)` of a Service port a route is attached to.
pub type Attachment<'a> = (&'a str, &'a str, u16);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStatus {
    pub kind: RouteKind,
    pub meta: Meta,
    pub parents: Vec<ParentStatus>,
    pub unresolved: Vec<Unresolved>,
    /// `spec.hostnames`, which a Service parent ignores.
    pub hostnames: Vec<String>,
    /// Rules dropped for a filter meshroute does not implement, by index, with why: the
    /// Gateway API's `PartiallyInvalid` condition (reason `UnsupportedValue`).
    pub dropped: Vec<(usize, String)>,
}

impl RouteStatus {
    /// `HTTPRoute default/echo-route`.
    pub fn subject(&self) -> String {
        format!("{} {}/{}", kind_name(self.kind), self.meta.namespace, self.meta.name)
    }

    /// Every Service port this route is attached to.
    pub fn attachments(&self) -> impl Iterator<Item = Attachment<'_>> {
        self.parents.iter().flat_map(|p| match p {
            ParentStatus::Mesh { parent, accepted, ports, .. } if accepted.status => {
                ports.iter().map(|&port| (parent.namespace.as_str(), parent.name.as_str(), port)).collect()
            }
            _ => Vec::new(),
        })
    }
}

pub fn kind_name(kind: RouteKind) -> &'static str {
    match kind {
        RouteKind::Http => "HTTPRoute",
        RouteKind::Grpc => "GRPCRoute",
    }
}

/// The status of every HTTPRoute and GRPCRoute, HTTPRoutes first, each kind sorted by
/// namespace and name.
pub fn statuses(m: &Manifests) -> Vec<RouteStatus> {
    let mut http: Vec<RouteStatus> = m
        .http_routes
        .iter()
        .map(|r| {
            let dropped = r.rules.iter().enumerate().filter_map(|(i, rule)| Some((i, rule.dropped.clone()?))).collect();
            route_status(
                m,
                RouteKind::Http,
                &r.meta,
                &r.parent_refs,
                &r.hostnames,
                dropped,
                r.rules.iter().map(|rule| (rule.backend_refs.as_slice(), rule.mirrors.as_slice())),
            )
        })
        .collect();
    let mut grpc: Vec<RouteStatus> = m
        .grpc_routes
        .iter()
        .map(|r| {
            let dropped = r.rules.iter().enumerate().filter_map(|(i, rule)| Some((i, rule.dropped.clone()?))).collect();
            route_status(
                m,
                RouteKind::Grpc,
                &r.meta,
                &r.parent_refs,
                &r.hostnames,
                dropped,
                r.rules.iter().map(|rule| (rule.backend_refs.as_slice(), rule.mirrors.as_slice())),
            )
        })
        .collect();
    let key = |s: &RouteStatus| (s.meta.namespace.clone(), s.meta.name.clone());
    http.sort_by_key(key);
    grpc.sort_by_key(key);
    yield_to_grpc_routes(&mut http, &grpc);
    http.extend(grpc);
    http
}

/// GEP-1294, "Multiple routes for a Service": of the routes attached to one port of a Service
/// in `service_namespace` (`attached`), those a client in `client_namespace` sees. A route in
/// the Service's own namespace is a producer route, for clients in every namespace; a route in
/// another namespace is a consumer route, for clients in that namespace only. Where the client's
/// namespace has consumer routes on the port, they replace the producer routes for that client
/// (the two sets are never merged), and consumer routes of any third namespace never apply.
/// Within the set that applies, GRPCRoutes take the port from HTTPRoutes (GRPCRoute >
/// HTTPRoute; the two kinds are never merged either). Order is kept.
///
/// This is the one place that decides it: the route table of a client (`compile`, filter and
/// native mode alike, and so `explain`) and the routes' status both ask here.
pub fn routes_seen_by<'s>(client_namespace: &str, service_namespace: &str, attached: &[&'s RouteStatus]) -> Vec<&'s RouteStatus> {
    let from = |namespace: &str| -> Vec<&'s RouteStatus> {
        attached.iter().copied().filter(|s| s.meta.namespace == namespace).collect()
    };
    let mut seen = from(client_namespace);
    if seen.is_empty() {
        seen = from(service_namespace);
    }
    if seen.iter().any(|s| s.kind == RouteKind::Grpc) {
        seen.retain(|s| s.kind == RouteKind::Grpc);
    }
    seen
}

/// Whether a route attached to a Service in `service_namespace` is a consumer route (GEP-1294):
/// one from another namespace, for clients in its own namespace only.
pub fn is_consumer_route(route_namespace: &str, service_namespace: &str) -> bool {
    route_namespace != service_namespace
}

/// Said of a consumer route where it is accepted.
fn consumer_scope(route_namespace: &str) -> String {
    format!("; a consumer route: applies only to clients in namespace {route_namespace} (GEP-1294)")
}

/// GEP-1294's order of route kinds on one Service port, within the set of routes one client
/// sees there ([`routes_seen_by`]): where a GRPCRoute of that set attaches, the set's HTTPRoutes
/// are not applied. An HTTPRoute's set is the one the clients of its own namespace see (its
/// fellow producer routes, or its fellow consumer routes from that namespace), so a producer
/// GRPCRoute never takes a port from a consumer HTTPRoute, nor the other way round. An
/// HTTPRoute keeps the ports of its parent that no GRPCRoute of its set takes; a parent all of
/// whose ports are taken no longer accepts it.
fn yield_to_grpc_routes(http: &mut [RouteStatus], grpc: &[RouteStatus]) {
    let mut on_port: BTreeMap<Attachment<'_>, Vec<&RouteStatus>> = BTreeMap::new();
    for status in grpc {
        for place in status.attachments() {
            on_port.entry(place).or_default().push(status);
        }
    }
    // Only ports with a GRPCRoute can take anything from an HTTPRoute.
    for status in http.iter() {
        for place in status.attachments() {
            if let Some(routes) = on_port.get_mut(&place) {
                routes.push(status);
            }
        }
    }
    // (HTTPRoute index, parent index, port, the GRPCRoute that takes it).
    let mut losses: Vec<(usize, usize, u16, String)> = Vec::new();
    for (h, status) in http.iter().enumerate() {
        for (p, parent) in status.parents.iter().enumerate() {
            let ParentStatus::Mesh { parent, accepted, ports, .. } = parent else { continue };
            if !accepted.status {
                continue;
            }
            for &port in ports {
                let Some(attached) = on_port.get(&(parent.namespace.as_str(), parent.name.as_str(), port)) else { continue };
                let seen = routes_seen_by(&status.meta.namespace, &parent.namespace, attached);
                if !seen.iter().any(|s| std::ptr::eq(*s, status)) {
                    // The first GRPCRoute by namespace/name names the port's owner in messages.
                    let by = seen.first().map(|owner| owner.subject()).unwrap_or_default();
                    losses.push((h, p, port, by));
                }
            }
        }
    }
    for (h, p, port, by) in losses {
        if let Some(ParentStatus::Mesh { taken, .. }) = http.get_mut(h).and_then(|s| s.parents.get_mut(p)) {
            taken.push((port, by));
        }
    }
    for status in http.iter_mut() {
        let route_namespace = &status.meta.namespace;
        for parent in &mut status.parents {
            let ParentStatus::Mesh { parent, accepted, ports, taken, .. } = parent else { continue };
            if taken.is_empty() {
                continue;
            }
            ports.retain(|&port| !taken.iter().any(|(lost, _)| *lost == port));
            let lost = taken.iter().map(|(port, by)| format!("port {port}, taken by {by}")).collect::<Vec<_>>().join("; ");
            *accepted = if ports.is_empty() {
                Condition::failed(
                    "Conflicted",
                    format!(
                        "every port of Service {}/{} it would attach to is taken by a GRPCRoute: {lost} (GRPCRoute > HTTPRoute, GEP-1294)",
                        parent.namespace, parent.name
                    ),
                )
            } else {
                let kept = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
                let kept = if ports.len() == 1 { format!("port {kept}") } else { format!("ports {kept}") };
                Condition::ok(
                    "Accepted",
                    format!(
                        "attached to {kept} of Service {}/{}; not to {lost} (GRPCRoute > HTTPRoute, GEP-1294)",
                        parent.namespace, parent.name
                    ),
                )
            };
            if accepted.status && is_consumer_route(route_namespace, &parent.namespace) {
                accepted.message.push_str(&consumer_scope(route_namespace));
            }
        }
    }
}

fn route_status<'r>(
    m: &Manifests,
    kind: RouteKind,
    meta: &Meta,
    parents: &[ParentRef],
    hostnames: &[String],
    dropped: Vec<(usize, String)>,
    rules: impl Iterator<Item = (&'r [BackendRef], &'r [MirrorRef])>,
) -> RouteStatus {
    let mut unresolved = Vec::new();
    let mut rule_count = 0;
    for (rule, (backends, mirrors)) in rules.enumerate() {
        rule_count += 1;
        if dropped.iter().any(|(i, _)| *i == rule) {
            continue;
        }
        let refs = backends.iter().enumerate().map(|(i, b)| (format!("spec.rules[{rule}].backendRefs[{i}]"), b, Some(b.weight)));
        let mirrors = mirrors.iter().chain(backends.iter().flat_map(|b| &b.mirrors));
        for (path, b, weight) in refs.chain(mirrors.map(|mirror| (mirror.path.clone(), &mirror.to, None))) {
            if let Err((reason, message)) = resolve_backend(m, kind, b) {
                unresolved.push(Unresolved { path, reason, message, weight, source: b.source.clone() });
            }
        }
    }
    let resolved_refs = match unresolved.first() {
        None => Condition::ok("ResolvedRefs", "all backendRefs resolve"),
        Some(first) => Condition::failed(
            first.reason,
            unresolved.iter().map(|u| format!("{}: {}", u.path, u.message)).collect::<Vec<_>>().join("; "),
        ),
    };
    let parents = parents
        .iter()
        .map(|parent| {
            if !is_core_service(&parent.group, &parent.kind) {
                return ParentStatus::NotMesh { parent: parent.clone() };
            }
            let (accepted, ports) = if rule_count > 0 && dropped.len() == rule_count {
                let why: Vec<&str> = dropped.iter().map(|(_, why)| why.as_str()).collect();
                (Condition::failed("UnsupportedValue", format!("every rule is dropped: {}", why.join("; "))), Vec::new())
            } else {
                let (mut accepted, ports) = accept(m, kind, parent);
                if accepted.status && is_consumer_route(&meta.namespace, &parent.namespace) {
                    accepted.message.push_str(&consumer_scope(&meta.namespace));
                }
                (accepted, ports)
            };
            ParentStatus::Mesh {
                parent: parent.clone(),
                accepted,
                resolved_refs: resolved_refs.clone(),
                ports,
                taken: Vec::new(),
            }
        })
        .collect();
    RouteStatus { kind, meta: meta.clone(), parents, unresolved, hostnames: hostnames.to_vec(), dropped }
}

/// Whether a reference names a Kubernetes Service (`group: ""` or `core`, `kind: Service`).
pub fn is_core_service(group: &str, kind: &str) -> bool {
    (group.is_empty() || group == "core") && kind == "Service"
}

pub fn find_service<'m>(m: &'m Manifests, namespace: &str, name: &str) -> Option<&'m Service> {
    m.services.iter().find(|s| s.meta.namespace == namespace && s.meta.name == name)
}

/// Whether a route of `kind` attaches to the Service `parent` names, and to which of its ports.
/// The route may be in another namespace than the Service (a consumer route, GEP-1294): it
/// attaches all the same, and [`routes_seen_by`] decides which clients see it.
///
/// A parentRef with `port` attaches to that port only. Without `port`, an HTTPRoute attaches to
/// every TCP port of the Service, and a GRPCRoute to every port except those declared to carry
/// plain HTTP/1 or no HTTP at all (see [`not_grpc`]): so a Service with ports `http` (80) and
/// `grpc` (8080) gets a GRPCRoute on 8080 only and keeps its HTTPRoute on 80, and the product
/// page's two examples, which both attach to `echo-service` without a port, serve side by side.
fn accept(m: &Manifests, kind: RouteKind, parent: &ParentRef) -> (Condition, Vec<u16>) {
    let service_name = format!("Service {}/{}", parent.namespace, parent.name);
    let Some(service) = find_service(m, &parent.namespace, &parent.name) else {
        return (Condition::failed("NoMatchingParent", format!("{service_name} not found")), Vec::new());
    };
    let ports: Vec<u16> = match (&parent.section_name, parent.port) {
        // ParentReference.sectionName names a Service port; with `port` too, both must name it.
        (Some(section), port) => match service.ports.iter().find(|p| p.name.as_deref() == Some(section.as_str())) {
            Some(named) if port.is_none_or(|port| port == named.port) => vec![named.port],
            Some(named) => {
                let port = port.unwrap_or_default();
                return (
                    Condition::failed(
                        "NoMatchingParent",
                        format!("{service_name}'s port named {section} is port {}, not port {port}; sectionName and port must name the same port", named.port),
                    ),
                    Vec::new(),
                );
            }
            None => {
                let names: Vec<&str> = service.ports.iter().filter_map(|p| p.name.as_deref()).collect();
                let known = if names.is_empty() {
                    "it has no named ports".to_owned()
                } else {
                    format!("its port names: {}", names.join(", "))
                };
                return (
                    Condition::failed("NoMatchingParent", format!("{service_name} has no port named {section} ({known})")),
                    Vec::new(),
                );
            }
        },
        (None, Some(port)) if service.ports.iter().any(|p| p.port == port) => vec![port],
        (None, Some(port)) => {
            return (Condition::failed("NoMatchingParent", format!("{service_name} has no TCP port {port}")), Vec::new());
        }
        (None, None) => service.ports.iter().map(|p| p.port).collect(),
    };
    if ports.is_empty() {
        return (Condition::failed("NoMatchingParent", format!("{service_name} has no TCP ports")), Vec::new());
    }
    if kind == RouteKind::Grpc && parent.port.is_none() && parent.section_name.is_none() {
        let skipped: Vec<String> =
            service.ports.iter().filter_map(|p| not_grpc(p).map(|why| format!("port {} ({why})", p.port))).collect();
        let ports: Vec<u16> = service.ports.iter().filter(|p| not_grpc(p).is_none()).map(|p| p.port).collect();
        let skipped = skipped.join(", ");
        return match ports.as_slice() {
            [] => (
                Condition::failed(
                    "NoMatchingParent",
                    format!(
                        "{service_name} has no port for gRPC: {skipped}; a GRPCRoute parentRef without port skips ports declared HTTP/1 or not HTTP; give the parentRef a port to attach there anyway, or declare the gRPC port with appProtocol kubernetes.io/h2c"
                    ),
                ),
                Vec::new(),
            ),
            _ => {
                let list = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
                let scope = if ports.len() == 1 { format!("port {list}") } else { format!("ports {list}") };
                let mut message = format!("attached to {scope} of {service_name}");
                if !skipped.is_empty() {
                    message.push_str(&format!("; not to {skipped}: a GRPCRoute parentRef without port skips ports declared HTTP/1 or not HTTP"));
                }
                (Condition::ok("Accepted", message), ports)
            }
        };
    }
    let scope = match (ports.as_slice(), parent.port.is_some() || parent.section_name.is_some()) {
        ([port], true) => format!("port {port} of {service_name}"),
        _ => format!("every port of {service_name}"),
    };
    (Condition::ok("Accepted", format!("attached to {scope}")), ports)
}

/// The Envoy cluster serving a backendRef, or the Gateway API reason it does not resolve.
pub fn resolve_backend(m: &Manifests, route_kind: RouteKind, b: &BackendRef) -> Result<String, (&'static str, String)> {
    if !is_core_service(&b.group, &b.kind) {
        let group = if b.group.is_empty() { "core".to_owned() } else { b.group.clone() };
        return Err((
            "InvalidKind",
            format!("{} {:?} in group {group:?} is not supported; a backend must be a Service", b.kind, b.name),
        ));
    }
    // GEP-1294, namespace boundaries: a mesh route may send to a Service in any namespace
    // without a ReferenceGrant; it only augments traffic a client could send there anyway.
    let service_name = format!("Service {}/{}", b.namespace, b.name);
    let Some(service) = find_service(m, &b.namespace, &b.name) else {
        return Err(("BackendNotFound", format!("{service_name} not found")));
    };
    let Some(port) = b.port else {
        return Err(("BackendNotFound", format!("no port given for {service_name}")));
    };
    let Some(service_port) = service.ports.iter().find(|p| p.port == port) else {
        return Err(("BackendNotFound", format!("{service_name} has no TCP port {port}")));
    };
    if let Some(why) = protocol::unreachable_by(route_kind, service_port) {
        return Err(("UnsupportedProtocol", format!("{service_name}: {why}; a {} cannot reach it", kind_name(route_kind))));
    }
    Ok(cluster_name(&b.namespace, &b.name, port))
}
