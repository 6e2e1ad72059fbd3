//! RequestMirror in Envoy's terms: a route's `request_mirror_policies`, the same in filter mode
//! (one route per mirror set, which the filter selects: see [`meshroute_filter::mirror`]) and
//! in native mode (on the rule's own route).
//!
//! Measured on Envoy 1.40.0: a mirrored copy carries the request as the router sends it (after
//! the route's header changes, without the headers the route removes), plus `x-envoy-internal`
//! and the client's address in `x-forwarded-for`; its authority gets a `-shadow` suffix unless
//! `disable_shadow_host_suffix_append` says otherwise, which it does here: the API's copy is the
//! request itself.

use serde_json::{json, Value};

use meshroute_filter::mirror::{Mirror, MirrorSet, MIRROR_HEADER};
use meshroute_filter::SELECTION_HEADER;

/// The policy that copies requests to `mirror`; sampled by Envoy in millionths, its finest
/// `FractionalPercent` (a share of 1/3 copies 333,333 requests in a million).
pub fn policy(mirror: &Mirror) -> Value {
    let mut policy = json!({ "cluster": mirror.cluster, "disable_shadow_host_suffix_append": true });
    if !mirror.fraction.is_all() {
        policy["runtime_fraction"] =
            json!({ "default_value": { "numerator": mirror.fraction.per_million(), "denominator": "MILLION" } });
    }
    policy
}

/// Filter mode: the route of each mirror set, to go before the route that forwards without
/// copies. Each takes a request the filter chose a cluster for and named the set of, forwards
/// it like that route and copies it to the set's mirrors.
pub fn selection_routes(sets: &[MirrorSet]) -> Vec<Value> {
    sets.iter()
        .map(|set| {
            json!({
                "name": format!("mirror-{}", set.header_value()),
                "match": {
                    "prefix": "/",
                    "headers": [
                        { "name": SELECTION_HEADER, "present_match": true },
                        { "name": MIRROR_HEADER, "string_match": { "exact": set.header_value() } },
                    ],
                },
                "route": {
                    "cluster_header": SELECTION_HEADER,
                    "timeout": "0s",
                    "request_mirror_policies": set.mirrors.iter().map(policy).collect::<Vec<_>>(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use meshroute_filter::mirror::Fraction;

    use super::*;

    fn mirror(numerator: u32, denominator: u32) -> Mirror {
        Mirror {
            name: "m".into(),
            namespace: "default".into(),
            port: Some(80),
            cluster: "outbound|80||m.default.svc.cluster.local".into(),
            fraction: Fraction { numerator, denominator },
        }
    }

    #[test]
    fn a_share_below_all_is_sampled_in_millionths_and_the_authority_is_kept() {
        assert_eq!(
            policy(&mirror(1, 1)),
            json!({"cluster": "outbound|80||m.default.svc.cluster.local", "disable_shadow_host_suffix_append": true})
        );
        assert_eq!(
            policy(&mirror(1, 4))["runtime_fraction"],
            json!({"default_value": {"numerator": 250_000, "denominator": "MILLION"}})
        );
        assert_eq!(policy(&mirror(0, 100))["runtime_fraction"]["default_value"]["numerator"], json!(0));
    }

    /// Each set's route goes before the route without copies, takes only the requests the filter
    /// named the set for, and the filter's headers never leave Envoy.
    #[test]
    fn a_mirror_set_route_precedes_the_plain_selection_and_the_headers_are_removed() {
        let doc = serde_json::from_value(json!({
            "version": 2,
            "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0]}],
            "routes": [{"kind": "HTTPRoute", "namespace": "default", "name": "r", "rules": [{"backends": [
                {"target": 0, "weight": 1,
                 "filters": {"mirrors": [{"name": "m", "namespace": "default", "port": 80, "cluster": "c-m",
                                          "fraction": {"numerator": 1, "denominator": 2}}]}},
            ]}]}],
            "targets": [{"name": "v1", "namespace": "default", "port": 80, "cluster": "c-v1"}],
        }))
        .unwrap();
        let table = meshroute_filter::table::RouteTable::compile(&doc).unwrap();
        let config = super::super::listeners::route_config(Some("c-echo"), table.mirror_sets());
        assert_eq!(
            config["request_headers_to_remove"],
            json!([SELECTION_HEADER, MIRROR_HEADER, meshroute_filter::DESTINATION_HEADER])
        );
        let routes = config["virtual_hosts"][0]["routes"].as_array().unwrap();
        let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
        let set = table.mirror_sets()[0].header_value();
        assert_eq!(names, [format!("mirror-{set}").as_str(), "selected", "pass-through"]);
        assert_eq!(routes[0]["match"]["headers"][1], json!({"name": MIRROR_HEADER, "string_match": {"exact": set}}));
        assert_eq!(routes[0]["route"]["request_mirror_policies"][0]["cluster"], json!("c-m"));
        assert_eq!(
            routes[0]["route"]["request_mirror_policies"][0]["runtime_fraction"]["default_value"]["numerator"],
            json!(500_000)
        );
    }
}
