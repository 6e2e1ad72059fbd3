//! The Gateway API's precedence between the matches of one Service port, in one place.
//!
//! The matchers report facts about themselves ([`HttpSpecificity`], [`GrpcSpecificity`]);
//! this module alone orders them. [`order`] is the whole ordering, read top to bottom as the
//! API's text states it (HTTPRoute and GRPCRoute, "Matching precedence"):
//!
//! HTTPRoute match:
//! 1. an Exact path match;
//! 2. a RegularExpression path match (precedence left to implementations: after Exact, as in
//!    Envoy Gateway and Istio; a longer regex first);
//! 3. the PathPrefix with the most characters;
//! 4. a method match;
//! 5. the most header matches;
//! 6. the most query parameter matches.
//!
//! GRPCRoute match:
//! 1. the most characters of the matching service;
//! 2. the most characters of the matching method;
//! 3. the most header matches.
//!
//! Then, for both, between routes: the oldest route by `creationTimestamp` ([`route_order`]),
//! then `{namespace}/{name}` alphabetically; within a route, the earlier rule, and within a
//! rule, the earlier match.

use std::cmp::Ordering;

use crate::document::RouteDoc;
use crate::table::MatchPosition;

/// What an HTTPRoute match specifies, as precedence reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSpecificity {
    pub path: PathSpecificity,
    pub method: bool,
    /// Number of header matches.
    pub headers: usize,
    /// Number of query parameter matches.
    pub query_params: usize,
}

/// The kind of a path match and its length in bytes. A PathPrefix counts with one trailing `/`
/// (`/v2` and `/v2/` are both 4; `/` and a match without a path are 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathSpecificity {
    Exact(usize),
    RegularExpression(usize),
    Prefix(usize),
}

/// What a GRPCRoute match specifies, as precedence reads it: the length in bytes of the
/// service and of the method as written (0 when absent), and the number of header matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcSpecificity {
    pub service: usize,
    pub method: usize,
    pub headers: usize,
}

/// How specific one match is. The matches of one Service port are all of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Specificity {
    Http(HttpSpecificity),
    Grpc(GrpcSpecificity),
}

/// One match of a rule attached to a Service port, as precedence sees it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub specificity: Specificity,
    /// Its route's place among the port's routes by [`route_order`] (see [`route_ranks`]):
    /// ranked once per route, not compared by name for each pair of matches.
    pub route_rank: usize,
    pub at: MatchPosition,
}

/// Each route's place by [`route_order`], for [`Entry::route_rank`]: `ranks[i]` is `routes[i]`'s.
/// Routes that [`route_order`] finds equal (one namespace and name cannot both be attached)
/// keep their order in `routes`.
pub fn route_ranks(routes: &[&RouteDoc]) -> Vec<usize> {
    let mut sorted: Vec<usize> = (0..routes.len()).collect();
    sorted.sort_by(|&a, &b| match (routes.get(a), routes.get(b)) {
        (Some(a), Some(b)) => route_order(a, b),
        _ => Ordering::Equal,
    });
    let mut ranks = vec![0; routes.len()];
    for (rank, i) in sorted.into_iter().enumerate() {
        if let Some(slot) = ranks.get_mut(i) {
            *slot = rank;
        }
    }
    ranks
}

/// `Less` when `a` takes precedence over `b`. A strict order between distinct positions.
pub fn order(a: &Entry, b: &Entry) -> Ordering {
    match_order(&a.specificity, &b.specificity)
        .then_with(|| a.route_rank.cmp(&b.route_rank))
        .then_with(|| a.at.route.cmp(&b.at.route))
        .then_with(|| a.at.rule.cmp(&b.at.rule))
        .then_with(|| a.at.match_index.cmp(&b.at.match_index))
}

/// `Less` when match `a` is more specific than `b`.
pub fn match_order(a: &Specificity, b: &Specificity) -> Ordering {
    match (a, b) {
        (Specificity::Http(a), Specificity::Http(b)) => http_match_order(a, b),
        (Specificity::Grpc(a), Specificity::Grpc(b)) => grpc_match_order(a, b),
        // Never on one Service port (the table refuses it); GRPCRoutes first, as on a port.
        (Specificity::Grpc(_), Specificity::Http(_)) => Ordering::Less,
        (Specificity::Http(_), Specificity::Grpc(_)) => Ordering::Greater,
    }
}

/// HTTPRoute: path (Exact, then RegularExpression, then the longest PathPrefix), then a
/// method, then the most headers, then the most query parameters.
pub fn http_match_order(a: &HttpSpecificity, b: &HttpSpecificity) -> Ordering {
    path_order(a.path, b.path)
        .then_with(|| more_wins(a.method, b.method))
        .then_with(|| more_wins(a.headers, b.headers))
        .then_with(|| more_wins(a.query_params, b.query_params))
}

/// Exact beats RegularExpression beats PathPrefix; within a kind, the longer value wins.
pub fn path_order(a: PathSpecificity, b: PathSpecificity) -> Ordering {
    fn tier(path: PathSpecificity) -> (u8, usize) {
        match path {
            PathSpecificity::Exact(len) => (0, len),
            PathSpecificity::RegularExpression(len) => (1, len),
            PathSpecificity::Prefix(len) => (2, len),
        }
    }
    let ((a_tier, a_len), (b_tier, b_len)) = (tier(a), tier(b));
    a_tier.cmp(&b_tier).then_with(|| more_wins(a_len, b_len))
}

/// GRPCRoute: the most characters of the service, then of the method, then the most headers.
pub fn grpc_match_order(a: &GrpcSpecificity, b: &GrpcSpecificity) -> Ordering {
    more_wins(a.service, b.service).then_with(|| more_wins(a.method, b.method)).then_with(|| more_wins(a.headers, b.headers))
}

/// The Gateway API's tie-break between routes whose matches are equally specific: the older
/// route first (a route without a timestamp counts as newest), then `{namespace}/{name}` in
/// alphabetical order. The joined string is compared, not the pair: `a-b/x` sorts before
/// `a/x` because `-` sorts before `/`.
pub fn route_order(a: &RouteDoc, b: &RouteDoc) -> Ordering {
    fn created(r: &RouteDoc) -> (u8, &str) {
        r.creation_timestamp.as_deref().map_or((1, ""), |t| (0, t))
    }
    fn joined(r: &RouteDoc) -> impl Iterator<Item = u8> + '_ {
        r.namespace.bytes().chain(std::iter::once(b'/')).chain(r.name.bytes())
    }
    created(a).cmp(&created(b)).then_with(|| joined(a).cmp(joined(b)))
}

/// `Less` (goes first) for the greater value.
fn more_wins<T: Ord>(a: T, b: T) -> Ordering {
    b.cmp(&a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::RouteKind;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn http(path: PathSpecificity) -> HttpSpecificity {
        HttpSpecificity { path, method: false, headers: 0, query_params: 0 }
    }

    fn route(namespace: &str, name: &str, created: Option<&str>) -> RouteDoc {
        RouteDoc {
            kind: RouteKind::Http,
            namespace: namespace.into(),
            name: name.into(),
            creation_timestamp: created.map(Into::into),
            rules: vec![],
        }
    }

    fn at(route: usize, rule: usize, match_index: Option<usize>) -> MatchPosition {
        MatchPosition { route, rule, match_index }
    }

    const PREFIX_ROOT: PathSpecificity = PathSpecificity::Prefix(1);

    #[test]
    fn exact_path_beats_any_prefix() {
        let exact = http(PathSpecificity::Exact(2));
        let long_prefix = HttpSpecificity { method: true, headers: 9, query_params: 9, ..http(PathSpecificity::Prefix(100)) };
        assert_eq!(http_match_order(&exact, &long_prefix), Ordering::Less);
    }

    #[test]
    fn exact_path_beats_regex_and_regex_beats_any_prefix() {
        assert_eq!(path_order(PathSpecificity::Exact(2), PathSpecificity::RegularExpression(40)), Ordering::Less);
        assert_eq!(path_order(PathSpecificity::RegularExpression(2), PathSpecificity::Prefix(100)), Ordering::Less);
        assert_eq!(path_order(PathSpecificity::RegularExpression(5), PathSpecificity::RegularExpression(4)), Ordering::Less);
    }

    #[test]
    fn longer_prefix_wins() {
        let longer = http(PathSpecificity::Prefix(5));
        let shorter = HttpSpecificity { method: true, headers: 9, query_params: 9, ..http(PathSpecificity::Prefix(4)) };
        assert_eq!(http_match_order(&longer, &shorter), Ordering::Less);
        assert_eq!(http_match_order(&shorter, &longer), Ordering::Greater);
    }

    #[test]
    fn method_beats_headers() {
        let method = HttpSpecificity { method: true, ..http(PREFIX_ROOT) };
        let headers = HttpSpecificity { headers: 9, query_params: 9, ..http(PREFIX_ROOT) };
        assert_eq!(http_match_order(&method, &headers), Ordering::Less);
    }

    #[test]
    fn more_headers_win() {
        let three = HttpSpecificity { headers: 3, ..http(PREFIX_ROOT) };
        let two = HttpSpecificity { headers: 2, query_params: 9, ..http(PREFIX_ROOT) };
        assert_eq!(http_match_order(&three, &two), Ordering::Less);
    }

    #[test]
    fn more_query_params_win() {
        let two = HttpSpecificity { query_params: 2, ..http(PREFIX_ROOT) };
        let one = HttpSpecificity { query_params: 1, ..http(PREFIX_ROOT) };
        assert_eq!(http_match_order(&two, &one), Ordering::Less);
        assert_eq!(http_match_order(&one, &one), Ordering::Equal);
    }

    #[test]
    fn grpc_service_characters_beat_method_characters() {
        let long_service = GrpcSpecificity { service: 15, method: 0, headers: 0 };
        let short_both = GrpcSpecificity { service: 7, method: 18, headers: 9 };
        assert_eq!(grpc_match_order(&long_service, &short_both), Ordering::Less);
    }

    #[test]
    fn grpc_method_characters_beat_headers() {
        let long_method = GrpcSpecificity { service: 7, method: 18, headers: 0 };
        let short_method = GrpcSpecificity { service: 7, method: 3, headers: 9 };
        assert_eq!(grpc_match_order(&long_method, &short_method), Ordering::Less);
        let method_only = GrpcSpecificity { service: 0, method: 3, headers: 0 };
        assert_eq!(grpc_match_order(&method_only, &GrpcSpecificity { service: 0, method: 0, headers: 0 }), Ordering::Less);
    }

    #[test]
    fn grpc_more_headers_win() {
        let two = GrpcSpecificity { service: 0, method: 0, headers: 2 };
        let one = GrpcSpecificity { service: 0, method: 0, headers: 1 };
        assert_eq!(grpc_match_order(&two, &one), Ordering::Less);
    }

    #[test]
    fn older_route_wins() {
        let older = route("z", "z", Some("2024-01-01T00:00:00Z"));
        let newer = route("a", "a", Some("2024-02-01T00:00:00Z"));
        assert_eq!(route_order(&older, &newer), Ordering::Less);
        // A route without a timestamp counts as the newest.
        assert_eq!(route_order(&newer, &route("a", "a", None)), Ordering::Less);
    }

    #[test]
    fn namespace_then_name_break_ties() {
        let created = Some("2024-01-01T00:00:00Z");
        assert_eq!(route_order(&route("a", "z", created), &route("b", "a", created)), Ordering::Less);
        assert_eq!(route_order(&route("a", "alpha", created), &route("a", "zeta", created)), Ordering::Less);
        // `{namespace}/{name}` as one string: '-' sorts before '/'.
        assert_eq!(route_order(&route("a-b", "x", created), &route("a", "x", created)), Ordering::Less);
    }

    #[test]
    fn specificity_beats_route_age() {
        let (old, new) = (route("d", "old", Some("2020-01-01T00:00:00Z")), route("d", "new", None));
        let ranks = route_ranks(&[&old, &new]);
        assert_eq!(ranks, [0, 1]);
        let specificity = Specificity::Http(http(PathSpecificity::Prefix(3)));
        let specific = Entry { specificity, route_rank: ranks[1], at: at(1, 0, None) };
        let general = Entry { specificity: Specificity::Http(http(PREFIX_ROOT)), route_rank: ranks[0], at: at(0, 0, None) };
        assert_eq!(order(&specific, &general), Ordering::Less);
        // Equally specific: the older route first.
        assert_eq!(order(&Entry { specificity, ..general }, &specific), Ordering::Less);
    }

    #[test]
    fn routes_are_ranked_by_route_order() {
        let created = Some("2024-01-01T00:00:00Z");
        let (b, a, newest, older) = (
            route("n", "b", created),
            route("n", "a", created),
            route("a", "a", None),
            route("z", "z", Some("2023-01-01T00:00:00Z")),
        );
        assert_eq!(route_ranks(&[&b, &a, &newest, &older]), [2, 1, 3, 0]);
    }

    #[test]
    fn earlier_rule_wins() {
        let same = Specificity::Http(http(PREFIX_ROOT));
        let first = Entry { specificity: same, route_rank: 0, at: at(0, 0, None) };
        let second = Entry { specificity: same, route_rank: 0, at: at(0, 1, None) };
        assert_eq!(order(&first, &second), Ordering::Less);
        assert_eq!(order(&second, &first), Ordering::Greater);
    }

    #[test]
    fn earlier_match_of_a_rule_wins() {
        let same = Specificity::Http(http(PREFIX_ROOT));
        let first = Entry { specificity: same, route_rank: 0, at: at(0, 2, Some(0)) };
        let second = Entry { specificity: same, route_rank: 0, at: at(0, 2, Some(1)) };
        assert_eq!(order(&first, &second), Ordering::Less);
        assert_eq!(order(&first, &first), Ordering::Equal);
    }
}
