//! The `filters` of a rule or a backendRef (`HTTPRouteFilter`, `GRPCRouteFilter`), validated as
//! the Gateway API CRDs validate them, into the table's [`FiltersDoc`]. A filter type meshroute
//! does not implement yet is never ignored: its rule is dropped, with a warning on its `type`
//! (see [`decode_filters`]); no one should believe a CORS policy is applied when it is not.

use meshroute_filter::document::{
    FiltersDoc, FractionDoc, HeaderDoc, HeaderModifierDoc, MatchDoc, PathModifierDoc, RedirectDoc, RewriteDoc, RouteKind,
};

use meshroute_filter::table::only_prefix;

use crate::model::{BackendRef, MirrorRef};
use crate::reader::{join, Fields, Reader};
use crate::route::object_ref;
use crate::syntax;
use crate::yaml::Node;

/// At most this many filters per rule or backendRef, and this many entries per `set`, `add` and
/// `remove`.
pub const MAX_FILTERS: usize = 16;
const MAX_HEADERS: usize = 16;

/// Every filter type of the API, with the field that carries its configuration; `None` for the
/// types meshroute does not implement yet.
const HTTP_FILTERS: &[(&str, &str, Option<Kind>)] = &[
    ("RequestHeaderModifier", "requestHeaderModifier", Some(Kind::RequestHeaders)),
    ("ResponseHeaderModifier", "responseHeaderModifier", Some(Kind::ResponseHeaders)),
    ("RequestMirror", "requestMirror", Some(Kind::Mirror)),
    ("RequestRedirect", "requestRedirect", Some(Kind::Redirect)),
    ("URLRewrite", "urlRewrite", Some(Kind::Rewrite)),
    ("CORS", "cors", None),
    ("ExternalAuth", "externalAuth", None),
    ("ExtensionRef", "extensionRef", None),
];

const GRPC_FILTERS: &[(&str, &str, Option<Kind>)] = &[
    ("RequestHeaderModifier", "requestHeaderModifier", Some(Kind::RequestHeaders)),
    ("ResponseHeaderModifier", "responseHeaderModifier", Some(Kind::ResponseHeaders)),
    ("RequestMirror", "requestMirror", Some(Kind::Mirror)),
    ("ExtensionRef", "extensionRef", None),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RequestHeaders,
    ResponseHeaders,
    Redirect,
    Rewrite,
    Mirror,
}

/// A `filters` list, decoded.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Every filter but the mirrors, as the filter reads them.
    pub doc: FiltersDoc,
    /// The RequestMirror filters, in order, to be resolved when the table is compiled.
    pub mirrors: Vec<MirrorRef>,
    /// Why the rule must be dropped: a filter of a type meshroute does not implement.
    pub dropped: Option<String>,
}

/// Where a `filters` list is: on a rule, or on one of its backendRefs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Rule,
    BackendRef,
}

/// The `filters` field of `f` (a rule or a backendRef of a route of `kind` in `namespace`), at
/// `path`.
///
/// Such a filter is not an error that rejects the route: as the Gateway API prescribes for a
/// route that is partly invalid, its rule is dropped (requests it would take get 500, never a
/// backend), the route's other rules are served and its status says `PartiallyInvalid`.
pub fn decode_filters(r: &mut Reader<'_>, f: &Fields<'_>, path: &str, kind: RouteKind, level: Level, namespace: &str) -> Decoded {
    let mut out = FiltersDoc::default();
    let mut mirrors = Vec::new();
    let mut dropped = None;
    let Some(node) = f.get("filters") else { return Decoded::default() };
    let table = match kind {
        RouteKind::Http => HTTP_FILTERS,
        RouteKind::Grpc => GRPC_FILTERS,
    };
    let lpath = join(path, "filters");
    for (i, item) in r.list(node, &lpath, Some(MAX_FILTERS)).iter().enumerate() {
        let fpath = format!("{lpath}[{i}]");
        let mut allowed = vec!["type"];
        allowed.extend(table.iter().map(|(_, field, _)| *field));
        let Some(ff) = r.fields(item, &fpath, &allowed) else { continue };
        let Some(type_node) = r.required(&ff, "type", &fpath) else { continue };
        let types: Vec<(&str, usize)> = table.iter().enumerate().map(|(k, (name, _, _))| (*name, k)).collect();
        let Some(k) = r.choice(type_node, &join(&fpath, "type"), &types) else { continue };
        let Some(&(type_name, field, implemented)) = table.get(k) else { continue };
        // CEL: the field of the filter's type is required, every other one forbidden.
        for (_, other, _) in table.iter().filter(|(_, other, _)| *other != field) {
            if let Some(n) = ff.get(other) {
                r.error(n.line, &join(&fpath, other), format!("must not be set when type is {type_name}"));
            }
        }
        let Some(implemented) = implemented else {
            let why = format!("{} {type_name} is not supported by meshroute yet", join(&fpath, "type"));
            r.warning(
                type_node.line,
                &join(&fpath, "type"),
                format!(
                    "{type_name} is not supported by meshroute yet: the rule is dropped and the requests it would take get 500"
                ),
            );
            dropped.get_or_insert(why);
            continue;
        };
        let Some(config) = r.required(&ff, field, &fpath) else { continue };
        let cpath = join(&fpath, field);
        if implemented == Kind::Redirect && level == Level::BackendRef {
            r.error(
                type_node.line,
                &join(&fpath, "type"),
                "RequestRedirect answers for the whole rule: put it on the rule, not on a backendRef",
            );
            continue;
        }
        let taken = match implemented {
            Kind::RequestHeaders => out.request_headers.is_some(),
            Kind::ResponseHeaders => out.response_headers.is_some(),
            Kind::Redirect => out.redirect.is_some(),
            Kind::Rewrite => out.rewrite.is_some(),
            // The API allows several, each its own copy.
            Kind::Mirror => false,
        };
        if taken {
            r.error(type_node.line, &join(&fpath, "type"), format!("{type_name} filter cannot be repeated"));
            continue;
        }
        match implemented {
            Kind::RequestHeaders => out.request_headers = header_modifier(r, config, &cpath).map(Box::new),
            Kind::ResponseHeaders => out.response_headers = header_modifier(r, config, &cpath).map(Box::new),
            Kind::Redirect => out.redirect = redirect(r, config, &cpath).map(Box::new),
            Kind::Rewrite => out.rewrite = rewrite(r, config, &cpath).map(Box::new),
            Kind::Mirror => mirrors.extend(mirror(r, config, &cpath, namespace)),
        }
    }
    Decoded { doc: out, mirrors, dropped }
}

/// `HTTPRequestMirrorFilter`: `backendRef` (a Service port, in the route's namespace unless it
/// says otherwise), and at most one of `percent` (0 to 100) and `fraction` (`numerator` at least
/// 0 and at most `denominator`, which is above 0 and 100 when left out).
fn mirror(r: &mut Reader<'_>, node: &Node, path: &str, namespace: &str) -> Option<MirrorRef> {
    let f = r.fields(node, path, &["backendRef", "percent", "fraction"])?;
    let bpath = join(path, "backendRef");
    let to = r.required(&f, "backendRef", path).and_then(|n| {
        let b = r.fields(n, &bpath, &["group", "kind", "name", "namespace", "port"])?;
        object_ref(r, &b, &bpath, namespace)
    });
    let fraction = match (f.get("percent"), f.get("fraction")) {
        (Some(_), Some(n)) => {
            r.error(n.line, &join(path, "fraction"), "only one of percent or fraction may be specified");
            return None;
        }
        (Some(n), None) => {
            let percent = r.int(n, &join(path, "percent"), 0, 100).and_then(|p| u32::try_from(p).ok())?;
            Some(FractionDoc { numerator: percent, denominator: 100 })
        }
        (None, Some(n)) => {
            let fpath = join(path, "fraction");
            let ff = r.fields(n, &fpath, &["numerator", "denominator"])?;
            let numerator =
                r.required(&ff, "numerator", &fpath).and_then(|n| r.int(n, &join(&fpath, "numerator"), 0, i64::from(i32::MAX)));
            let denominator = match ff.get("denominator") {
                Some(n) => r.int(n, &join(&fpath, "denominator"), 1, i64::from(i32::MAX)),
                None => Some(100),
            };
            let (numerator, denominator) = (u32::try_from(numerator?).ok()?, u32::try_from(denominator?).ok()?);
            if numerator > denominator {
                r.error(n.line, &fpath, format!("numerator {numerator} must be less than or equal to denominator {denominator}"));
                return None;
            }
            Some(FractionDoc { numerator, denominator })
        }
        (None, None) => None,
    };
    let to = to?;
    r.note(
        node.line,
        path,
        "Envoy sends the copies in meshroute's own layouts (sync's listeners, the sidecar bootstrap, --mode native); \
         the static Istio EnvoyFilter layout does not",
    );
    Some(MirrorRef { to, fraction, path: bpath })
}

/// The CRD's rules across one rule's filters, matches and backendRefs: a RequestRedirect takes
/// no backendRefs and no URLRewrite beside it; `ReplacePrefixMatch` needs the rule to have
/// exactly one match, a PathPrefix.
pub fn check_rule(r: &mut Reader<'_>, line: usize, path: &str, rule: &FiltersDoc, backends: &[FiltersDoc], matches: &[MatchDoc]) {
    if rule.redirect.is_some() && rule.rewrite.is_some() {
        r.error(line, &join(path, "filters"), "may hold a RequestRedirect or a URLRewrite, not both");
    }
    if rule.redirect.is_some() && !backends.is_empty() {
        r.error(line, &join(path, "backendRefs"), "a rule with a RequestRedirect filter answers itself and takes no backendRefs");
    }
    let prefix_modifier = |f: &FiltersDoc| {
        let redirect = f.redirect.as_ref().and_then(|r| r.path.as_ref());
        let rewrite = f.rewrite.as_ref().and_then(|r| r.path.as_ref());
        redirect.into_iter().chain(rewrite).any(|p| matches!(p, PathModifierDoc::ReplacePrefixMatch(_)))
    };
    // Envoy's own routes rewrite the path per route, not per backend of a split.
    let path_of = |f: &FiltersDoc| f.rewrite.as_ref().and_then(|r| r.path.clone());
    let effective: Vec<Option<PathModifierDoc>> = backends.iter().map(|b| path_of(b).or_else(|| path_of(rule))).collect();
    if backends.iter().any(|b| path_of(b).is_some()) && effective.windows(2).any(|pair| pair[0] != pair[1]) {
        r.warning(
            line,
            &join(path, "backendRefs"),
            "its backendRefs rewrite the path differently: the filter applies each one's, but Envoy's own routes \
             (sync --mode native) rewrite a path per rule, and apply the rule's (or none)",
        );
    }
    let one_prefix = only_prefix(RouteKind::Http, matches).is_some();
    if (prefix_modifier(rule) || backends.iter().any(prefix_modifier)) && !one_prefix {
        r.error(line, &join(path, "matches"), "ReplacePrefixMatch needs exactly one match, and it must be a PathPrefix");
    }
}

/// Envoy's own routes (sync --mode native) carry mirror policies per route, never per cluster of
/// a weighted split: the mirrors of backendRefs that share requests must all be the same, or
/// native mode leaves them out (the rule's own mirrors apply in both modes).
pub fn check_mirrors(r: &mut Reader<'_>, line: usize, path: &str, backends: &[BackendRef]) {
    let shares: Vec<&BackendRef> = backends.iter().filter(|b| b.weight > 0).collect();
    let differ = shares.windows(2).any(|pair| pair[0].mirrors != pair[1].mirrors);
    if differ {
        r.warning(
            line,
            &join(path, "backendRefs"),
            "its backendRefs mirror differently: the filter copies each one's requests to its own mirrors, but Envoy's own \
             routes (sync --mode native) mirror per rule and leave these RequestMirror filters out",
        );
    }
}

/// `HTTPRequestRedirectFilter`: `scheme` (http, https), `hostname`, `port`, `path`, `statusCode`
/// (301, 302, 303, 307, 308; 302 when left out).
fn redirect(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<RedirectDoc> {
    let f = r.fields(node, path, &["scheme", "hostname", "path", "port", "statusCode"])?;
    let scheme = f.get("scheme").and_then(|n| r.one_of(n, &join(path, "scheme"), &["http", "https"]));
    let hostname = precise_hostname(r, &f, path);
    let port = f.get("port").and_then(|n| r.port(n, &join(path, "port")));
    let modifier = f.get("path").and_then(|n| path_modifier(r, n, &join(path, "path")));
    let status_code = match f.get("statusCode") {
        None => Some(302),
        Some(n) => {
            let spath = join(path, "statusCode");
            r.int(n, &spath, 100, 599).and_then(|code| {
                let code = u16::try_from(code).ok()?;
                let ok = matches!(code, 301 | 302 | 303 | 307 | 308);
                r.check(n.line, &spath, if ok { Ok(()) } else { Err(format!("{code} is not one of 301, 302, 303, 307, 308")) })
                    .then_some(code)
            })
        }
    };
    let valid = (f.get("scheme").is_none() || scheme.is_some())
        && (f.get("hostname").is_none() || hostname.is_some())
        && (f.get("port").is_none() || port.is_some())
        && (f.get("path").is_none() || modifier.is_some());
    valid.then_some(RedirectDoc { scheme, hostname, port, path: modifier, status_code: status_code? })
}

/// `HTTPURLRewriteFilter`: `hostname` and `path`.
fn rewrite(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<RewriteDoc> {
    let f = r.fields(node, path, &["hostname", "path"])?;
    let hostname = precise_hostname(r, &f, path);
    let modifier = f.get("path").and_then(|n| path_modifier(r, n, &join(path, "path")));
    let valid = (f.get("hostname").is_none() || hostname.is_some()) && (f.get("path").is_none() || modifier.is_some());
    valid.then_some(RewriteDoc { hostname, path: modifier })
}

/// A `PreciseHostname`: a DNS name, no wildcard, no IP address.
fn precise_hostname(r: &mut Reader<'_>, f: &Fields<'_>, path: &str) -> Option<String> {
    let node = f.get("hostname")?;
    let hpath = join(path, "hostname");
    let host = r.string(node, &hpath)?;
    let valid = if syntax::ip(&host).is_ok() || host.starts_with("*.") {
        Err(format!("{host:?} is not a precise hostname (no IP address, no wildcard)"))
    } else {
        syntax::dns_subdomain(&host)
    };
    r.check(node.line, &hpath, valid).then_some(host)
}

/// `HTTPPathModifier`: `type` ReplaceFullPath with `replaceFullPath`, or ReplacePrefixMatch with
/// `replacePrefixMatch` (which may be empty), each at most 1024 characters.
fn path_modifier(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<PathModifierDoc> {
    let f = r.fields(node, path, &["type", "replaceFullPath", "replacePrefixMatch"])?;
    let type_node = r.required(&f, "type", path)?;
    let full = r.choice(type_node, &join(path, "type"), &[("ReplaceFullPath", true), ("ReplacePrefixMatch", false)])?;
    let (field, other) = if full { ("replaceFullPath", "replacePrefixMatch") } else { ("replacePrefixMatch", "replaceFullPath") };
    if let Some(n) = f.get(other) {
        r.error(
            n.line,
            &join(path, other),
            format!("must not be set when type is {}", if full { "ReplaceFullPath" } else { "ReplacePrefixMatch" }),
        );
        return None;
    }
    let value_node = r.required(&f, field, path)?;
    let vpath = join(path, field);
    let value = r.string(value_node, &vpath)?;
    let valid = if value.len() > 1024 {
        Err("must be at most 1024 characters".to_owned())
    } else if value.is_empty() && !full {
        Ok(())
    } else {
        syntax::http_path(&value)
    };
    let modifier = if full { PathModifierDoc::ReplaceFullPath(value) } else { PathModifierDoc::ReplacePrefixMatch(value) };
    r.check(value_node.line, &vpath, valid).then_some(modifier)
}

/// An `HTTPHeaderFilter`: `set` and `add` entries `{name, value}` with unique names (compared
/// case-insensitively, as header names are), `remove` a list of unique names. Envoy keeps `host`
/// and meshroute its `x-meshroute-` headers for themselves: those are refused.
fn header_modifier(r: &mut Reader<'_>, node: &Node, path: &str) -> Option<HeaderModifierDoc> {
    let f = r.fields(node, path, &["set", "add", "remove"])?;
    let mut doc = HeaderModifierDoc::default();
    for (key, list) in [("set", &mut doc.set), ("add", &mut doc.add)] {
        let Some(items) = f.get(key) else { continue };
        let lpath = join(path, key);
        for (i, item) in r.list(items, &lpath, Some(MAX_HEADERS)).iter().enumerate() {
            let ipath = format!("{lpath}[{i}]");
            let Some(h) = r.fields(item, &ipath, &["name", "value"]) else { continue };
            let name = header_name(r, &h, &ipath);
            let value = r.req_string(&h, "value", &ipath).filter(|value| {
                let line = h.get("value").map_or(h.line(), |n| n.line);
                r.check(line, &join(&ipath, "value"), header_value(value))
            });
            let (Some(name), Some(value)) = (name, value) else { continue };
            if let Some(first) = list.iter().position(|h: &HeaderDoc| h.name.eq_ignore_ascii_case(&name)) {
                r.error(item.line, &join(&ipath, "name"), format!("{name:?} is already {lpath}[{first}]"));
                continue;
            }
            list.push(HeaderDoc { name, value });
        }
    }
    if let Some(items) = f.get("remove") {
        let lpath = join(path, "remove");
        for (i, item) in r.list(items, &lpath, Some(MAX_HEADERS)).iter().enumerate() {
            let ipath = format!("{lpath}[{i}]");
            let Some(name) = r.string(item, &ipath) else { continue };
            if !r.check(item.line, &ipath, syntax::header_name(&name).and_then(|()| changeable(&name))) {
                continue;
            }
            if let Some(first) = doc.remove.iter().position(|n| n.eq_ignore_ascii_case(&name)) {
                r.error(item.line, &ipath, format!("{name:?} is already {lpath}[{first}]"));
                continue;
            }
            doc.remove.push(name);
        }
    }
    Some(doc)
}

fn header_name(r: &mut Reader<'_>, f: &Fields<'_>, path: &str) -> Option<String> {
    let name = r.req_string(f, "name", path)?;
    let line = f.get("name").map_or(f.line(), |n| n.line);
    r.check(line, &join(path, "name"), syntax::header_name(&name).and_then(|()| changeable(&name))).then_some(name)
}

/// Headers a route may not change: `host` (Envoy refuses it in a route's header mutations; a
/// URLRewrite filter's `hostname` is the way) and meshroute's own `x-meshroute-*`.
fn changeable(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if lower == "host" {
        Err("Host cannot be changed by a header modifier (Envoy refuses it); rewrite it with URLRewrite's hostname".to_owned())
    } else if lower.starts_with("x-meshroute-") {
        Err(format!("{name:?} is meshroute's own header"))
    } else {
        Ok(())
    }
}

/// 1 to 4096 characters, without CR, LF or NUL (which no HTTP header may carry).
fn header_value(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 4096 {
        Err("must be 1 to 4096 characters".to_owned())
    } else if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        Err("a header value may not hold CR, LF or NUL".to_owned())
    } else {
        Ok(())
    }
}
