//! [`Manifests`] and their route statuses to the route table the filter runs. Deterministic:
//! routes sorted by namespace, name and kind, frontends by namespace, name and port, so the same
//! manifests always give the same bytes (and Envoy sees no change when there is none).
//!
//! A table is a client's: each Service port holds the routes a client in one namespace sees
//! there, its own consumer routes or else the Service's producer routes (GEP-1294), and of one
//! kind only (GRPCRoute > HTTPRoute); see [`routes_seen_by`].

use std::collections::{BTreeMap, HashMap, HashSet};

use meshroute_filter::document::{
    BackendDoc, BackendTargetDoc, FiltersDoc, FrontendDoc, GrpcMethodDoc, MatchDoc, MirrorDoc, PassThroughDoc, RetryDoc,
    RouteDoc, RouteKind, RuleDoc, TableDocument, TimeoutsDoc, ValueMatchType,
};

use crate::model::{BackendRef, GrpcMatch, Manifests, Meta, MirrorRef};
use crate::resolve::{find_service, resolve_backend, routes_seen_by, Attachment, RouteStatus};

/// A route of either kind as the table sees it: its rules' matches and backends.
struct Compiled<'m> {
    kind: RouteKind,
    meta: &'m Meta,
    /// Each rule's matches, backendRefs and filters.
    rules: Vec<CompiledRule<'m>>,
}

/// One rule as the table sees it: its matches, backendRefs, filters, timeouts and retry.
struct CompiledRule<'m> {
    name: Option<&'m String>,
    /// Dropped (a filter meshroute does not implement): it keeps its matches and answers 500.
    dropped: bool,
    matches: Vec<MatchDoc>,
    backend_refs: &'m [BackendRef],
    filters: &'m FiltersDoc,
    mirrors: &'m [MirrorRef],
    timeouts: Option<&'m TimeoutsDoc>,
    retry: Option<&'m RetryDoc>,
}

/// The table for a client in `client_namespace`: on each Service port, the routes that client
/// sees there ([`routes_seen_by`], GEP-1294), and only the routes it sees somewhere.
pub fn compile<'s>(m: &Manifests, statuses: impl IntoIterator<Item = &'s RouteStatus>, client_namespace: &str) -> TableDocument {
    let mut attached: BTreeMap<Attachment<'_>, Vec<&RouteStatus>> = BTreeMap::new();
    for status in statuses {
        for place in status.attachments() {
            attached.entry(place).or_default().push(status);
        }
    }
    let seen: Vec<(Attachment<'_>, Vec<&RouteStatus>)> = attached
        .into_iter()
        .map(|(place, routes)| (place, routes_seen_by(client_namespace, place.0, &routes)))
        .filter(|(_, routes)| !routes.is_empty())
        .collect();
    let mut taken: HashSet<*const RouteStatus> = HashSet::new();
    let mut routes: Vec<(Compiled<'_>, &RouteStatus)> = seen
        .iter()
        .flat_map(|(_, routes)| routes)
        .filter(|status| taken.insert(std::ptr::from_ref(**status)))
        .filter_map(|status| compiled(m, status).map(|c| (c, *status)))
        .collect();
    routes.sort_by(|a, b| {
        (&a.0.meta.namespace, &a.0.meta.name, kind_order(a.0.kind)).cmp(&(
            &b.0.meta.namespace,
            &b.0.meta.name,
            kind_order(b.0.kind),
        ))
    });
    let index: HashMap<*const RouteStatus, usize> =
        routes.iter().enumerate().map(|(i, (_, status))| (std::ptr::from_ref(*status), i)).collect();

    let frontends: Vec<FrontendDoc> = seen
        .iter()
        .map(|((namespace, name, port), seen)| {
            let mut routes: Vec<usize> = seen.iter().filter_map(|s| index.get(&std::ptr::from_ref(*s)).copied()).collect();
            // A route with two parentRefs to one Service port is there once.
            routes.sort_unstable();
            routes.dedup();
            FrontendDoc {
                addresses: find_service(m, namespace, name).map(|s| s.cluster_ips.clone()).unwrap_or_default(),
                namespace: (*namespace).to_owned(),
                name: (*name).to_owned(),
                port: *port,
                routes,
            }
        })
        .collect();
    let mut targets = Targets::default();
    let routes = routes.iter().map(|(route, _)| route_doc(m, route, &mut targets)).collect();
    let pass_through = pass_through(m, &frontends);
    TableDocument { frontends, routes, targets: targets.list, pass_through, ..TableDocument::default() }
}

/// The table's backend targets, each distinct one once, in the order rules first name them.
#[derive(Default)]
pub struct Targets {
    pub list: Vec<BackendTargetDoc>,
    index: HashMap<BackendTargetDoc, usize>,
}

impl Targets {
    /// The index of `target` in [`Targets::list`], which gets it if it is new.
    pub fn index_of(&mut self, target: BackendTargetDoc) -> usize {
        if let Some(&i) = self.index.get(&target) {
            return i;
        }
        self.list.push(target.clone());
        self.index.insert(target, self.list.len() - 1);
        self.list.len() - 1
    }
}

/// Every other Service port with its own cluster, so that one listener can serve every
/// Service address (local mode): the addresses each Service owns ([`Manifests::address_owners`],
/// as the listener binds them) that are not a frontend's.
fn pass_through(m: &Manifests, frontends: &[FrontendDoc]) -> Vec<PassThroughDoc> {
    let ip = |address: &String| address.parse::<std::net::IpAddr>().ok();
    let routed: HashSet<(std::net::IpAddr, u16)> =
        frontends.iter().flat_map(|f| f.addresses.iter().filter_map(ip).map(move |a| (a, f.port))).collect();
    let owners = m.address_owners();
    let mut out = Vec::new();
    for service in &m.services {
        for port in &service.ports {
            let ours = |a: &std::net::IpAddr| owners.get(&(*a, port.port)).is_some_and(|owner| std::ptr::eq(*owner, service));
            let addresses: Vec<String> = service
                .cluster_ips
                .iter()
                .filter(|address| ip(address).is_some_and(|a| ours(&a) && !routed.contains(&(a, port.port))))
                .cloned()
                .collect();
            if !addresses.is_empty() {
                let cluster = crate::model::cluster_name(&service.meta.namespace, &service.meta.name, port.port);
                out.push(PassThroughDoc { port: port.port, addresses, cluster });
            }
        }
    }
    out
}

fn kind_order(kind: RouteKind) -> u8 {
    match kind {
        RouteKind::Http => 0,
        RouteKind::Grpc => 1,
    }
}

/// The route a status is about, with its matches in the table's terms.
fn compiled<'m>(m: &'m Manifests, s: &RouteStatus) -> Option<Compiled<'m>> {
    let named = |meta: &Meta| meta.namespace == s.meta.namespace && meta.name == s.meta.name;
    match s.kind {
        RouteKind::Http => m.http_routes.iter().find(|r| named(&r.meta)).map(|r| Compiled {
            kind: RouteKind::Http,
            meta: &r.meta,
            rules: r
                .rules
                .iter()
                .map(|rule| CompiledRule {
                    name: rule.name.as_ref(),
                    dropped: rule.dropped.is_some(),
                    matches: rule.matches.clone(),
                    backend_refs: &rule.backend_refs,
                    filters: &rule.filters,
                    mirrors: &rule.mirrors,
                    timeouts: rule.timeouts.as_ref(),
                    retry: rule.retry.as_ref(),
                })
                .collect(),
        }),
        RouteKind::Grpc => m.grpc_routes.iter().find(|r| named(&r.meta)).map(|r| Compiled {
            kind: RouteKind::Grpc,
            meta: &r.meta,
            rules: r
                .rules
                .iter()
                .map(|rule| CompiledRule {
                    name: rule.name.as_ref(),
                    dropped: rule.dropped.is_some(),
                    matches: rule.matches.iter().map(grpc_match_doc).collect(),
                    backend_refs: &rule.backend_refs,
                    filters: &rule.filters,
                    mirrors: &rule.mirrors,
                    timeouts: None,
                    retry: None,
                })
                .collect(),
        }),
    }
}

/// A GRPCRoute match: only `grpc_method` and `headers`.
pub fn grpc_match_doc(g: &GrpcMatch) -> MatchDoc {
    MatchDoc {
        grpc_method: g.method.as_ref().map(|m| GrpcMethodDoc {
            kind: if m.regex { ValueMatchType::RegularExpression } else { ValueMatchType::Exact },
            service: m.service.clone(),
            method: m.method.clone(),
        }),
        headers: g.headers.clone(),
        ..MatchDoc::default()
    }
}

fn route_doc(m: &Manifests, route: &Compiled<'_>, targets: &mut Targets) -> RouteDoc {
    let rules = route
        .rules
        .iter()
        .map(|rule| {
            if rule.dropped {
                return RuleDoc { name: rule.name.cloned(), matches: rule.matches.clone(), ..RuleDoc::default() };
            }
            RuleDoc {
                name: rule.name.cloned(),
                matches: rule.matches.clone(),
                filters: with_mirrors(m, route.kind, rule.filters, rule.mirrors),
                timeouts: rule.timeouts.cloned().map(Box::new),
                retry: rule.retry.cloned().map(Box::new),
                backends: rule
                    .backend_refs
                    .iter()
                    .map(|b| {
                        let (cluster, unresolved) = match resolve_backend(m, route.kind, b) {
                            Ok(cluster) => (Some(cluster), None),
                            Err((reason, _)) => (None, Some(reason.to_owned())),
                        };
                        let target = BackendTargetDoc {
                            name: b.name.clone(),
                            namespace: b.namespace.clone(),
                            port: b.port,
                            cluster,
                            unresolved,
                        };
                        BackendDoc {
                            target: targets.index_of(target),
                            weight: b.weight,
                            filters: with_mirrors(m, route.kind, &b.filters, &b.mirrors),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    RouteDoc {
        kind: route.kind,
        namespace: route.meta.namespace.clone(),
        name: route.meta.name.clone(),
        creation_timestamp: route.meta.creation_timestamp.clone(),
        rules,
    }
}

/// `filters` with those of its RequestMirrors that resolve. Those that do not are the route's
/// `ResolvedRefs` status, and copy nothing: a mirror never changes what happens to the request.
fn with_mirrors(m: &Manifests, kind: RouteKind, filters: &FiltersDoc, mirrors: &[MirrorRef]) -> FiltersDoc {
    let mirrors = mirrors
        .iter()
        .filter_map(|mirror| {
            let cluster = resolve_backend(m, kind, &mirror.to).ok()?;
            let to = &mirror.to;
            Some(MirrorDoc {
                name: to.name.clone(),
                namespace: to.namespace.clone(),
                port: to.port,
                cluster,
                fraction: mirror.fraction,
            })
        })
        .collect();
    FiltersDoc { mirrors, ..filters.clone() }
}
