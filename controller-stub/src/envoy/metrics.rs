//! Native mode's counters: the same family and tag values as the filter's
//! ([`meshroute_filter::metrics`]), counted by Envoy's stats access logger
//! (`envoy.access_loggers.stats`) from metadata: each route carries its frontend, route and rule
//! (and, when it answers itself, its outcome), each Service port's cluster its backend tag.
//!
//! Why not the routes' own stats (`stat_prefix`): Envoy counts them only for requests sent
//! upstream, so none of meshroute's own answers would count, and its default tag extraction
//! cuts a route's stat prefix at the first `.`, which route names may contain (both measured
//! on 1.40.0). The access logger counts every request, with its tags given rather than parsed.
//!
//! One gap: Envoy answers the share of an unresolved backendRef without knowing which
//! backendRef it was (`cluster_not_found`), so those requests count with an empty `backend`.

use serde_json::{json, Value};

use meshroute_filter::metrics::{backend_tag, frontend_tag, route_tag, Outcome, REQUESTS_TOTAL, TAG_NAMES};
use meshroute_filter::table::{DocumentMatch, Frontend};

/// The metadata namespace of the routes and clusters.
const METADATA: &str = "meshroute";

/// Route metadata naming what a request that takes the route counts under. `entry` is `None`
/// for the frontend's 404; `outcome` is `None` for a route that forwards (its cluster says
/// `routed`).
pub fn route_metadata(frontend: &Frontend, entry: Option<&DocumentMatch>, outcome: Option<Outcome>) -> Value {
    let mut tags = json!({ "frontend": frontend_tag(&frontend.namespace, &frontend.name, frontend.port) });
    if let Some(entry) = entry {
        tags["route"] = json!(route_tag(&entry.route.namespace, &entry.route.name));
        tags["rule"] = json!(entry.rule_index.to_string());
        if let Some(name) = &entry.rule.name {
            tags["rule_name"] = json!(name);
        }
    }
    if let Some(outcome) = outcome {
        tags["outcome"] = json!(outcome.as_str());
    }
    json!({ "filter_metadata": { METADATA: tags } })
}

/// Cluster metadata: the backend tag of the Service port it serves.
pub fn cluster_metadata(namespace: &str, name: &str, port: u16) -> Value {
    json!({ "filter_metadata": { METADATA: {
        "backend": backend_tag(namespace, name, Some(port)),
        "outcome": Outcome::Routed.as_str(),
    } } })
}

/// The connection manager's access loggers that count [`REQUESTS_TOTAL`]: one for every request
/// whose route carries meshroute's metadata (pass-through routes carry none), one for the
/// shares of unresolved backendRefs, which no cluster describes.
pub fn access_logs() -> Value {
    let counted = "has(xds.route_metadata.filter_metadata.meshroute)";
    json!([
        logger(&format!("{counted} && response.code_details != 'cluster_not_found'"), |tag| match tag {
            "backend" => format!("%CLUSTER_METADATA({METADATA}:backend)%"),
            "outcome" => format!("%METADATA(ROUTE:{METADATA}:outcome)%%CLUSTER_METADATA({METADATA}:outcome)%"),
            _ => format!("%METADATA(ROUTE:{METADATA}:{tag})%"),
        },),
        // Envoy refuses an empty format; no cluster was chosen, so this one is always empty.
        logger(&format!("{counted} && response.code_details == 'cluster_not_found'"), |tag| match tag {
            "backend" => format!("%CLUSTER_METADATA({METADATA}:backend)%"),
            "outcome" => Outcome::InvalidBackend.as_str().to_owned(),
            _ => format!("%METADATA(ROUTE:{METADATA}:{tag})%"),
        }),
    ])
}

/// A stats access logger counting the requests `filter` (a CEL expression) lets through, with
/// each tag's value format from `value_format`. A missing value makes an empty tag.
fn logger(filter: &str, value_format: impl Fn(&str) -> String) -> Value {
    let name = REQUESTS_TOTAL.strip_prefix("envoy_meshroute_").unwrap_or(REQUESTS_TOTAL);
    let tags: Vec<Value> = TAG_NAMES.iter().map(|tag| json!({ "name": tag, "value_format": value_format(tag) })).collect();
    json!({
        "name": "envoy.access_loggers.stats",
        "filter": { "extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": filter,
            },
        } },
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config",
            // Envoy names it STAT_PREFIX.NAME, and Prometheus envoy_STAT_PREFIX_NAME.
            "stat_prefix": METADATA,
            "counters": [{ "stat": { "name": name, "tags": tags }, "value_fixed": 1 }],
        },
    })
}
