//! The `filters` of a rule or a backendRef (`HTTPRouteFilter`, `GRPCRouteFilter`), validated as
//! the Gateway API CRDs validate them, into the table's [`FiltersDoc`]. A filter type meshroute
//! does not implement yet is refused with an error on its `type`, never ignored: no one should
//! believe a redirect or a mirror is applied when it is not.

use meshroute_filter::document::{FiltersDoc, HeaderDoc, HeaderModifierDoc, RouteKind};

use crate::reader::{join, Fields, Reader};
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
    ("RequestMirror", "requestMirror", None),
    ("RequestRedirect", "requestRedirect", None),
    ("URLRewrite", "urlRewrite", None),
    ("CORS", "cors", None),
    ("ExtensionRef", "extensionRef", None),
];

const GRPC_FILTERS: &[(&str, &str, Option<Kind>)] = &[
    ("RequestHeaderModifier", "requestHeaderModifier", Some(Kind::RequestHeaders)),
    ("ResponseHeaderModifier", "responseHeaderModifier", Some(Kind::ResponseHeaders)),
    ("RequestMirror", "requestMirror", None),
    ("ExtensionRef", "extensionRef", None),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RequestHeaders,
    ResponseHeaders,
}

/// The `filters` field of `f` (a rule or a backendRef of a route of `kind`), at `path`.
pub fn decode_filters(r: &mut Reader<'_>, f: &Fields<'_>, path: &str, kind: RouteKind) -> FiltersDoc {
    let mut out = FiltersDoc::default();
    let Some(node) = f.get("filters") else { return out };
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
            r.error(type_node.line, &join(&fpath, "type"), format!("{type_name} is not supported by meshroute yet"));
            continue;
        };
        let Some(config) = r.required(&ff, field, &fpath) else { continue };
        let cpath = join(&fpath, field);
        let slot = match implemented {
            Kind::RequestHeaders => &mut out.request_headers,
            Kind::ResponseHeaders => &mut out.response_headers,
        };
        if slot.is_some() {
            r.error(type_node.line, &join(&fpath, "type"), format!("{type_name} filter cannot be repeated"));
            continue;
        }
        *slot = header_modifier(r, config, &cpath);
    }
    out
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
