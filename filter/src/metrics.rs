//! What the mesh counts, and under which tags: one counter family,
//! `envoy_meshroute_requests_total`, one increment per request that reached a Service port with
//! routes, tagged with the frontend, the route, the rule, the backendRef and what meshroute did
//! with the request ([`Outcome`]). Both data planes count under the same tag values: the filter
//! through proxy-wasm metrics ([`Series::stat_name`], tags extracted by Envoy's
//! `stats_config.stats_tags`, [`stats_tags`]), native mode through Envoy's stats access logger
//! fed by route and cluster metadata written from the same functions ([`frontend_tag`],
//! [`route_tag`], [`backend_tag`]).
//!
//! Series are bounded by the table: at most one per (frontend, rule, backendRef, outcome), and
//! only those a request has reached exist.

use crate::choice::Backend;
use crate::decision::{Cause, Decision};
use crate::table::{Frontend, Matched};

/// The counter family, as Prometheus shows it at Envoy's `/stats/prometheus`.
pub const REQUESTS_TOTAL: &str = "envoy_meshroute_requests_total";

/// A gauge holding the loaded table's version ([`table_version`]), in filter mode.
pub const TABLE_VERSION: &str = "envoy_meshroute_table_version";

/// The tags of [`REQUESTS_TOTAL`], in the order [`Series::tags`] gives them.
pub const TAG_NAMES: [&str; 6] = ["frontend", "route", "rule", "rule_name", "backend", "outcome"];

/// What meshroute did with a request to a Service port with routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Forwarded to the backendRef the weighted draw chose.
    Routed,
    /// Answered by the rule's RequestRedirect (3xx).
    Redirect,
    /// No rule matched: 404, or UNIMPLEMENTED for a gRPC call.
    NoRoute,
    /// The rule has no backendRef with a weight above 0: 500, or UNAVAILABLE.
    NoBackends,
    /// The draw chose a backendRef that does not resolve: 500, or UNAVAILABLE.
    InvalidBackend,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Routed, Outcome::Redirect, Outcome::NoRoute, Outcome::NoBackends, Outcome::InvalidBackend];

    /// The `outcome` tag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Routed => "routed",
            Outcome::Redirect => "redirect",
            Outcome::NoRoute => "no_route",
            Outcome::NoBackends => "no_backends",
            Outcome::InvalidBackend => "invalid_backend",
        }
    }
}

/// `NAMESPACE/NAME:PORT` of a Service port that has routes.
pub fn frontend_tag(namespace: &str, name: &str, port: u16) -> String {
    format!("{namespace}/{name}:{port}")
}

/// `NAMESPACE/NAME` of an HTTPRoute or GRPCRoute (one kind serves a frontend, so the name is
/// enough beside the frontend tag).
pub fn route_tag(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// `NAMESPACE/NAME:PORT` of a backendRef's Service port (`NAMESPACE/NAME` when it names none).
pub fn backend_tag(namespace: &str, name: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{namespace}/{name}:{port}"),
        None => format!("{namespace}/{name}"),
    }
}

/// The table's version as a number: FNV-1a (32 bits) over the table document's bytes, as
/// published. `meshroute sync` prints the same number for what it writes.
pub fn table_version(document: &[u8]) -> u32 {
    document.iter().fold(0x811c_9dc5u32, |hash, byte| (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193))
}

/// The series a request counts under: which rule of which frontend took it, which backendRef,
/// and the outcome. Borrowed from the table, so that finding a request's counter needs no
/// allocation ([`Series::key`]).
#[derive(Debug, Clone, Copy)]
pub struct Series<'t> {
    pub frontend: &'t Frontend,
    pub matched: Option<Matched<'t>>,
    pub backend: Option<&'t Backend>,
    pub outcome: Outcome,
}

/// Identifies a [`Series`] within the one table it comes from (by the addresses of its parts
/// in that table): the filter's key to a counter it has already defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    frontend: usize,
    rule: usize,
    backend: usize,
    outcome: Outcome,
}

impl<'t> Series<'t> {
    /// What `decision` counts under; `None` for a pass-through, which meshroute does not count.
    pub fn of(frontend: &'t Frontend, decision: &Decision<'t>) -> Option<Self> {
        let (matched, backend, outcome) = match decision {
            Decision::PassThrough => return None,
            Decision::Forward(forward) => (Some(forward.matched), Some(forward.backend), Outcome::Routed),
            Decision::LocalReply { cause, .. } => match *cause {
                Cause::Redirect(matched) => (Some(matched), None, Outcome::Redirect),
                Cause::NoRoute => (None, None, Outcome::NoRoute),
                Cause::NoBackend(matched) => (Some(matched), None, Outcome::NoBackends),
                Cause::Unresolved { matched, backend, .. } => (Some(matched), Some(backend), Outcome::InvalidBackend),
            },
        };
        Some(Series { frontend, matched, backend, outcome })
    }

    pub fn key(&self) -> SeriesKey {
        let address = |r: Option<*const ()>| r.map_or(0, |p| p as usize);
        SeriesKey {
            frontend: std::ptr::from_ref(self.frontend) as usize,
            rule: address(self.matched.map(|m| std::ptr::from_ref(m.rule).cast())),
            backend: address(self.backend.map(|b| std::ptr::from_ref(b).cast())),
            outcome: self.outcome,
        }
    }

    /// The tag values, in [`TAG_NAMES`] order. A tag that does not apply (the route of an
    /// unmatched request, the backendRef of a redirect, an unnamed rule) is empty.
    pub fn tags(&self) -> [String; 6] {
        let frontend = frontend_tag(&self.frontend.namespace, &self.frontend.name, self.frontend.port);
        let (route, rule, rule_name) = match self.matched {
            Some(m) => {
                (route_tag(&m.route.namespace, &m.route.name), m.rule_index.to_string(), m.rule.name.clone().unwrap_or_default())
            }
            None => Default::default(),
        };
        let backend = self.backend.map(|b| backend_tag(&b.target.namespace, &b.target.name, b.target.port)).unwrap_or_default();
        [frontend, route, rule, rule_name, backend, self.outcome.as_str().to_owned()]
    }

    /// The proxy-wasm metric name: the family, then `.TAG=VALUE;` for each tag, which
    /// [`stats_tags`] turn back into tags (values are Kubernetes names, ports and indexes, never
    /// `;`). Envoy prefixes it with `wasmcustom.` and leaves that out of Prometheus names.
    pub fn stat_name(&self) -> String {
        let mut name = String::from(REQUESTS_TOTAL);
        name.push('.');
        for (tag, value) in TAG_NAMES.iter().zip(self.tags()) {
            name.push_str(tag);
            name.push('=');
            name.push_str(&value);
            name.push(';');
        }
        name
    }
}

/// Envoy's `stats_config.stats_tags` for [`Series::stat_name`]: `(tag_name, regex)`, where
/// the regex's first group is what Envoy removes from the name and its second the tag's value.
/// Every bootstrap that runs the filter carries them; anchored on the filter's own names, so
/// Envoy tries them on no other stat.
pub fn stats_tags() -> Vec<(&'static str, String)> {
    TAG_NAMES
        .iter()
        .enumerate()
        .map(|(i, tag)| {
            let regex = if i == 0 {
                format!(r"^wasmcustom\.envoy_meshroute_\w+(\.{tag}=([^;]*);)")
            } else {
                format!(r"^wasmcustom\.envoy_meshroute_\w+\.(?:[^;]*;)*?({tag}=([^;]*);)")
            };
            (*tag, regex)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::decide;
    use crate::request::Request;
    use crate::table::RouteTable;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn table() -> RouteTable {
        let doc = serde_json::json!({
            "version": 2,
            "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0]}],
            "routes": [{"kind": "HTTPRoute", "namespace": "default", "name": "r.v2", "rules": [
                {"name": "split", "matches": [{"path": {"type": "PathPrefix", "value": "/split"}}],
                 "backends": [{"target": 0, "weight": 1}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/gone"}}],
                 "backends": [{"target": 1, "weight": 1}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/none"}}], "backends": []},
            ]}],
            "targets": [
                {"name": "v1", "namespace": "default", "port": 8080, "cluster": "c-v1"},
                {"name": "gone", "namespace": "other", "unresolved": "BackendNotFound"},
            ],
        });
        RouteTable::from_json(doc.to_string().as_bytes()).unwrap()
    }

    fn series_at<'t>(table: &'t RouteTable, path: &str, draw: u64) -> Option<(Series<'t>, [String; 6])> {
        let frontend = table.frontend_at("10.96.0.10:80")?;
        let request = Request { method: "GET", path_and_query: path, headers: &[] };
        let decision = decide(table, Some(frontend), &request, draw, |_| None::<Vec<u8>>);
        let series = Series::of(frontend, &decision)?;
        Some((series, series.tags()))
    }

    #[test]
    fn each_outcome_counts_under_its_rule_and_backend_ref() {
        let table = table();
        let tags = |path| series_at(&table, path, 0).unwrap().1;
        assert_eq!(tags("/split/a"), ["default/echo:80", "default/r.v2", "0", "split", "default/v1:8080", "routed"]);
        assert_eq!(tags("/gone"), ["default/echo:80", "default/r.v2", "1", "", "other/gone", "invalid_backend"]);
        assert_eq!(tags("/none"), ["default/echo:80", "default/r.v2", "2", "", "", "no_backends"]);
        assert_eq!(tags("/elsewhere"), ["default/echo:80", "", "", "", "", "no_route"]);
    }

    #[test]
    fn a_pass_through_is_not_counted() {
        let table = table();
        let request = Request { method: "GET", path_and_query: "/", headers: &[] };
        let decision = decide(&table, None, &request, 0, |_| None::<Vec<u8>>);
        assert!(matches!(decision, Decision::PassThrough));
        let frontend = table.frontend_at("10.96.0.10:80").unwrap();
        assert!(Series::of(frontend, &decision).is_none());
    }

    #[test]
    fn keys_tell_series_apart_and_repeat_for_the_same_one() {
        let table = table();
        let key = |path, draw| series_at(&table, path, draw).unwrap().0.key();
        assert_eq!(key("/split/a", 0), key("/split/b", u64::MAX));
        let keys = [key("/split", 0), key("/gone", 0), key("/none", 0), key("/x", 0)];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_stat_name_encodes_every_tag_in_order() {
        let table = table();
        let (series, _) = series_at(&table, "/split", 0).unwrap();
        assert_eq!(
            series.stat_name(),
            "envoy_meshroute_requests_total.frontend=default/echo:80;route=default/r.v2;rule=0;rule_name=split;\
             backend=default/v1:8080;outcome=routed;"
        );
    }

    /// What Envoy's tag extraction does with [`stats_tags`], by the same rules: each regex on the
    /// whole name, its first group removed, its second the value.
    #[test]
    fn the_stats_tags_recover_every_tag_and_leave_the_family_name() {
        let table = table();
        for path in ["/split", "/gone", "/none", "/nowhere"] {
            let (series, tags) = series_at(&table, path, 0).unwrap();
            let name = format!("wasmcustom.{}", series.stat_name());
            let mut removed = vec![false; name.len()];
            for ((tag, regex), expected) in stats_tags().iter().zip(&tags) {
                let captures = regex_lite::Regex::new(regex).unwrap().captures(&name).unwrap();
                let (whole, value) = (captures.get(1).unwrap(), captures.get(2).unwrap());
                assert_eq!(value.as_str(), expected, "{tag} of {name}");
                removed[whole.range()].iter_mut().for_each(|r| *r = true);
            }
            let left: String = name.char_indices().filter(|(i, _)| !removed[*i]).map(|(_, c)| c).collect();
            assert_eq!(left, format!("wasmcustom.{REQUESTS_TOTAL}"));
        }
    }

    #[test]
    fn the_table_version_is_fnv_1a_of_the_document() {
        assert_eq!(table_version(b""), 0x811c_9dc5);
        assert_eq!(table_version(b"a"), 0xe40c_292c);
        assert_ne!(table_version(b"{\"version\":1}"), table_version(b"{\"version\":2}"));
    }
}
