//! What to do with one request: the whole decision, made here once for the filter's glue and
//! for `meshroute explain`, which only apply or report it.

use crate::choice::{Backend, Resolution};
use crate::filters::RouteFilters;
use crate::header_modifier::HeaderChanges;
use crate::mirror::MirrorChoice;
use crate::policy::RequestPolicy;
use crate::reply::{is_grpc_call, LocalReply, Refusal};
use crate::request::Request;
use crate::table::{Frontend, Matched, Outcome, RouteRule, RouteTable};
use crate::url::{Origin, Rewrite};

/// What happens to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'t> {
    /// The destination is not a Service port with routes: Envoy's default route takes it.
    PassThrough,
    /// Forward to a backend's cluster.
    Forward(Forward<'t>),
    /// Answer without forwarding: a refusal, and the home of a RequestRedirect's 3xx.
    LocalReply { cause: Cause<'t>, reply: LocalReply },
}

/// A forwarded request: where it goes and what changes on the way there and back.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward<'t> {
    pub matched: Matched<'t>,
    /// The backendRef the draw chose.
    pub backend: &'t Backend,
    /// The Envoy cluster serving `backend`: the value of [`crate::SELECTION_HEADER`].
    pub cluster: &'t str,
    pub request: RequestChanges<'t>,
    pub response: ResponseChanges<'t>,
}

/// What the matched rule and backendRef change on a forwarded request before it goes: the home
/// of the filters that act on the request (RequestHeaderModifier, URLRewrite, RequestMirror)
/// and of the rule's timeouts and retries. The glue destructures it, so a new field does not compile
/// until the glue applies it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestChanges<'t> {
    pub headers: HeaderChanges<'t>,
    /// URLRewrite's new `:path` (query kept); the backendRef's rewrite, else the rule's.
    pub path: Option<String>,
    /// URLRewrite's new `:authority` (`Host`); the backendRef's, else the rule's.
    pub authority: Option<&'t str>,
    /// The rule's timeouts and retries, for Envoy's router; `None` when it has none.
    pub policy: Option<&'t RequestPolicy>,
    /// The rule's and then the backendRef's RequestMirrors.
    pub mirror: MirrorChoice<'t>,
}

/// What the matched rule and backendRef change on the response before the client sees it
/// (ResponseHeaderModifier).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseChanges<'t> {
    pub headers: HeaderChanges<'t>,
}

/// Why the filter answers a request itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cause<'t> {
    /// The matched rule redirects (RequestRedirect): a 3xx with a `Location`.
    Redirect(Matched<'t>),
    /// The Service port has routes and none matches.
    NoRoute,
    /// The matched rule has no backendRef with a weight above 0.
    NoBackend(Matched<'t>),
    /// The draw landed in the share of a backendRef that does not resolve; `reason` is the
    /// Gateway API's (`BackendNotFound`, ...).
    Unresolved { matched: Matched<'t>, backend: &'t Backend, reason: &'t str },
}

impl<'t> Cause<'t> {
    /// The rule that took the request, if one did.
    pub fn matched(&self) -> Option<Matched<'t>> {
        match *self {
            Cause::NoRoute => None,
            Cause::Redirect(matched) | Cause::NoBackend(matched) | Cause::Unresolved { matched, .. } => Some(matched),
        }
    }
}

/// What becomes of the mirror header of a request that goes on with the table's mirror set
/// `set` (`None`: no mirrors): named, removed (the table has sets, so a client's copy could
/// select one), or left alone (no route of the table reads it).
pub fn mirror_choice(table: &RouteTable, set: Option<usize>) -> MirrorChoice<'_> {
    match set.and_then(|i| table.mirror_sets().get(i)) {
        Some(set) => MirrorChoice::Set(set),
        None if table.mirror_sets().is_empty() => MirrorChoice::None,
        None => MirrorChoice::Clear,
    }
}

/// Decides what happens to `request`, which arrived at `frontend` (`None`: a destination that
/// is not a Service port with routes), given a uniformly random `draw` for the weighted choice.
///
/// `header` reads a request header that routing does not (`content-type`, which decides
/// whether a local reply is a gRPC one; `:authority` and `:scheme`, which a redirect keeps);
/// it is called only for local replies. A closure rather than values or a request-access
/// trait: every other input is read before matching anyway (what the frontend's matches and
/// filters need, [`Frontend::inputs`]), and the closure keeps these conditional reads — host
/// calls in the filter — off the path of a forwarded request.
pub fn decide<'t, C: AsRef<[u8]>>(
    table: &'t RouteTable,
    frontend: Option<&'t Frontend>,
    request: &Request<'_>,
    draw: u64,
    header: impl Fn(&str) -> Option<C>,
) -> Decision<'t> {
    let Some(frontend) = frontend else { return Decision::PassThrough };
    let cause = match table.route(Some(frontend), request) {
        Outcome::PassThrough => return Decision::PassThrough,
        Outcome::NoMatch => Cause::NoRoute,
        Outcome::Matched(matched) if matched.rule.filters.redirect.is_some() => Cause::Redirect(matched),
        Outcome::Matched(matched) => match matched.rule.backends.pick(draw) {
            None => Cause::NoBackend(matched),
            Some(backend) => match &backend.target.resolution {
                Resolution::Cluster(cluster) => {
                    let (rule, own) = (&matched.rule.filters, &backend.filters);
                    let rewrite = |part: fn(&Rewrite) -> bool| {
                        own.rewrite.as_ref().filter(|r| part(r)).or(rule.rewrite.as_ref().filter(|r| part(r)))
                    };
                    let (path, query) = request.path_and_query();
                    let request = RequestChanges {
                        headers: HeaderChanges { rule: rule.request_headers.as_deref(), backend: own.request_headers.as_deref() },
                        path: rewrite(|r| r.path.is_some()).and_then(|r| r.path_and_query(path, query)),
                        authority: rewrite(|r| r.hostname.is_some()).and_then(|r| r.hostname.as_deref()),
                        policy: matched.rule.policy.as_deref(),
                        mirror: mirror_choice(table, backend.mirror_set),
                    };
                    let response = ResponseChanges {
                        headers: HeaderChanges {
                            rule: rule.response_headers.as_deref(),
                            backend: own.response_headers.as_deref(),
                        },
                    };
                    return Decision::Forward(Forward { matched, backend, cluster, request, response });
                }
                Resolution::Unresolved(reason) => Cause::Unresolved { matched, backend, reason },
            },
        },
    };
    let text = |name: &str| header(name).and_then(|v| String::from_utf8(v.as_ref().to_vec()).ok());
    let grpc_call = is_grpc_call(header("content-type").as_ref().map(AsRef::as_ref));
    let reply = match cause {
        Cause::Redirect(Matched { rule: RouteRule { filters: RouteFilters { redirect: Some(redirect), .. }, .. }, .. }) => {
            let (path, query) = request.path_and_query();
            let (scheme, authority) = (text(":scheme"), text(":authority"));
            let origin = Origin {
                scheme: scheme.as_deref().unwrap_or("http"),
                authority: authority.as_deref().unwrap_or(""),
                listener_port: frontend.port,
                path,
                query,
            };
            LocalReply::redirect(redirect.status, redirect.location(&origin), grpc_call)
        }
        Cause::NoRoute => Refusal::NoRoute.reply(frontend.kind(), grpc_call),
        Cause::Redirect(_) | Cause::NoBackend(_) | Cause::Unresolved { .. } => {
            Refusal::Unavailable.reply(frontend.kind(), grpc_call)
        }
    };
    // A matched rule's ResponseHeaderModifier applies to its own answers too.
    let response_headers =
        HeaderChanges { rule: cause.matched().and_then(|m| m.rule.filters.response_headers.as_deref()), backend: None };
    Decision::LocalReply { reply: reply.with_header_changes(response_headers), cause }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::reply::{GrpcStatus, ReceivedStatus};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const FRONTEND: &str = "10.96.0.10:80";
    const GRPC: Option<&str> = Some("application/grpc");

    /// A target `name` served by cluster `c-NAME`.
    fn target(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "port": 80, "cluster": format!("c-{name}")})
    }

    fn unresolved(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "port": 80, "unresolved": "BackendNotFound"})
    }

    /// A backendRef to `targets[target]`.
    fn backend(target: usize, weight: u32) -> Value {
        json!({"target": target, "weight": weight})
    }

    /// One route of `kind` on the frontend: rule 0 takes `/split` (v1:3, v2:1), rule 1 `/half`
    /// (good:1 and an unresolved gone:1), rule 2 `/none` (no backends), rule 3 `/zero` (weight 0).
    fn table(kind: &str) -> RouteTable {
        let path = |p: &str| {
            if kind == "GRPCRoute" {
                json!([{"grpc_method": {"type": "Exact", "service": "pkg.Svc", "method": p.trim_start_matches('/')}}])
            } else {
                json!([{"path": {"type": "PathPrefix", "value": p}}])
            }
        };
        let doc = json!({
            "version": 2,
            "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0]}],
            "routes": [{"kind": kind, "namespace": "default", "name": "r", "rules": [
                {"matches": path("/split"), "backends": [backend(0, 3), backend(1, 1)]},
                {"matches": path("/half"), "backends": [backend(2, 1), backend(3, 1)]},
                {"matches": path("/none"), "backends": []},
                {"matches": path("/zero"), "backends": [backend(4, 0)]},
            ]}],
            "targets": [target("v1"), target("v2"), target("good"), unresolved("gone"), target("z")],
        });
        RouteTable::from_json(doc.to_string().as_bytes()).unwrap()
    }

    /// One frontend with a route, one Service port without routes listed with its cluster.
    fn table_with_pass_through(pass_through: serde_json::Value) -> Result<RouteTable, crate::table::TableError> {
        let doc = json!({
            "version": 2,
            "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0]}],
            "routes": [{"kind": "HTTPRoute", "namespace": "default", "name": "r", "rules": [{"backends": [backend(0, 1)]}]}],
            "targets": [target("v1")],
            "pass_through": pass_through,
        });
        RouteTable::from_json(doc.to_string().as_bytes())
    }

    #[test]
    fn a_service_port_without_routes_goes_on_to_its_own_cluster_and_an_unknown_address_to_envoy() {
        use crate::table::Destination;
        let t = table_with_pass_through(json!([{"port": 80, "addresses": ["10.96.0.11", "fd00::11"], "cluster": "c-plain"}]))
            .unwrap();
        assert!(matches!(t.destination("10.96.0.10:80"), Destination::Frontend(f) if f.name == "echo"));
        assert!(matches!(t.destination("10.96.0.11:80"), Destination::PassThrough(Some("c-plain"))));
        assert!(matches!(t.destination("[fd00::11]:80"), Destination::PassThrough(Some("c-plain"))));
        // An address is known as Envoy writes it, whatever form the table gives.
        assert!("010.96.0.11".parse::<std::net::IpAddr>().is_err(), "IPv4 is taken in its usual form only");
        // The same address written otherwise than Envoy writes it.
        assert!(matches!(t.destination("[FD00:0:0::11]:80"), Destination::PassThrough(Some("c-plain"))));
        assert!(matches!(t.destination("10.96.0.11:81"), Destination::PassThrough(None)));
        assert!(matches!(t.destination("not an address"), Destination::PassThrough(None)));
        assert!(t.frontend_at("10.96.0.11:80").is_none());
        // No mirror sets: a pass-through leaves the mirror header alone; no route reads it.
        assert_eq!(mirror_choice(&t, None), MirrorChoice::None);
    }

    #[test]
    fn a_pass_through_address_taken_twice_or_without_a_cluster_is_refused() {
        let taken = table_with_pass_through(json!([{"port": 80, "addresses": ["10.96.0.10"], "cluster": "c-plain"}]));
        assert!(taken.unwrap_err().0.contains("listed twice"));
        let nameless = table_with_pass_through(json!([{"port": 80, "addresses": ["10.96.0.11"], "cluster": ""}]));
        assert!(nameless.unwrap_err().0.contains("the cluster is empty"));
        let bad = table_with_pass_through(json!([{"port": 80, "addresses": ["nowhere"], "cluster": "c"}]));
        assert!(bad.unwrap_err().0.contains("not an IP address"));
    }

    #[test]
    fn the_destination_is_read_from_the_header_only_when_the_table_says_the_listener_writes_it() {
        use crate::table::DestinationSource;
        let with = |destination_header: bool, matches: serde_json::Value| {
            let doc = json!({
                "version": 2,
                "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0]}],
                "routes": [{"kind": "HTTPRoute", "namespace": "default", "name": "r", "rules": [
                    {"matches": matches, "backends": [backend(0, 1)]},
                ]}],
                "targets": [target("v1")],
                "destination_header": destination_header,
            });
            RouteTable::from_json(doc.to_string().as_bytes()).unwrap().destination_source()
        };
        let by_path = json!([{"path": {"type": "PathPrefix", "value": "/a"}}]);
        let by_header = json!([{"headers": [{"type": "Exact", "name": "x-v", "value": "1"}]}]);
        assert_eq!(with(false, by_header.clone()), DestinationSource::Property);
        assert_eq!(with(true, by_path), DestinationSource::Header);
        assert_eq!(with(true, by_header), DestinationSource::AllHeaders);
        // Absent means the property: a table for listeners nobody said write the header.
        assert_eq!(table("HTTPRoute").destination_source(), DestinationSource::Property);
    }

    fn path_of(kind: &str, path: &str) -> String {
        if kind == "GRPCRoute" {
            format!("/pkg.Svc{path}")
        } else {
            path.to_owned()
        }
    }

    fn decide_at<'t>(
        table: &'t RouteTable,
        destination: &str,
        path: &str,
        draw: u64,
        content_type: Option<&str>,
    ) -> Decision<'t> {
        let request = Request { method: "POST", path_and_query: path, headers: &[] };
        decide(table, table.frontend_at(destination), &request, draw, |name: &str| {
            content_type.filter(|_| name == "content-type")
        })
    }

    fn received(decision: &Decision<'_>) -> Option<ReceivedStatus> {
        match decision {
            Decision::LocalReply { reply, .. } => Some(reply.as_received()),
            Decision::PassThrough | Decision::Forward(_) => None,
        }
    }

    #[test]
    fn a_destination_without_routes_passes_through() {
        let t = table("HTTPRoute");
        for destination in ["10.96.0.10:81", "10.96.0.11:80", "not an address"] {
            assert_eq!(decide_at(&t, destination, "/split", 0, None), Decision::PassThrough, "{destination}");
        }
    }

    #[test]
    fn a_draw_forwards_to_the_cluster_of_its_share() {
        let t = table("HTTPRoute");
        let cluster = |draw| match decide_at(&t, FRONTEND, "/split", draw, None) {
            Decision::Forward(forward) => {
                assert_eq!((forward.matched.route.name.as_str(), forward.matched.rule_index), ("r", 0));
                assert_eq!((forward.request, forward.response), (RequestChanges::default(), ResponseChanges::default()));
                forward.cluster
            }
            other => panic!("{other:?}"),
        };
        assert_eq!([cluster(0), cluster(2), cluster(3), cluster(4), cluster(7)], ["c-v1", "c-v1", "c-v2", "c-v1", "c-v2"]);
    }

    #[test]
    fn content_type_is_read_only_for_a_local_reply() {
        let t = table("HTTPRoute");
        let request = Request { method: "GET", path_and_query: "/split", headers: &[] };
        let forwarded = decide(&t, t.frontend_at(FRONTEND), &request, 0, |name: &str| -> Option<&str> { panic!("read {name}") });
        assert!(matches!(forwarded, Decision::Forward(_)));
    }

    #[test]
    fn no_match_is_404_or_unimplemented() {
        let (http_table, grpc_table) = (table("HTTPRoute"), table("GRPCRoute"));
        let http = decide_at(&http_table, FRONTEND, "/other", 0, None);
        assert!(matches!(
            http,
            Decision::LocalReply { cause: Cause::NoRoute, reply: LocalReply { status: 404, grpc_status: None, .. } }
        ));
        let grpc = decide_at(&grpc_table, FRONTEND, "/pkg.Svc/Other", 0, GRPC);
        let Decision::LocalReply { cause: Cause::NoRoute, reply } = grpc else { panic!("{grpc:?}") };
        assert_eq!((reply.status, reply.grpc_status), (200, Some(GrpcStatus::Unimplemented)));
        assert!(reply.headers.is_empty());
    }

    #[test]
    fn an_unresolved_share_is_500_or_unavailable() {
        for kind in ["HTTPRoute", "GRPCRoute"] {
            let t = table(kind);
            let path = path_of(kind, "/half");
            assert!(matches!(decide_at(&t, FRONTEND, &path, 0, GRPC), Decision::Forward(Forward { cluster: "c-good", .. })));
            let decision = decide_at(&t, FRONTEND, &path, 1, GRPC);
            let Decision::LocalReply { cause: Cause::Unresolved { matched, backend, reason }, reply } = &decision else {
                panic!("{decision:?}")
            };
            assert_eq!((matched.rule_index, backend.target.name.as_str(), *reason), (1, "gone", "BackendNotFound"));
            let expected = if kind == "GRPCRoute" { (200, Some(GrpcStatus::Unavailable)) } else { (500, None) };
            assert_eq!((reply.status, reply.grpc_status), expected, "{kind}");
        }
        let t = table("HTTPRoute");
        let plain = decide_at(&t, FRONTEND, "/half", 1, None);
        assert_eq!(received(&plain), Some(ReceivedStatus { status: 500, grpc_status: None }));
    }

    #[test]
    fn a_rule_without_backends_is_500_or_unavailable() {
        for (kind, path) in [("HTTPRoute", "/none"), ("HTTPRoute", "/zero"), ("GRPCRoute", "/none"), ("GRPCRoute", "/zero")] {
            let t = table(kind);
            let decision = decide_at(&t, FRONTEND, &path_of(kind, path), 5, GRPC);
            let Decision::LocalReply { cause: Cause::NoBackend(matched), reply } = &decision else { panic!("{decision:?}") };
            assert_eq!(matched.rule.backends.total_weight(), 0);
            let expected = if kind == "GRPCRoute" { (200, Some(GrpcStatus::Unavailable)) } else { (500, None) };
            assert_eq!((reply.status, reply.grpc_status), expected, "{kind} {path}");
        }
    }

    #[test]
    fn a_grpc_call_on_an_http_frontend_gets_an_http_reply_that_envoy_maps() {
        let t = table("HTTPRoute");
        let no_route = decide_at(&t, FRONTEND, "/other", 0, Some("application/grpc+proto"));
        let Decision::LocalReply { reply, .. } = &no_route else { panic!("{no_route:?}") };
        assert_eq!((reply.status, reply.grpc_status, reply.grpc_call), (404, None, true));
        assert_eq!(received(&no_route), Some(ReceivedStatus { status: 200, grpc_status: Some(GrpcStatus::Unimplemented) }));
        let unavailable = decide_at(&t, FRONTEND, "/none", 0, GRPC);
        assert_eq!(received(&unavailable), Some(ReceivedStatus { status: 200, grpc_status: Some(GrpcStatus::Unknown) }));
    }

    /// Rule 0 mirrors to `m` and its backendRef `b` also to `n`; rule 1 mirrors nothing.
    #[test]
    fn a_forward_selects_the_mirror_set_of_its_rule_and_backend_or_clears_the_header() {
        let mirror = |name: &str| json!({"name": name, "namespace": "default", "port": 80, "cluster": format!("c-{name}")});
        let mut b = backend(1, 1);
        b["filters"] = json!({"mirrors": [mirror("n")]});
        let doc = json!({
            "version": 2,
            "frontends": [{"namespace": "default", "name": "echo", "port": 80, "addresses": ["10.96.0.10"], "routes": [0]}],
            "routes": [{"kind": "HTTPRoute", "namespace": "default", "name": "r", "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/m"}}], "filters": {"mirrors": [mirror("m")]},
                 "backends": [backend(0, 1), b]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/plain"}}], "backends": [backend(0, 1)]},
            ]}],
            "targets": [target("a"), target("b")],
        });
        let t = RouteTable::from_json(doc.to_string().as_bytes()).unwrap();
        let mirror_of = |path, draw| match decide_at(&t, FRONTEND, path, draw, None) {
            Decision::Forward(forward) => match forward.request.mirror {
                MirrorChoice::Set(set) => {
                    Some((set.header_value().to_owned(), set.mirrors.iter().map(|m| m.cluster.clone()).collect::<Vec<_>>()))
                }
                MirrorChoice::Clear => None,
                MirrorChoice::None => panic!("a table with mirrors must clear the header"),
            },
            other => panic!("{other:?}"),
        };
        let set = |i: usize| t.mirror_sets()[i].header_value().to_owned();
        assert_eq!(mirror_of("/m", 0), Some((set(0), vec!["c-m".to_owned()])));
        assert_eq!(mirror_of("/m", 1), Some((set(1), vec!["c-m".to_owned(), "c-n".to_owned()])));
        assert_eq!(mirror_of("/plain", 0), None);
        assert_eq!(t.mirror_sets().len(), 2);
        // What a pass-through to a port's own cluster does with a client's mirror header.
        assert_eq!(mirror_choice(&t, None), MirrorChoice::Clear);

        let plain = table("HTTPRoute");
        let Decision::Forward(forward) = decide_at(&plain, FRONTEND, "/split", 0, None) else { panic!() };
        assert_eq!(forward.request.mirror, MirrorChoice::None);
    }

    #[test]
    fn a_plain_request_on_a_grpc_frontend_gets_an_http_reply() {
        let t = table("GRPCRoute");
        let decision = decide_at(&t, FRONTEND, "/pkg.Svc/Other", 0, Some("application/json"));
        assert_eq!(received(&decision), Some(ReceivedStatus { status: 404, grpc_status: None }));
    }
}
