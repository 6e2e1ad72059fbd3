//! From YAML documents to [`Manifests`], validating as the API server and the Gateway API
//! CRDs would: types, required fields, unknown fields, enums, limits and formats. Every problem
//! is collected; nothing stops at the first one. Cross-resource checks (duplicates, shared
//! ClusterIPs) run at the end.

use crate::diag::Diagnostic;
use crate::load::SourceFile;
use crate::model::{
    Endpoint, EndpointPort, EndpointSlice, GrantFrom, GrantTo, Manifests, Meta, ReferenceGrant, Service, ServicePort, Source,
    TargetPort,
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
    ("ReferenceGrant", &["gateway.networking.k8s.io/v1beta1"]),
];

const SUPPORTED_TEXT: &str = "Service (v1), EndpointSlice (discovery.k8s.io/v1), HTTPRoute and GRPCRoute \
(gateway.networking.k8s.io/v1), ReferenceGrant (gateway.networking.k8s.io/v1beta1)";

/// Decodes every document of every file. The manifests hold whatever decoded cleanly; the
/// diagnostics are errors only.
pub fn decode(files: &[SourceFile]) -> (Manifests, Vec<Diagnostic>) {
    let mut manifests = Manifests::default();
    let mut diagnostics = Vec::new();
    for file in files {
        match yaml::parse(&file.text) {
            Ok(documents) => {
                for document in &documents {
                    let mut reader = Reader::new(&file.path);
                    decode_document(&mut reader, document, &mut manifests);
                    diagnostics.append(&mut reader.diagnostics);
                }
            }
            // Typos that break the structure (a list item indented too far, `key:value`) are
            // repaired, each reported, so that what follows is validated too.
            Err(e) => match crate::typo::repair(&file.text) {
                Some((text, repairs)) => {
                    diagnostics.extend(repairs.into_iter().map(|r| Diagnostic::error(&file.path, r.line, r.message)));
                    for document in yaml::parse(&text).unwrap_or_default() {
                        let mut reader = Reader::new(&file.path);
                        decode_document(&mut reader, &document, &mut manifests);
                        diagnostics.append(&mut reader.diagnostics);
                    }
                }
                None => diagnostics.push(Diagnostic::error(&file.path, e.line, e.message)),
            },
        }
    }
    diagnostics.extend(duplicates(&manifests));
    diagnostics.extend(shared_cluster_ips(&manifests));
    (manifests, diagnostics)
}

fn decode_document(r: &mut Reader<'_>, document: &Node, manifests: &mut Manifests) {
    let kind = raw(document, "kind").and_then(|k| k.scalar()).and_then(|s| s.as_str()).map(str::to_owned);
    // Name the resource in messages as early as possible, even before it validates.
    if let Some(kind) = &kind {
        let meta = raw(document, "metadata");
        let text = |key: &str| meta.and_then(|m| raw(m, key)).and_then(|v| v.scalar()).map(|s| s.text.clone());
        if let Some(name) = text("name") {
            let namespace = text("namespace").unwrap_or_else(|| "default".to_owned());
            r.subject = Some(format!("{kind} {namespace}/{name}"));
        }
    }
    let allowed: &[&str] = if kind.as_deref() == Some("EndpointSlice") {
        &["apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"]
    } else {
        &["apiVersion", "kind", "metadata", "spec", "status"]
    };
    let Some(top) = r.fields(document, "", allowed) else { return };
    let Some(kind) = kind else {
        match top.get("kind") {
            Some(node) => {
                r.string(node, "kind");
            }
            None => r.error(top.line(), "kind", format!("required; meshroute reads {SUPPORTED_TEXT}")),
        }
        return;
    };
    let Some(&(_, versions)) = SUPPORTED.iter().find(|(k, _)| *k == kind) else {
        let line = top.get("kind").map_or(top.line(), |n| n.line);
        let names: Vec<&str> = SUPPORTED.iter().map(|(k, _)| *k).collect();
        let mut message = format!("kind {kind:?} is not supported; meshroute reads {SUPPORTED_TEXT}");
        if let Some(near) = syntax::nearest(&kind, &names) {
            message.push_str(&format!(" (did you mean {near}?)"));
        }
        r.error(line, "kind", message);
        return;
    };
    let api_version = match r.required(&top, "apiVersion", "") {
        Some(node) => r.string(node, "apiVersion").map(|v| (v, node.line)),
        None => None,
    };
    let Some((api_version, line)) = api_version else { return };
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
            return;
        }
    }
    let name_check: fn(&str) -> Result<(), String> =
        if kind == "Service" { syntax::dns1035_label } else { syntax::dns_subdomain };
    let Some(meta) = decode_meta(r, &top, name_check) else { return };
    r.subject = Some(format!("{kind} {}/{}", meta.namespace, meta.name));
    match kind.as_str() {
        "Service" => {
            if let Some(service) = decode_service(r, &top, meta) {
                manifests.services.push(service);
            }
        }
        "EndpointSlice" => {
            if let Some(slice) = decode_endpoint_slice(r, &top, meta) {
                manifests.endpoint_slices.push(slice);
            }
        }
        "HTTPRoute" => {
            if let Some(route) = decode_http_route(r, &top, meta) {
                manifests.http_routes.push(route);
            }
        }
        "GRPCRoute" => {
            if let Some(route) = decode_grpc_route(r, &top, meta) {
                manifests.grpc_routes.push(route);
            }
        }
        _ => {
            if let Some(grant) = decode_reference_grant(r, &top, meta) {
                manifests.reference_grants.push(grant);
            }
        }
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
    Some(Meta { namespace, name: name?, creation_timestamp, source: Source { file: r.file.to_path_buf(), line: node.line } })
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

fn decode_reference_grant(r: &mut Reader<'_>, top: &Fields<'_>, meta: Meta) -> Option<ReferenceGrant> {
    let spec_node = r.required(top, "spec", "")?;
    let spec = r.fields(spec_node, "spec", &["from", "to"])?;
    let mut from = Vec::new();
    if let Some(node) = r.required(&spec, "from", "spec") {
        for (i, item) in r.list(node, "spec.from", Some(16)).iter().enumerate() {
            let path = format!("spec.from[{i}]");
            let Some(f) = r.fields(item, &path, &["group", "kind", "namespace"]) else { continue };
            let group = group_field(r, &f, &path, true);
            let kind = kind_field(r, &f, &path, true);
            let namespace = r.req_string(&f, "namespace", &path);
            if let (Some(group), Some(kind), Some(namespace)) = (group, kind, namespace) {
                from.push(GrantFrom { group, kind, namespace });
            }
        }
    }
    let mut to = Vec::new();
    if let Some(node) = r.required(&spec, "to", "spec") {
        for (i, item) in r.list(node, "spec.to", Some(16)).iter().enumerate() {
            let path = format!("spec.to[{i}]");
            let Some(f) = r.fields(item, &path, &["group", "kind", "name"]) else { continue };
            let group = group_field(r, &f, &path, true);
            let kind = kind_field(r, &f, &path, true);
            let name = r.opt_string(&f, "name", &path);
            if let (Some(group), Some(kind)) = (group, kind) {
                to.push(GrantTo { group, kind, name });
            }
        }
    }
    Some(ReferenceGrant { meta, from, to })
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

/// Two resources of the same kind, namespace and name: the second is an error naming the first.
fn duplicates(m: &Manifests) -> Vec<Diagnostic> {
    let metas = m
        .services
        .iter()
        .map(|s| ("Service", &s.meta))
        .chain(m.endpoint_slices.iter().map(|s| ("EndpointSlice", &s.meta)))
        .chain(m.http_routes.iter().map(|s| ("HTTPRoute", &s.meta)))
        .chain(m.grpc_routes.iter().map(|s| ("GRPCRoute", &s.meta)))
        .chain(m.reference_grants.iter().map(|s| ("ReferenceGrant", &s.meta)));
    let mut seen: HashMap<(&str, &str, &str), &Meta> = HashMap::new();
    let mut out = Vec::new();
    for (kind, meta) in metas {
        if let Some(first) = seen.insert((kind, &meta.namespace, &meta.name), meta) {
            out.push(
                Diagnostic::error(&meta.source.file, meta.source.line, format!("defined twice: also at {}", at(&first.source)))
                    .subject(format!("{kind} {}/{}", meta.namespace, meta.name)),
            );
            seen.insert((kind, &meta.namespace, &meta.name), first);
        }
    }
    out
}

/// Two Services claiming one ClusterIP would make the frontend ambiguous.
fn shared_cluster_ips(m: &Manifests) -> Vec<Diagnostic> {
    let mut seen: HashMap<std::net::IpAddr, &Service> = HashMap::new();
    let mut out = Vec::new();
    for service in &m.services {
        for ip in &service.cluster_ips {
            let Ok(addr) = ip.parse::<std::net::IpAddr>() else { continue };
            match seen.get(&addr) {
                Some(first) if !std::ptr::eq(*first, service) => out.push(
                    Diagnostic::error(
                        &service.meta.source.file,
                        service.meta.source.line,
                        format!(
                            "ClusterIP {ip} is also the ClusterIP of Service {}/{} ({})",
                            first.meta.namespace,
                            first.meta.name,
                            at(&first.meta.source)
                        ),
                    )
                    .subject(format!("Service {}/{}", service.meta.namespace, service.meta.name))
                    .field("spec.clusterIP"),
                ),
                _ => {
                    seen.insert(addr, service);
                }
            }
        }
    }
    out
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

/// Decodes one file's text as if it were at `path`; for tests.
#[cfg(test)]
pub fn decode_text(path: &str, text: &str) -> (Manifests, Vec<String>) {
    use std::path::Path;
    let files = [SourceFile { path: Path::new(path).to_path_buf(), text: text.to_owned() }];
    let (m, d) = decode(&files);
    (m, d.iter().map(ToString::to_string).collect())
}
