//! The compiled route table: frontends indexed by address, their match entries sorted by the
//! Gateway API precedence, and each rule's weighted backends. Built once per configuration;
//! once built, routing a request cannot fail.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::choice::{Backend, BackendSet, BackendTarget};
use crate::conditions::{Conditions, ConditionsBuilder, MatchConditions};
use crate::document::{MatchDoc, PathMatchDoc, PathMatchType, RouteDoc, RouteKind, RuleDoc, TableDocument, TABLE_VERSION};
use crate::filters::RouteFilters;
use crate::grpc::GrpcMatch;
use crate::index::{index_u32, FastHash, FrontendIndex, IndexBuilder, IndexKey, PathIndex};
use crate::matching::{HttpMatch, Inputs};
use crate::mirror::{Mirror, MirrorSet, MirrorSets};
use crate::policy::RequestPolicy;
use crate::precedence::{self, Specificity};
use crate::request::Request;

/// Why a table document was refused. The message names the place in the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(pub String);

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TableError {}

#[derive(Debug)]
pub struct RouteTable {
    frontends: Vec<Frontend>,
    /// Keyed by the address as Envoy writes `destination.address` (`10.0.0.1:80`,
    /// `[fd00::1]:80`), so that a request finds it without parsing.
    by_address: HashMap<Box<str>, At, FastHash>,
    /// The clusters of the Service ports without routes ([`At::PassThrough`] numbers them).
    pass_through: Vec<String>,
    routes: Vec<Route>,
    /// Every frontend's matches by path ([`Frontend::index`] is each one's part).
    index: PathIndex<Candidate>,
    /// What every match asks beyond its index key ([`Candidate::conditions`]).
    conditions: Conditions,
    /// What [`Backend::mirror_set`] numbers.
    mirror_sets: Vec<MirrorSet>,
    /// Whether requests are counted ([`TableDocument::metrics`]).
    metrics: bool,
    destination_source: DestinationSource,
}

/// Where the filter reads a request's destination, the address [`RouteTable::destination`]
/// looks up. Each is one host call; the header costs less than the property (a CEL evaluation
/// per request, measured at +0.08 × native Envoy's CPU per request at 10 rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationSource {
    /// The `destination.address` property: the listener writes no header
    /// ([`TableDocument::destination_header`] off).
    Property,
    /// [`crate::DESTINATION_HEADER`] alone.
    Header,
    /// [`crate::DESTINATION_HEADER`] with every other header, in one call: some frontend's
    /// matches read headers, and their requests then need no second call. A request elsewhere
    /// reads a few headers more than it needs, which costs less than a second call where they
    /// are needed.
    AllHeaders,
}

/// What an address of the table is: index into [`RouteTable::frontends`] or into its
/// pass-through clusters.
#[derive(Debug, Clone, Copy)]
enum At {
    Frontend(usize),
    PassThrough(usize),
}

/// What a connection's original destination is to the table.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'t> {
    /// A Service port with routes: the routes decide.
    Frontend(&'t Frontend),
    /// Not a Service port with routes: the request goes on unchanged, to this cluster (a
    /// Service port the table lists without routes), else (`None`) by Envoy's default route.
    PassThrough(Option<&'t str>),
}

/// A Service port with attached routes, all of one kind: HTTPRoutes, or GRPCRoutes (which take
/// a port from HTTPRoutes; the two are never merged).
#[derive(Debug)]
pub struct Frontend {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    kind: RouteKind,
    /// Every match of every attached rule, most specific first.
    entries: Vec<MatchEntry>,
    /// Its part of the table's index: which entries a request's path allows, so that not every
    /// one is tried.
    index: FrontendIndex,
    /// What the entries read of a request.
    inputs: Inputs,
}

impl Frontend {
    /// Which kind of routes serve this port, and so whether refusals are HTTP or gRPC answers.
    pub fn kind(&self) -> RouteKind {
        self.kind
    }

    /// The parts of a request routing on this port reads; a [`Request`] may leave the others
    /// empty (the glue then spares the host calls that would fetch them).
    pub fn inputs(&self) -> Inputs {
        self.inputs
    }

    /// Where the index files each match, in [`Frontend::precedence_order`]: a match can only
    /// take paths its key allows.
    pub fn index_keys(&self) -> impl Iterator<Item = IndexKey<'_>> + '_ {
        self.entries.iter().map(|entry| entry.matcher.index_key())
    }

    /// Every match of every attached rule in the order routing tries them, most specific first.
    pub fn precedence_order(&self) -> impl Iterator<Item = MatchPosition> + '_ {
        self.entries.iter().map(|entry| entry.at)
    }
}

#[derive(Debug)]
struct MatchEntry {
    matcher: RouteMatch,
    at: MatchPosition,
}

/// What the index holds of a match: all that trying it reads besides its conditions, so that a
/// request never reads the compiled match itself.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    route: u32,
    rule: u32,
    /// What it asks beyond its index key, read with [`RouteTable::conditions`]; none for a
    /// plain Exact path or PathPrefix, which most matches are.
    conditions: MatchConditions,
}

/// Where a match comes from: indexes into the document's routes, their rules, and the rule's
/// `matches` (`None` for a rule without matches, which takes every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchPosition {
    pub route: usize,
    pub rule: usize,
    pub match_index: Option<usize>,
}

/// One match of a frontend, in the document the table was compiled from: what Envoy's own
/// routes (native mode, proxyless gRPC clients) are written from, in precedence order.
#[derive(Debug, Clone, Copy)]
pub struct DocumentMatch<'d> {
    pub route: &'d RouteDoc,
    pub rule_index: usize,
    pub rule: &'d RuleDoc,
    /// `None`: a rule without matches, which takes every request.
    pub matched: Option<&'d MatchDoc>,
    pub at: MatchPosition,
}

impl DocumentMatch<'_> {
    /// `NAMESPACE/NAME/rules/I[/matches/J]`: a unique, stable name for the Envoy route.
    pub fn route_name(&self) -> String {
        let (route, rule) = (self.route, self.rule_index);
        match self.at.match_index {
            Some(i) => format!("{}/{}/rules/{rule}/matches/{i}", route.namespace, route.name),
            None => format!("{}/{}/rules/{rule}", route.namespace, route.name),
        }
    }
}

impl MatchPosition {
    /// This position in `doc`, the document the table was compiled from; `None` if it is not
    /// there (never, for the table's own document).
    pub fn in_document<'d>(&self, doc: &'d TableDocument) -> Option<DocumentMatch<'d>> {
        let route = doc.routes.get(self.route)?;
        let rule = route.rules.get(self.rule)?;
        let matched = match self.match_index {
            None => None,
            Some(i) => Some(rule.matches.get(i)?),
        };
        Some(DocumentMatch { route, rule_index: self.rule, rule, matched, at: *self })
    }
}

#[derive(Debug)]
enum RouteMatch {
    Http(HttpMatch),
    Grpc(GrpcMatch),
}

impl RouteMatch {
    fn compile(kind: RouteKind, doc: Option<&MatchDoc>) -> Result<Self, String> {
        Ok(match (kind, doc) {
            (RouteKind::Http, None) => RouteMatch::Http(HttpMatch::catch_all()),
            (RouteKind::Http, Some(doc)) => RouteMatch::Http(HttpMatch::compile(doc)?),
            (RouteKind::Grpc, None) => RouteMatch::Grpc(GrpcMatch::catch_all()),
            (RouteKind::Grpc, Some(doc)) => RouteMatch::Grpc(GrpcMatch::compile(doc)?),
        })
    }

    fn index_key(&self) -> IndexKey<'_> {
        match self {
            RouteMatch::Http(m) => m.index_key(),
            RouteMatch::Grpc(m) => m.index_key(),
        }
    }

    fn inputs(&self) -> Inputs {
        match self {
            RouteMatch::Http(m) => m.inputs(),
            RouteMatch::Grpc(m) => m.inputs(),
        }
    }

    fn specificity(&self) -> Specificity {
        match self {
            RouteMatch::Http(m) => Specificity::Http(m.specificity()),
            RouteMatch::Grpc(m) => Specificity::Grpc(m.specificity()),
        }
    }

    /// Files what a request its index key allows must have besides (see
    /// [`Candidate::conditions`]).
    fn file_conditions(&self, conditions: &mut ConditionsBuilder) -> MatchConditions {
        match self {
            RouteMatch::Http(m) => conditions.file(m.asks()),
            RouteMatch::Grpc(m) => conditions.file(m.asks()),
        }
    }
}

#[derive(Debug)]
pub struct Route {
    pub kind: RouteKind,
    pub namespace: String,
    pub name: String,
    pub rules: Vec<RouteRule>,
}

#[derive(Debug)]
pub struct RouteRule {
    /// `name`, when the rule has one.
    pub name: Option<String>,
    pub backends: BackendSet,
    /// The rule's filters, for every request it takes.
    pub filters: RouteFilters,
    /// Its timeouts and retries, when it has any.
    pub policy: Option<Box<RequestPolicy>>,
}

/// Which rule of the frontend's routes a request matched (see [`crate::decision`] for what
/// then happens to it).
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'t> {
    /// The destination is not a frontend with routes.
    PassThrough,
    /// The frontend has routes but none matches.
    NoMatch,
    /// This rule takes the request; its backends share it by weight.
    Matched(Matched<'t>),
}

/// The rule that took a request, and its route.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'t> {
    pub route: &'t Route,
    /// Index of `rule` in the route's rules.
    pub rule_index: usize,
    pub rule: &'t RouteRule,
}

/// The same rule of the same route of one table.
impl PartialEq for Matched<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.route, other.route) && self.rule_index == other.rule_index
    }
}

impl RouteTable {
    pub fn from_json(json: &[u8]) -> Result<Self, TableError> {
        // UTF-8 checked once for the whole document, not string by string as `from_slice` does
        // (a tenth of the decoding at 10,000 rules).
        let text = std::str::from_utf8(json).map_err(|e| TableError(format!("route table is not valid JSON: {e}")))?;
        let doc: TableDocument =
            serde_json::from_str(text).map_err(|e| TableError(format!("route table is not valid JSON: {e}")))?;
        Self::compile(&doc)
    }

    pub fn compile(doc: &TableDocument) -> Result<Self, TableError> {
        if doc.version != TABLE_VERSION {
            return Err(TableError(format!(
                "route table version {} is not supported (this filter reads version {TABLE_VERSION})",
                doc.version
            )));
        }
        // Each target once; the backends that name it share it.
        let targets = doc
            .targets
            .iter()
            .enumerate()
            .map(|(t, target)| {
                BackendTarget::compile(target)
                    .map(Arc::new)
                    .map_err(|e| TableError(format!("targets[{t}] ({}/{}): {e}", target.namespace, target.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut mirror_sets = MirrorSets::default();
        let routes = doc
            .routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                compile_route(route, &targets, &mut mirror_sets)
                    .map_err(|e| TableError(format!("routes[{i}] ({}/{}): {e}", route.namespace, route.name)))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let mut frontends = Vec::with_capacity(doc.frontends.len());
        let mut index = IndexBuilder::default();
        let mut conditions = ConditionsBuilder::default();
        let mut by_address: HashMap<Box<str>, At, FastHash> = HashMap::default();
        for (f, front) in doc.frontends.iter().enumerate() {
            // Written only for an error: a table of 10,000 frontends has none.
            let place = || format!("frontends[{f}] ({}/{}:{})", front.namespace, front.name, front.port);
            // Precedence facts and matches apart: the sort moves indexes, not matches.
            let mut ranked: Vec<precedence::Entry> = Vec::new();
            let mut matchers: Vec<Option<MatchEntry>> = Vec::new();
            let mut kind = None;
            let attached = front
                .routes
                .iter()
                .map(|&r| doc.routes.get(r).ok_or_else(|| TableError(format!("{}: route index {r} is out of range", place()))))
                .collect::<Result<Vec<&RouteDoc>, _>>()?;
            let route_ranks = precedence::route_ranks(&attached);
            for ((&r, route), route_rank) in front.routes.iter().zip(attached).zip(route_ranks) {
                if kind.is_some_and(|kind| kind != route.kind) {
                    return Err(TableError(format!("{}: HTTPRoutes and GRPCRoutes are never merged on one port", place())));
                }
                kind = Some(route.kind);
                for (rule_index, rule) in route.rules.iter().enumerate() {
                    let at = |e| TableError(format!("routes[{r}].rules[{rule_index}]: {e}"));
                    // A rule without matches takes every request, like one empty match.
                    let matches = rule.matches.iter().enumerate().map(|(i, m)| (Some(m), Some(i)));
                    let catch_all = rule.matches.is_empty().then_some((None, None));
                    for (m, match_index) in catch_all.into_iter().chain(matches) {
                        let matcher = RouteMatch::compile(route.kind, m).map_err(at)?;
                        let at = MatchPosition { route: r, rule: rule_index, match_index };
                        ranked.push(precedence::Entry { specificity: matcher.specificity(), route_rank, at });
                        matchers.push(Some(MatchEntry { matcher, at }));
                    }
                }
            }
            let Some(kind) = kind else {
                return Err(TableError(format!("{}: a frontend needs at least one route", place())));
            };
            let mut order: Vec<usize> = (0..ranked.len()).collect();
            // A strict order between distinct positions: unstable sorting decides the same.
            order.sort_unstable_by(|&a, &b| match (ranked.get(a), ranked.get(b)) {
                (Some(a), Some(b)) => precedence::order(a, b),
                _ => a.cmp(&b),
            });
            let entries: Vec<MatchEntry> = order.into_iter().filter_map(|i| matchers.get_mut(i).and_then(Option::take)).collect();
            for address in &front.addresses {
                let ip: IpAddr =
                    address.parse().map_err(|_| TableError(format!("{}: address {address:?} is not an IP address", place())))?;
                if by_address.insert(address_key(ip, address, front.port), At::Frontend(frontends.len())).is_some() {
                    return Err(TableError(format!("{}: {address}:{} belongs to two frontends", place(), front.port)));
                }
            }
            // What the matches read, and the path wherever a redirect or a rewrite needs it.
            let filters_read_path = front
                .routes
                .iter()
                .filter_map(|&r| routes.get(r))
                .flat_map(|route| &route.rules)
                .any(|rule| rule.filters.read_path() || rule.backends.all().iter().any(|b| b.filters.read_path()));
            let inputs = read_inputs(&entries).union(Inputs { path: filters_read_path, ..Inputs::default() });
            let index = index.file(entries.iter().map(|entry| {
                let candidate = Candidate {
                    route: index_u32(entry.at.route),
                    rule: index_u32(entry.at.rule),
                    conditions: entry.matcher.file_conditions(&mut conditions),
                };
                (entry.matcher.index_key(), candidate)
            }));
            frontends.push(Frontend {
                namespace: front.namespace.clone(),
                name: front.name.clone(),
                port: front.port,
                kind,
                entries,
                index,
                inputs,
            });
        }
        let mut pass_through = Vec::with_capacity(doc.pass_through.len());
        for (p, port) in doc.pass_through.iter().enumerate() {
            let place = || format!("pass_through[{p}] ({})", port.cluster);
            if port.cluster.is_empty() {
                return Err(TableError(format!("{}: the cluster is empty", place())));
            }
            for address in &port.addresses {
                let ip: IpAddr =
                    address.parse().map_err(|_| TableError(format!("{}: address {address:?} is not an IP address", place())))?;
                if by_address.insert(address_key(ip, address, port.port), At::PassThrough(pass_through.len())).is_some() {
                    return Err(TableError(format!("{}: {address}:{} is listed twice", place(), port.port)));
                }
            }
            pass_through.push(port.cluster.clone());
        }
        let destination_source = match (doc.destination_header, frontends.iter().any(|f| f.inputs.headers)) {
            (false, _) => DestinationSource::Property,
            (true, false) => DestinationSource::Header,
            (true, true) => DestinationSource::AllHeaders,
        };
        Ok(RouteTable {
            frontends,
            by_address,
            pass_through,
            routes,
            index: index.build(),
            conditions: conditions.build(),
            mirror_sets: mirror_sets.into_sets(),
            metrics: doc.metrics,
            destination_source,
        })
    }

    /// The frontend behind a connection's original destination, as Envoy reports it in
    /// `destination.address` (`10.0.0.1:80`, `[fd00::1]:80`).
    pub fn frontend_at(&self, destination: &str) -> Option<&Frontend> {
        match self.destination(destination) {
            Destination::Frontend(frontend) => Some(frontend),
            Destination::PassThrough(_) => None,
        }
    }

    /// What the connection's original destination (`destination.address`, as for
    /// [`RouteTable::frontend_at`]) is: a frontend, a Service port without routes and its
    /// cluster, or an address the table does not know.
    pub fn destination(&self, destination: &str) -> Destination<'_> {
        let at = self.by_address.get(destination).or_else(|| {
            // Written otherwise than Envoy writes it (upper case, zeros kept): its usual form,
            // formatted on the stack, as most unknown addresses come this way.
            let mut usual = [0u8; 64];
            let mut cursor = std::io::Cursor::new(&mut usual[..]);
            write!(cursor, "{}", destination.parse::<SocketAddr>().ok()?).ok()?;
            let written = usize::try_from(cursor.position()).ok()?;
            let usual = std::str::from_utf8(usual.get(..written)?).ok()?;
            (usual != destination).then(|| self.by_address.get(usual)).flatten()
        });
        match at {
            Some(&At::Frontend(i)) => self.frontends.get(i).map_or(Destination::PassThrough(None), Destination::Frontend),
            Some(&At::PassThrough(i)) => Destination::PassThrough(self.pass_through.get(i).map(String::as_str)),
            None => Destination::PassThrough(None),
        }
    }

    /// The frontend of a Service port named directly, for tools that know the Service.
    pub fn frontend_of(&self, namespace: &str, name: &str, port: u16) -> Option<&Frontend> {
        self.frontends.iter().find(|f| f.namespace == namespace && f.name == name && f.port == port)
    }

    /// Routes a request that arrived at `frontend` (`None`: not a frontend with routes).
    pub fn route(&self, frontend: Option<&Frontend>, request: &Request<'_>) -> Outcome<'_> {
        let Some(frontend) = frontend else { return Outcome::PassThrough };
        let (path, query) = request.path_and_query();
        let first = self
            .index
            .first_match(&frontend.index, path, |_, candidate| self.conditions.hold(&candidate.conditions, request, path, query));
        first
            .and_then(|(_, candidate)| {
                let route = self.routes.get(candidate.route as usize)?;
                let rule_index = candidate.rule as usize;
                let rule = route.rules.get(rule_index)?;
                Some(Outcome::Matched(Matched { route, rule_index, rule }))
            })
            .unwrap_or(Outcome::NoMatch)
    }

    pub fn frontends(&self) -> &[Frontend] {
        &self.frontends
    }

    /// Whether the filter counts requests under [`crate::metrics`]'s series.
    pub fn metrics(&self) -> bool {
        self.metrics
    }

    /// Where the filter reads a request's destination.
    pub fn destination_source(&self) -> DestinationSource {
        self.destination_source
    }

    /// Every distinct list of mirrors a forwarded request may need; the route configuration
    /// has one route per set (see [`crate::mirror`]). Empty when no rule mirrors.
    pub fn mirror_sets(&self) -> &[MirrorSet] {
        &self.mirror_sets
    }
}

/// How Envoy writes an address in `destination.address`: Rust's canonical forms are the same
/// (RFC 5952 for IPv6, in brackets).
fn address_key(ip: IpAddr, written: &str, port: u16) -> Box<str> {
    match ip {
        // The parser takes IPv4 only in its usual form (no leading zeros): as written.
        IpAddr::V4(_) => {
            let mut key = String::with_capacity(written.len() + 6);
            key.push_str(written);
            let _ = write!(key, ":{port}");
            key.into_boxed_str()
        }
        IpAddr::V6(_) => SocketAddr::new(ip, port).to_string().into_boxed_str(),
    }
}

/// What routing reads: what any entry reads.
fn read_inputs(entries: &[MatchEntry]) -> Inputs {
    entries.iter().fold(Inputs::default(), |inputs, entry| inputs.union(entry.matcher.inputs()))
}

/// The PathPrefix of an HTTPRoute rule whose one match is a PathPrefix: what `ReplacePrefixMatch`
/// replaces (the CRD allows it on no other rule).
pub fn only_prefix(kind: RouteKind, matches: &[MatchDoc]) -> Option<&str> {
    match (kind, matches) {
        (RouteKind::Http, [MatchDoc { path: Some(PathMatchDoc { kind: PathMatchType::PathPrefix, value }), .. }]) => {
            Some(value.as_str())
        }
        _ => None,
    }
}

fn compile_route(doc: &RouteDoc, targets: &[Arc<BackendTarget>], mirror_sets: &mut MirrorSets) -> Result<Route, String> {
    let rules = doc
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let prefix = only_prefix(doc.kind, &rule.matches);
            let mut backends = rule
                .backends
                .iter()
                .enumerate()
                .map(|(k, b)| Backend::compile(b, targets, prefix).map_err(|e| format!("rules[{i}].backends[{k}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let filters = RouteFilters::compile(&rule.filters, prefix).map_err(|e| format!("rules[{i}].filters: {e}"))?;
            for backend in &mut backends {
                let mirrors: Vec<Mirror> = filters.mirrors.iter().chain(backend.filters.mirrors.iter()).cloned().collect();
                backend.mirror_set = (!mirrors.is_empty()).then(|| mirror_sets.intern(mirrors));
            }
            if filters.redirect.is_some() && !rule.backends.is_empty() {
                return Err(format!("rules[{i}]: a rule with a redirect has no backends"));
            }
            // Boxed, and only when there is one: most rules have none.
            let policy = RequestPolicy::compile(rule.timeouts.as_deref(), rule.retry.as_deref())
                .map_err(|e| format!("rules[{i}]: {e}"))?;
            let policy = (!policy.is_empty()).then(|| Box::new(policy));
            Ok(RouteRule { name: rule.name.clone(), backends: BackendSet::new(backends), filters, policy })
        })
        .collect::<Result<_, String>>()?;
    Ok(Route { kind: doc.kind, namespace: doc.namespace.clone(), name: doc.name.clone(), rules })
}
