//! The route table as `meshroute` publishes it and the filter receives it: a versioned JSON
//! document, close to the Gateway API resources it comes from. It is plain data; every check
//! happens when it is turned into a [`crate::table::RouteTable`].

use serde::{Deserialize, Serialize};

/// The only document version this build understands.
pub const TABLE_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDocument {
    pub version: u32,
    /// Service ports that have at least one attached route. Ports not listed pass through. All
    /// the routes of one frontend are of one kind: a GRPCRoute takes its port from HTTPRoutes.
    #[serde(default)]
    pub frontends: Vec<FrontendDoc>,
    #[serde(default)]
    pub routes: Vec<RouteDoc>,
    /// What the rules' backendRefs point at, each distinct one once (in the order rules first
    /// name them); a [`BackendDoc`] names its own by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<BackendTargetDoc>,
    /// Whether the filter counts requests ([`crate::metrics`]); `meshroute sync --no-metrics`
    /// turns it off. Absent means on.
    #[serde(default = "on", skip_serializing_if = "is_on")]
    pub metrics: bool,
    /// Service ports without routes, each with its own cluster: where the filter sends their
    /// requests when one listener serves every Service address (local mode). A destination in
    /// neither list is left to Envoy's default route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_through: Vec<PassThroughDoc>,
    /// Whether every listener running the filter with this table writes each request's
    /// destination (the connection's local address, as `destination.address` gives it) in
    /// [`crate::DESTINATION_HEADER`], overwriting any copy a client sent: the filter then reads
    /// it as a header, which costs less than the property (a CEL evaluation per request). Only
    /// a renderer that also writes those listeners sets it (`meshroute sync`, `serve`); absent,
    /// the filter reads the property and ignores the header, which nothing guards then.
    #[serde(default, skip_serializing_if = "is_off")]
    pub destination_header: bool,
}

/// An empty table of this build's version, with counting on: what manifests without routes
/// compile to, and where a document built field by field starts.
impl Default for TableDocument {
    fn default() -> Self {
        TableDocument {
            version: TABLE_VERSION,
            frontends: Vec::new(),
            routes: Vec::new(),
            targets: Vec::new(),
            metrics: true,
            pass_through: Vec::new(),
            destination_header: false,
        }
    }
}

impl TableDocument {
    /// What `backend` points at; `None` when its index is out of range (a table that does not
    /// compile).
    pub fn target(&self, backend: &BackendDoc) -> Option<&BackendTargetDoc> {
        self.targets.get(backend.target)
    }
}

/// The plugin configuration of a filter instance that holds no table of its own:
/// `{"table":"shared"}`. Its requests are routed by the table its VM holds, which another
/// instance's configuration (the table holder's) brings, so that the table is held once however
/// many listeners run the filter: Istio has one outbound listener per port, and Envoy keeps two
/// copies of a filter's configuration per listener.
pub const SHARED_TABLE_CONFIG: &str = r#"{"table":"shared"}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedTableDoc {
    table: SharedTable,
}

#[derive(Deserialize)]
enum SharedTable {
    #[serde(rename = "shared")]
    Shared,
}

/// Whether a plugin configuration is [`SHARED_TABLE_CONFIG`] (in any JSON spelling) rather than
/// a table document. A table document fails at its first field, so this costs nothing there.
pub fn is_shared_table_config(config: &[u8]) -> bool {
    matches!(serde_json::from_slice::<SharedTableDoc>(config), Ok(SharedTableDoc { table: SharedTable::Shared }))
}

fn on() -> bool {
    true
}

fn is_on(value: &bool) -> bool {
    *value
}

fn is_off(value: &bool) -> bool {
    !*value
}

/// One Service port in its frontend role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendDoc {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    /// The Service's ClusterIPs; traffic is matched to the frontend by these and `port`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Indexes into [`TableDocument::routes`] of the routes attached to this port.
    pub routes: Vec<usize>,
}

/// A Service port without routes: requests to its addresses go to `cluster` unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassThroughDoc {
    pub port: u16,
    /// The Service's ClusterIPs.
    pub addresses: Vec<String>,
    /// The Envoy cluster of the Service port.
    pub cluster: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteKind {
    #[serde(rename = "HTTPRoute")]
    Http,
    #[serde(rename = "GRPCRoute")]
    Grpc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDoc {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    /// RFC 3339 in UTC (`2024-05-01T10:00:00Z`); older routes win ties. Absent sorts last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    pub rules: Vec<RuleDoc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// `name` (a rule's SectionName), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ORed; empty means "every request" (HTTPRoute: PathPrefix `/`).
    #[serde(default)]
    pub matches: Vec<MatchDoc>,
    #[serde(default)]
    pub backends: Vec<BackendDoc>,
    /// The rule's filters, applied to every request it takes.
    #[serde(default, skip_serializing_if = "FiltersDoc::is_empty")]
    pub filters: FiltersDoc,
    /// `timeouts` (GEP-1742); boxed, as most rules have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Box<TimeoutsDoc>>,
    /// `retry` (GEP-1731); boxed, as most rules have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Box<RetryDoc>>,
}

/// `HTTPRouteTimeouts`, in milliseconds; 0 means no timeout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request_ms: Option<u64>,
}

/// `HTTPRouteRetry`: the status codes retried, how many retries, the back-off in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryDoc {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

/// A rule's or a backendRef's route filters (Gateway API `HTTPRouteFilter`, `GRPCRouteFilter`),
/// each boxed: most rules and backends have none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersDoc {
    /// `RequestHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<Box<HeaderModifierDoc>>,
    /// `ResponseHeaderModifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<Box<HeaderModifierDoc>>,
    /// `RequestRedirect`: the filter answers with a redirect (a rule's, never a backendRef's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Box<RedirectDoc>>,
    /// `URLRewrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Box<RewriteDoc>>,
    /// `RequestMirror`, in order; only mirrors whose backendRef resolves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorDoc>,
}

/// `HTTPRequestMirrorFilter`, resolved: the Service port the copies go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorDoc {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The Envoy cluster of that Service port.
    pub cluster: String,
    /// The share of requests copied (`percent` is `percent/100`); absent: every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<FractionDoc>,
}

/// `Fraction`: `numerator/denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FractionDoc {
    pub numerator: u32,
    pub denominator: u32,
}

/// `HTTPRequestRedirectFilter`; what is left out keeps the request's (see [`crate::url`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifierDoc>,
    /// 301, 302 (the API's default), 303, 307 or 308.
    pub status_code: u16,
}

/// `HTTPURLRewriteFilter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifierDoc>,
}

/// `HTTPPathModifier`. `ReplacePrefixMatch` replaces the PathPrefix of the rule's one match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathModifierDoc {
    ReplaceFullPath(String),
    ReplacePrefixMatch(String),
}

impl FiltersDoc {
    pub fn is_empty(&self) -> bool {
        *self == FiltersDoc::default()
    }
}

/// `HTTPHeaderFilter`: headers to set (replace), add (append) and remove, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderModifierDoc {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderDoc {
    pub name: String,
    pub value: String,
}

/// One entry of a rule's `matches`; its fields are ANDed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatchDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<ValueMatchDoc>,
    /// GRPCRoute only (where `path`, `method` and `query_params` stay empty): the gRPC service
    /// and method, matched against a request's `/SERVICE/METHOD` path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_method: Option<GrpcMethodDoc>,
}

/// A GRPCRoute `method` match: at least one of `service` and `method`; both are matched
/// case-sensitively against the whole name, literally (`Exact`) or as regexes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcMethodDoc {
    #[serde(rename = "type")]
    pub kind: ValueMatchType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathMatchType {
    Exact,
    PathPrefix,
    RegularExpression,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMatchDoc {
    #[serde(rename = "type")]
    pub kind: PathMatchType,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueMatchType {
    Exact,
    RegularExpression,
}

/// A header or query-parameter match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMatchDoc {
    #[serde(rename = "type")]
    pub kind: ValueMatchType,
    pub name: String,
    pub value: String,
}

/// What a backendRef points at: a Service port, and the Envoy cluster that serves it
/// (`cluster`), or why the reference does not resolve (`unresolved`); exactly one of the two.
/// A backend whose target does not resolve keeps its share of traffic and answers 500.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTargetDoc {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Why the reference does not resolve (`BackendNotFound`, `InvalidKind`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
}

/// One backendRef: its target, an index into [`TableDocument::targets`] (read it with
/// [`TableDocument::target`]), its weight and its own filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendDoc {
    pub target: usize,
    pub weight: u32,
    /// The backendRef's own filters, applied only to requests sent to it, after the rule's.
    #[serde(default, skip_serializing_if = "FiltersDoc::is_empty")]
    pub filters: FiltersDoc,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_shared_table_configuration_is_told_from_a_table_document() {
        assert!(is_shared_table_config(SHARED_TABLE_CONFIG.as_bytes()));
        assert!(is_shared_table_config(br#" { "table" : "shared" } "#));
        for other in [r#"{"table":"own"}"#, r#"{"table":"shared","version":1}"#, r#"{"version":1,"frontends":[]}"#, "", "shared"]
        {
            assert!(!is_shared_table_config(other.as_bytes()), "{other}");
        }
    }
}
