//! [`Manifests`] and their route statuses to the route table the filter runs. Deterministic:
//! routes sorted by namespace and name, frontends by namespace, name and port, so the same
//! manifests always give the same bytes (and Envoy sees no change when there is none).

use std::collections::{BTreeMap, BTreeSet};

use meshroute_filter::document::{BackendDoc, FrontendDoc, RouteDoc, RouteKind, RuleDoc, TableDocument, TABLE_VERSION};

use crate::model::{HttpRoute, Manifests};
use crate::resolve::{find_service, resolve_backend, RouteStatus};

/// The table for every accepted HTTPRoute. GRPCRoutes are validated and get a status, but are
/// not routed yet.
pub fn compile(m: &Manifests, statuses: &[RouteStatus]) -> TableDocument {
    let mut routes: Vec<(&HttpRoute, &RouteStatus)> = statuses
        .iter()
        .filter(|s| s.kind == RouteKind::Http && s.attachments().next().is_some())
        .filter_map(|s| {
            m.http_routes
                .iter()
                .find(|r| r.meta.namespace == s.meta.namespace && r.meta.name == s.meta.name)
                .map(|r| (r, s))
        })
        .collect();
    routes.sort_by(|a, b| (&a.0.meta.namespace, &a.0.meta.name).cmp(&(&b.0.meta.namespace, &b.0.meta.name)));

    let mut frontends: BTreeMap<(String, String, u16), BTreeSet<usize>> = BTreeMap::new();
    for (index, (_, status)) in routes.iter().enumerate() {
        for (namespace, name, port) in status.attachments() {
            frontends.entry((namespace.to_owned(), name.to_owned(), port)).or_default().insert(index);
        }
    }
    let frontends = frontends
        .into_iter()
        .map(|((namespace, name, port), routes)| FrontendDoc {
            addresses: find_service(m, &namespace, &name).map(|s| s.cluster_ips.clone()).unwrap_or_default(),
            namespace,
            name,
            port,
            routes: routes.into_iter().collect(),
        })
        .collect();
    let routes = routes.iter().map(|(route, _)| route_doc(m, route)).collect();
    TableDocument { version: TABLE_VERSION, frontends, routes }
}

fn route_doc(m: &Manifests, route: &HttpRoute) -> RouteDoc {
    let rules = route
        .rules
        .iter()
        .map(|rule| RuleDoc {
            matches: rule.matches.clone(),
            backends: rule
                .backend_refs
                .iter()
                .map(|b| {
                    let (cluster, unresolved) = match resolve_backend(m, RouteKind::Http, &route.meta.namespace, b) {
                        Ok(cluster) => (Some(cluster), None),
                        Err((reason, _)) => (None, Some(reason.to_owned())),
                    };
                    BackendDoc {
                        name: b.name.clone(),
                        namespace: b.namespace.clone(),
                        port: b.port,
                        weight: b.weight,
                        cluster,
                        unresolved,
                    }
                })
                .collect(),
        })
        .collect();
    RouteDoc {
        kind: RouteKind::Http,
        namespace: route.meta.namespace.clone(),
        name: route.meta.name.clone(),
        creation_timestamp: route.meta.creation_timestamp.clone(),
        rules,
    }
}
