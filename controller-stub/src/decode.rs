//! From YAML documents to validated resources, as the API server and the Gateway API CRDs would
//! validate them: types, required fields, unknown fields, enums, limits and formats. Every
//! problem is collected; nothing stops at the first one. Each document stands alone: one that
//! does not validate is rejected by itself (its key kept, so that its last good version can stand
//! in for it), and a file that does not parse is rejected as a whole. Cross-resource checks
//! (duplicates, shared ClusterIPs) run on the resources that remain.
//!
//! Kinds meshroute does not read are skipped with a note (a `Deployment` beside the Services is
//! no mistake); only a kind that looks like a misspelling of one it reads is an error.

use crate::diag::{Diagnostic, Severity};
use crate::load::SourceFile;
#[cfg(test)]
use crate::model::Manifests;
use crate::model::{
    Endpoint, EndpointPort, EndpointSlice, Meta, Resource, ResourceKey, Service, ServicePort, Source, TargetPort,
};
use crate::reader::{join, Fields, Reader};
use crate::route::{decode_grpc_route, decode_http_route};
use crate::syntax;
use crate::yaml::{self, Node};
use std::collections::HashMap;

pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// The kinds meshroute reads, with the apiVersions accepted for each; the first is the one
/// to suggest.
const SUPPORTED: &[(&str, &[&str])] = &[
    ("Service", &["v1"]),
    ("EndpointSlice", &["discovery.k8s.io/v1"]),
    ("HTTPRoute", &["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]),
    ("GRPCRoute", &["gateway.networking.k8s.io/v1"]),
];

const SUPPORTED_TEXT: &str = "Service (v1), EndpointSlice (discovery.k8s.io/v1), HTTPRoute and GRPCRoute \
(gateway.networking.k8s.io/v1)";

/// Gateway API kinds meshroute does not serve: north-south Gateways, other route types, policies.
/// A `ReferenceGrant` is among them: mesh routes need none (GEP-1294).
const OTHER_GATEWAY_API_KINDS: &[&str] = &[
    "Gateway",
    "GatewayClass",
    "ListenerSet",
    "XListenerSet",
    "TCPRoute",
    "TLSRoute",
    "UDPRoute",
    "ReferenceGrant",
    "BackendTLSPolicy",
    "BackendLBPolicy",
    "XBackendTrafficPolicy",
    "XMesh",
];

/// Common cluster-scoped kinds, named without a namespace in messages.
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "GatewayClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
];

/// What decoding a directory's files gives.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Every resource that validated, in file order.
    pub resources: Vec<Resource>,
    /// What did not validate.
    pub rejected: Vec<Rejected>,
    /// Resources that decoded despite errors: never published, but worth the shadowed-rule
    /// check (the product page's echo-route has both a missing apiVersion and a rule that can
    /// never match).
    pub drafts: Vec<Resource>,
    /// Errors, warnings and notes.
    pub diagnostics: Vec<Diagnostic>,
}

/// A resource, or a whole file, that does not validate, with its first error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    Resource {
        key: ResourceKey,
        file: std::path::PathBuf,
        error: String,
        /// `metadata.generation`, if it is an integer.
        generation: Option<i64>,
    },
    /// A file that does not parse: which resources it holds is unknown.
    File { file: std::path::PathBuf, error: String },
}

/// Decodes every document of every file; then the cross-resource checks, which reject the later
/// of two resources that clash. `unreadable`: files that could not be read, each rejected whole.
pub fn decode(files: &[SourceFile], unreadable: Vec<Diagnostic>) -> Decoded {
    let mut out = Decoded::default();
    for error in unreadable {
        out.rejected.push(Rejected::File { file: error.file.clone(), error: error.to_string() });
        out.diagnostics.push(error);
    }
    for file in files {
        match yaml::parse(&file.text) {
            Ok(documents) => {
                for document in &documents {
                    decode_one(&file.path, document, &mut out, None);
                }
            }
            // Typos that break the structure (a list item indented too far, `key:value`) are
            // repaired, each reported, so that what follows is validated too; what the repaired
            // text holds is a guess and is never published.
            Err(e) => {
                let error = Diagnostic::error(&file.path, e.line, e.message.clone());
                let first = error.to_string();
                match crate::typo::repair(&file.text) {
                    Some((text, repairs)) => {
                        out.diagnostics.extend(repairs.into_iter().map(|r| Diagnostic::error(&file.path, r.line, r.message)));
                        let first = out.diagnostics.last().map_or(first, ToString::to_string);
                        for document in yaml::parse(&text).unwrap_or_default() {
                            decode_one(&file.path, &document, &mut out, Some(&first));
                        }
                        out.rejected.push(Rejected::File { file: file.path.clone(), error: first });
                    }
                    None => {
                        out.diagnostics.push(error);
                        out.rejected.push(Rejected::File { file: file.path.clone(), error: first });
                    }
                }
            }
        }
    }
    reject_duplicates(&mut out);
    reject_shared_cluster_ips(&mut out);
    out
}

/// Decodes one document into `out`: its resource if it validates, else its rejection.
/// `broken_file`: the file's first error when the document comes from repaired text.
fn decode_one(file: &std::path::Path, document: &Node, out: &mut Decoded, broken_file: Option<&str>) {
    let mut reader = Reader::new(file);
    let resource = decode_document(&mut reader, document);
    let first_error = reader.diagnostics.iter().find(|d| d.severity == Severity::Error).map(ToString::to_string);
    let error = broken_file.map(str::to_owned).or(first_error);
    match (resource, error) {
        (Some(resource), None) => out.resources.push(resource),
        (draft, Some(error)) => {
            if let Some(key) = raw_key(document) {
                let generation = raw(document, "metadata").and_then(|m| raw(m, "generation")).and_then(|g| g.scalar()?.as_int());
                out.rejected.push(Rejected::Resource { key, file: file.to_path_buf(), error, generation });
            }
            out.drafts.extend(draft);
        }
        (None, None) => {}
    }
    out.diagnostics.append(&mut reader.diagnostics);
}

/// The key of a document of a kind meshroute reads, from its raw metadata.
fn raw_key(document: &Node) -> Option<ResourceKey> {
    let text = |node: Option<&Node>| node.and_then(|n| n.scalar()).and_then(|s| s.as_str()).map(str::to_owned);
    let kind = text(raw(document, "kind"))?;
    let kind = SUPPORTED.iter().map(|(k, _)| *k).find(|k| *k == kind)?;
    let meta = raw(document, "metadata");
    let name = text(meta.and_then(|m| raw(m, "name")))?;
    let namespace = text(meta.and_then(|m| raw(m, "namespace"))).unwrap_or_else(|| "default".to_owned());
    Some(ResourceKey { kind, namespace, name })
}

fn decode_document(r: &mut Reader<'_>, document: &Node) -> Option<Resource> {
    let kind = raw(document, "kind").and_then(|k| k.scalar()).and_then(|s| s.as_str()).map(str::to_owned);
    // Name the resource in messages as early as possible, even before it validates.
    if let Some(kind) = &kind {
        let meta = raw(document, "metadata");
        let text = |key: &str| meta.and_then(|m| raw(m, key)).and_then(|v| v.scalar()).map(|s| s.text.clone());
        if let Some(name) = text("name") {
            r.subject = Some(match text("namespace") {
                Some(namespace) => format!("{kind} {namespace}/{name}"),
                None if CLUSTER_SCOPED_KINDS.contains(&kind.as_str()) => format!("{kind} {name}"),
                None => format!("{kind} default/{name}"),
            });
        }
    }
    let allowed: &[&str] = if kind.as_deref() == Some("EndpointSlice") {
        &["apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"]
    } else {
        &["apiVersion", "kind", "metadata", "spec", "status"]
    };
    if let Some(kind) = kind.as_deref().filter(|kind| !SUPPORTED.iter().any(|(k, _)| k == kind)) {
        other_kind(r, document, kind);
        return None;
    }
    let top = r.fields(document, "", allowed)?;
    let Some(kind) = kind else {
        match top.get("kind") {
            Some(node) => {
                r.string(node, "kind");
            }
            None => r.error(top.line(), "kind", format!("required; meshroute reads {SUPPORTED_TEXT}")),
        }
        return None;
    };
    let &(_, versions) = SUPPORTED.iter().find(|(k, _)| *k == kind)?;
    let api_version = match r.required(&top, "apiVersion", "") {
        Some(node) => r.string(node, "apiVersion").map(|v| (v, node.line)),
        None => None,
    };
    let (api_version, line) = api_version?;
    if !versions.contains(&api_version.as_str()) {
        let suggestion = versions.first().copied().unwrap_or_default();
        let group = suggestion.split_once('/').map_or("", |(g, _)| g);
        let message = if !api_version.contains('/') && api_version == group {
            format!("{api_version:?} has no version; did you mean {suggestion}?")
        } else {
            format!("{api_version:?} is not supported for {kind}; use {}", versions.join(" or "))
        };
        r.error(line, "apiVersion", message);
        // The group is right: carry on as the suggested version to report everything at once.
        if api_version != group || group.is_empty() {
            return None;
        }
    }
    let name_check: fn(&str) -> Result<(), String> =
        if kind == "Service" { syntax::dns1035_label } else { syntax::dns_subdomain };
    let meta = decode_meta(r, &top, name_check)?;
    r.subject = Some(format!("{kind} {}/{}", meta.namespace, meta.name));
    match kind.as_str() {
        "Service" => decode_service(r, &top, meta).map(Resource::Service),
        "EndpointSlice" => decode_endpoint_slice(r, &top, meta).map(Resource::EndpointSlice),
        "HTTPRoute" => decode_http_route(r, &top, meta).map(Resource::HttpRoute),
        "GRPCRoute" => decode_grpc_route(r, &top, meta).map(Resource::GrpcRoute),
        other => {
            r.error(line, "kind", format!("internal error: {other} is listed as supported but not decoded"));
            None
        }
    }
}

/// A document of a kind meshroute does not read: an error if the kind looks like a misspelling
/// of one it reads (`HTTPRoutes`, `GrpcRoute`), otherwise a note that it is skipped.
fn other_kind(r: &mut Reader<'_>, document: &Node, kind: &str) {
    let line = raw(document, "kind").map_or(document.line, |n| n.line);
    let api_version = raw(document, "apiVersion").and_then(|n| n.scalar()).map(|s| s.text.clone()).unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let gateway_api = group.starts_with("gateway.networking") || OTHER_GATEWAY_API_KINDS.contains(&kind);
    let names: Vec<&str> = SUPPORTED.iter().map(|(k, _)| *k).collect();
    match syntax::nearest(kind, &names) {
        Some(near) if !OTHER_GATEWAY_API_KINDS.contains(&kind) => {
            r.error(
                line,
                "kind",
                format!("kind {kind:?} is not one meshroute reads (did you mean {near}?); it reads {SUPPORTED_TEXT}"),
            );
        }
        _ if gateway_api => r.note(
            line,
            "",
            format!("skipped: meshroute serves HTTPRoutes and GRPCRoutes attached to Services (the mesh), not {kind}"),
        ),
        _ => r.note(line, "", "skipped: plays no part in mesh routing"),
    }
}

/// The value of `key` in a mapping node, unchecked.
fn raw<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        yaml::Value::Map(entries) => entries.iter().find(|(k, _)| k.scalar().is_some_and(|s| s.text == key)).map(|(_, v)| v),
        _ => None,
    }
}

/// `metadata`, with `namespace` defaulted to `default`. `None` if the name is unusable.
fn decode_meta(r: &mut Reader<'_>, top: &Fields<'_>, name_check: fn(&str) -> Result<(), String>) -> Option<Meta> {
    let node = r.required(top, "metadata", "")?;
    let fields = r.fields(
        node,
        "metadata",
        &[
            "name",
            "namespace",
            "labels",
            "annotations",
            "creationTimestamp",
            "uid",
            "resourceVersion",
            "generation",
            "managedFields",
            "ownerReferences",
            "finalizers",
            "generateName",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ],
    )?;
    let name = r.req_string(&fields, "name", "metadata");
    let name_line = fields.get("name").map_or(fields.line(), |n| n.line);
    let name = name.filter(|n| r.check(name_line, "metadata.name", name_check(n)));
    let namespace = match r.opt_string(&fields, "namespace", "metadata") {
        Some(ns) => {
            let line = fields.get("namespace").map_or(fields.line(), |n| n.line);
            r.check(line, "metadata.namespace", syntax::dns_label(&ns)).then_some(ns)?
        }
        None => "default".to_owned(),
    };
    for key in ["labels", "annotations"] {
        if let Some(map) = fields.get(key) {
            string_map(r, map, &join("metadata", key));
        }
    }
    let creation_timestamp = fields.get("creationTimestamp").and_then(|node| {
        let path = "metadata.creationTimestamp";
        let text = r.string(node, path)?;
        match syntax::rfc3339_utc(&text) {
            Ok(utc) => Some(utc),
            Err(message) => {
                r.error(node.line, path, message);
                None
            }
        }
    });
    let generation = fields.get("generation").and_then(|n| r.int(n, "metadata.generation", 0, i64::MAX)).unwrap_or(0);
    Some(Meta {
        namespace,
        name: name?,
        creation_timestamp,
        generation,
        source: Source { file: r.file.to_path_buf(), line: node.line },
        last_good: None,
    })
}

/// A `map[string]string` (labels, annotations, selectors).
fn string_map(r: &mut Reader<'_>, node: &Node, path: &str) -> Vec<(String, String)> {
    let yaml::Value::Map(entries) = &node.value else {
        r.error(node.line, path, format!("must be a mapping, found {}", node.describe()));
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|(k, v)| {
            let key = r.string(k, path)?;
            let value = if v.is_null() { Some(String::new()) } else { r.string(v, &format!("{path}[{key:?}]")) }?;
            Some((key, value))
        })
        .collect()
}

fn decode_service(r: &mut Reader<'_>, top: &Fields<'_>, meta: Meta) -> Option<Service> {
    let spec_node = r.required(top, "spec", "")?;
    let spec = r.fields(
        spec_node,
        "spec",
        &[
            "type",
            "clusterIP",
            "clusterIPs",
            "ports",
            "selector",
            "sessionAffinity",
            "sessionAffinityConfig",
            "externalIPs",
            "externalName",
            "externalTrafficPolicy",
            "internalTrafficPolicy",
            "ipFamilies",
            "ipFamilyPolicy",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "loadBalancerClass",
            "allocateLoadBalancerNodePorts",
            "healthCheckNodePort",
            "publishNotReadyAddresses",
            "trafficDistribution",
        ],
    )?;
    let kind =
        spec.get("type").and_then(|n| r.one_of(n, "spec.type", &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]));
    if let Some(selector) = spec.get("selector") {
        string_map(r, selector, "spec.selector");
    }
    let cluster_ip = spec.get("clusterIP").and_then(|n| {
        let ip = r.string(n, "spec.clusterIP")?;
        (ip.is_empty() || ip == "None" || r.check(n.line, "spec.clusterIP", syntax::ip(&ip).map(drop))).then_some(ip)
    });
    let mut cluster_ips: Vec<String> = Vec::new();
    if let Some(node) = spec.get("clusterIPs") {
        let items = r.list(node, "spec.clusterIPs", Some(2));
        for (i, item) in items.iter().enumerate() {
            let path = format!("spec.clusterIPs[{i}]");
            if let Some(ip) = r.string(item, &path) {
                if ip == "None" && items.len() > 1 {
                    r.error(item.line, &path, "\"None\" must be the only entry");
                } else if ip == "None" || r.check(item.line, &path, syntax::ip(&ip).map(drop)) {
                    cluster_ips.push(ip);
                }
            }
        }
        if let (Some(ip), Some(first)) = (&cluster_ip, cluster_ips.first()) {
            if !ip.is_empty() && ip != first {
                r.error(node.line, "spec.clusterIPs", format!("the first entry must equal spec.clusterIP ({ip:?})"));
            }
        }
    }
    if cluster_ips.is_empty() {
        cluster_ips.extend(cluster_ip.clone().filter(|ip| !ip.is_empty()));
    }
    if kind.as_deref() == Some("ExternalName") || cluster_ips.first().is_some_and(|ip| ip == "None") {
        cluster_ips.clear();
    }
    let mut ports = Vec::new();
    let port_nodes = spec.get("ports").map(|n| r.list(n, "spec.ports", None)).unwrap_or_default();
    let mut seen_names: HashMap<String, usize> = HashMap::new();
    let mut seen_ports: HashMap<(u16, String), usize> = HashMap::new();
    for (i, node) in port_nodes.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let Some(f) = r.fields(node, &path, &["name", "protocol", "port", "targetPort", "nodePort", "appProtocol"]) else {
            continue;
        };
        let name = r.opt_string(&f, "name", &path);
        let name_line = f.get("name").map_or(f.line(), |n| n.line);
        if let Some(n) = &name {
            if r.check(name_line, &join(&path, "name"), syntax::dns_label(n)) {
                if let Some(first) = seen_names.insert(n.clone(), i) {
                    r.error(name_line, &join(&path, "name"), format!("{n:?} is already the name of spec.ports[{first}]"));
                }
            }
        } else if port_nodes.len() > 1 {
            r.error(f.line(), &join(&path, "name"), "required when the Service has more than one port");
        }
        let protocol = f
            .get("protocol")
            .and_then(|n| r.one_of(n, &join(&path, "protocol"), &["TCP", "UDP", "SCTP"]))
            .unwrap_or_else(|| "TCP".to_owned());
        let port = r.required(&f, "port", &path).and_then(|n| r.port(n, &join(&path, "port")));
        if let Some(port) = port {
            if let Some(first) = seen_ports.insert((port, protocol.clone()), i) {
                r.error(f.line(), &join(&path, "port"), format!("{port}/{protocol} is already spec.ports[{first}]"));
            }
        }
        let target_port = f.get("targetPort").and_then(|n| target_port(r, n, &join(&path, "targetPort")));
        if let Some(n) = f.get("nodePort") {
            r.port(n, &join(&path, "nodePort"));
        }
        let app_protocol = r.opt_string(&f, "appProtocol", &path);
        if let (Some(port), "TCP") = (port, protocol.as_str()) {
            ports.push(ServicePort { name, port, target_port, app_protocol });
        }
    }
    // A headless or ExternalName Service may have no ports; any other needs one.
    if port_nodes.is_empty() && kind.as_deref() != Some("ExternalName") && cluster_ip.as_deref() != Some("None") {
        r.error(spec.line(), "spec.ports", "required: a Service needs at least one port");
    }
    Some(Service { meta, cluster_ips, ports })
}

fn target_port(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<TargetPort> {
    let scalar = node.scalar();
    if scalar.and_then(|s| s.as_int()).is_some() {
        return r.port(node, path).map(TargetPort::Number);
    }
    let name = r.string(node, path)?;
    if let Ok(number) = name.parse::<u16>() {
        // A quoted number is how `kubectl` writes an int-or-string that holds a number.
        return (number > 0).then_some(TargetPort::Number(number));
    }
    r.check(node.line, path, syntax::iana_service_name(&name)).then_some(TargetPort::Name(name))
}

fn decode_endpoint_slice(r: &mut Reader<'_>, top: &Fields<'_>, meta: Meta) -> Option<EndpointSlice> {
    let service_name = raw(top.node, "metadata")
        .and_then(|m| raw(m, "labels"))
        .and_then(|labels| raw(labels, "kubernetes.io/service-name"))
        .and_then(|v| v.scalar().and_then(|s| s.as_str()).map(str::to_owned));
    if service_name.is_none() {
        r.error(
            meta.source.line,
            "metadata.labels",
            "the label kubernetes.io/service-name is required: it names the Service these endpoints serve",
        );
    }
    let address_type = r.required(top, "addressType", "").and_then(|n| r.one_of(n, "addressType", &["IPv4", "IPv6", "FQDN"]));
    let mut ports = Vec::new();
    if let Some(node) = top.get("ports") {
        for (i, item) in r.list(node, "ports", Some(20000)).iter().enumerate() {
            let path = format!("ports[{i}]");
            let Some(f) = r.fields(item, &path, &["name", "port", "protocol", "appProtocol"]) else { continue };
            let name = r.opt_string(&f, "name", &path);
            let protocol = f.get("protocol").and_then(|n| r.one_of(n, &join(&path, "protocol"), &["TCP", "UDP", "SCTP"]));
            r.opt_string(&f, "appProtocol", &path);
            let port = r.required(&f, "port", &path).and_then(|n| r.port(n, &join(&path, "port")));
            if let (Some(port), None | Some("TCP")) = (port, protocol.as_deref()) {
                ports.push(EndpointPort { name, port });
            }
        }
    }
    let mut endpoints = Vec::new();
    if let Some(node) = top.get("endpoints") {
        for (i, item) in r.list(node, "endpoints", Some(1000)).iter().enumerate() {
            let path = format!("endpoints[{i}]");
            let Some(f) = r.fields(
                item,
                &path,
                &["addresses", "conditions", "hostname", "nodeName", "zone", "targetRef", "hints", "deprecatedTopology"],
            ) else {
                continue;
            };
            let mut addresses = Vec::new();
            if let Some(list) = r.required(&f, "addresses", &path) {
                let apath = join(&path, "addresses");
                let items = r.list(list, &apath, Some(100));
                if items.is_empty() {
                    r.error(list.line, &apath, "must have at least one address");
                }
                for (j, a) in items.iter().enumerate() {
                    let apath = format!("{apath}[{j}]");
                    let Some(address) = r.string(a, &apath) else { continue };
                    let valid = match (address_type.as_deref(), syntax::ip(&address)) {
                        (Some("IPv4"), Ok(ip)) => ip.is_ipv4(),
                        (Some("IPv6"), Ok(ip)) => ip.is_ipv6(),
                        (Some("FQDN"), _) => syntax::dns_subdomain(&address).is_ok(),
                        (None, _) => true,
                        _ => false,
                    };
                    if valid {
                        addresses.push(address);
                    } else {
                        let expected = address_type.as_deref().unwrap_or_default();
                        r.error(a.line, &apath, format!("{address:?} is not an {expected} address"));
                    }
                }
            }
            let mut ready = true;
            if let Some(c) = f.get("conditions") {
                let cpath = join(&path, "conditions");
                if let Some(cf) = r.fields(c, &cpath, &["ready", "serving", "terminating"]) {
                    if let Some(n) = cf.get("ready") {
                        ready = r.bool(n, &join(&cpath, "ready")).unwrap_or(true);
                    }
                    for key in ["serving", "terminating"] {
                        if let Some(n) = cf.get(key) {
                            r.bool(n, &join(&cpath, key));
                        }
                    }
                }
            }
            endpoints.push(Endpoint { addresses, ready });
        }
    }
    Some(EndpointSlice { meta, service_name: service_name?, ports, endpoints })
}

/// A `group` field (an API group; `core` is a synonym of the empty core group).
pub fn group_field(r: &mut Reader<'_>, f: &Fields<'_>, path: &str, required: bool) -> Option<String> {
    let node = if required { r.required(f, "group", path)? } else { f.get("group")? };
    let path = join(path, "group");
    let group = r.string(node, &path)?;
    r.check(node.line, &path, syntax::group(&group)).then_some(group)
}

pub fn kind_field(r: &mut Reader<'_>, f: &Fields<'_>, path: &str, required: bool) -> Option<String> {
    let node = if required { r.required(f, "kind", path)? } else { f.get("kind")? };
    let path = join(path, "kind");
    let kind = r.string(node, &path)?;
    r.check(node.line, &path, syntax::kind(&kind)).then_some(kind)
}

/// Two resources of the same kind, namespace and name: the second is an error naming the first,
/// and left out.
fn reject_duplicates(out: &mut Decoded) {
    let mut seen: HashMap<ResourceKey, Source> = HashMap::new();
    let mut errors = Vec::new();
    out.resources.retain(|resource| {
        let (key, meta) = (resource.key(), resource.meta());
        match seen.get(&key) {
            Some(first) => {
                errors.push(
                    Diagnostic::error(&meta.source.file, meta.source.line, format!("defined twice: also at {}", at(first)))
                        .subject(key.to_string()),
                );
                false
            }
            None => {
                seen.insert(key, meta.source.clone());
                true
            }
        }
    });
    out.diagnostics.extend(errors);
}

/// Two Services claiming one ClusterIP would make the frontend ambiguous: the second is an
/// error, and rejected.
fn reject_shared_cluster_ips(out: &mut Decoded) {
    let mut seen: HashMap<std::net::IpAddr, (String, Source)> = HashMap::new();
    let mut rejected = Vec::new();
    out.resources.retain(|resource| {
        let Resource::Service(service) = resource else { return true };
        let owner = format!("Service {}/{}", service.meta.namespace, service.meta.name);
        let clash = service.cluster_ips.iter().find_map(|ip| {
            let addr = ip.parse::<std::net::IpAddr>().ok()?;
            seen.get(&addr).map(|(first, source)| format!("ClusterIP {ip} is also the ClusterIP of {first} ({})", at(source)))
        });
        match clash {
            Some(message) => {
                let error = Diagnostic::error(&service.meta.source.file, service.meta.source.line, message)
                    .subject(owner)
                    .field("spec.clusterIP");
                rejected.push((resource.key(), service.meta.generation, error));
                false
            }
            None => {
                for addr in service.cluster_ips.iter().filter_map(|ip| ip.parse().ok()) {
                    seen.insert(addr, (owner.clone(), service.meta.source.clone()));
                }
                true
            }
        }
    });
    for (key, generation, error) in rejected {
        let generation = Some(generation);
        out.rejected.push(Rejected::Resource { key, file: error.file.clone(), error: error.to_string(), generation });
        out.diagnostics.push(error);
    }
}

/// `file:line` of a source.
pub fn at(source: &Source) -> String {
    format!("{}:{}", source.file.display(), source.line)
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "bad_manifest_tests.rs"]
mod bad_manifest_tests;

/// Decodes one file's text as if it were at `path`; for tests. The manifests hold what
/// validated; the diagnostics are every error, warning and note.
#[cfg(test)]
pub fn decode_text(path: &str, text: &str) -> (Manifests, Vec<String>) {
    use std::path::Path;
    let files = [SourceFile { path: Path::new(path).to_path_buf(), text: text.to_owned() }];
    let decoded = decode(&files, Vec::new());
    let mut m = Manifests::default();
    for resource in decoded.resources {
        m.push(resource);
    }
    (m, decoded.diagnostics.iter().map(ToString::to_string).collect())
}
