//! The Gateway API's `RequestHeaderModifier` and `ResponseHeaderModifier` filters
//! (`HTTPHeaderFilter`): `set` replaces a header, `add` appends a value to any the header
//! already has, `remove` drops it. Header names are case-insensitive.
//!
//! A request meets up to two modifiers per direction: its rule's, then its backendRef's, so the
//! backendRef's (the more specific) wins where both set one header. Each modifier removes
//! first, then sets, then adds, which is the order Envoy's own route header mutations follow:
//! a header both removed and set ends up set, the same in both data planes.

use crate::document::HeaderModifierDoc;

/// A compiled `HTTPHeaderFilter`: names in lower case, every name and value valid for Envoy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderModifier {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// One change to a header list, as the host applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEdit<'m> {
    Remove(&'m str),
    Set(&'m str, &'m str),
    Add(&'m str, &'m str),
}

impl HeaderModifier {
    /// Refuses names that are not RFC 7230 tokens, pseudo-headers and `host` (which Envoy does
    /// not let a route change), meshroute's own `x-meshroute-` headers, and values holding
    /// CR, LF or NUL.
    pub fn compile(doc: &HeaderModifierDoc) -> Result<Self, String> {
        let name = |name: &str| -> Result<String, String> {
            let lower = name.to_ascii_lowercase();
            if lower.is_empty() || !lower.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
                return Err(format!("header name {name:?} is not a valid header name"));
            }
            if lower == "host" || lower.starts_with("x-meshroute-") {
                return Err(format!("header {name:?} cannot be changed by a header modifier"));
            }
            Ok(lower)
        };
        let pair = |h: &crate::document::HeaderDoc| -> Result<(String, String), String> {
            if h.value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(format!("header {:?}: a value may not hold CR, LF or NUL", h.name));
            }
            Ok((name(&h.name)?, h.value.clone()))
        };
        Ok(HeaderModifier {
            set: doc.set.iter().map(pair).collect::<Result<_, _>>()?,
            add: doc.add.iter().map(pair).collect::<Result<_, _>>()?,
            remove: doc.remove.iter().map(|n| name(n)).collect::<Result<_, _>>()?,
        })
    }

    /// The edits in the order they apply: removals, then `set`, then `add`.
    pub fn edits(&self) -> impl Iterator<Item = HeaderEdit<'_>> {
        self.remove
            .iter()
            .map(|name| HeaderEdit::Remove(name))
            .chain(self.set.iter().map(|(name, value)| HeaderEdit::Set(name, value)))
            .chain(self.add.iter().map(|(name, value)| HeaderEdit::Add(name, value)))
    }
}

/// The modifiers one direction of a request meets: its rule's, then its backendRef's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderChanges<'t> {
    pub rule: Option<&'t HeaderModifier>,
    pub backend: Option<&'t HeaderModifier>,
}

impl<'t> HeaderChanges<'t> {
    pub fn is_empty(&self) -> bool {
        self.rule.is_none() && self.backend.is_none()
    }

    /// Every edit, rule first.
    pub fn edits(&self) -> impl Iterator<Item = HeaderEdit<'t>> {
        self.rule.into_iter().chain(self.backend).flat_map(HeaderModifier::edits)
    }

    /// Applies the edits to `headers` (lower-case names; a header may appear several times):
    /// what the host does to a request or a response, for local replies and dry runs.
    pub fn apply(&self, headers: &mut Vec<(String, String)>) {
        for edit in self.edits() {
            match edit {
                HeaderEdit::Remove(name) => headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
                HeaderEdit::Set(name, value) => {
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                    headers.push((name.to_owned(), value.to_owned()));
                }
                HeaderEdit::Add(name, value) => headers.push((name.to_owned(), value.to_owned())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::HeaderDoc;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn header(name: &str, value: &str) -> HeaderDoc {
        HeaderDoc { name: name.into(), value: value.into() }
    }

    fn modifier(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> HeaderModifier {
        HeaderModifier::compile(&HeaderModifierDoc {
            set: set.iter().map(|(n, v)| header(n, v)).collect(),
            add: add.iter().map(|(n, v)| header(n, v)).collect(),
            remove: remove.iter().map(|n| (*n).to_owned()).collect(),
        })
        .unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn set_replaces_add_appends_remove_drops_whatever_the_case() {
        let m = modifier(&[("X-Set", "new")], &[("x-add", "two")], &[("X-Gone")]);
        let mut h = headers(&[("x-set", "old"), ("x-add", "one"), ("x-gone", "a"), ("x-gone", "b"), ("other", "o")]);
        HeaderChanges { rule: Some(&m), backend: None }.apply(&mut h);
        assert_eq!(h, headers(&[("x-add", "one"), ("other", "o"), ("x-set", "new"), ("x-add", "two")]));
    }

    #[test]
    fn a_header_both_removed_and_set_ends_up_set() {
        let m = modifier(&[("x-a", "set")], &[], &["x-a"]);
        let mut h = headers(&[("x-a", "client")]);
        HeaderChanges { rule: Some(&m), backend: None }.apply(&mut h);
        assert_eq!(h, headers(&[("x-a", "set")]));
    }

    #[test]
    fn the_backend_modifier_applies_after_the_rule_and_wins() {
        let rule = modifier(&[("x-who", "rule")], &[], &[]);
        let backend = modifier(&[("x-who", "backend")], &[], &[]);
        let mut h = Vec::new();
        HeaderChanges { rule: Some(&rule), backend: Some(&backend) }.apply(&mut h);
        assert_eq!(h, headers(&[("x-who", "backend")]));
    }

    #[test]
    fn names_envoy_or_meshroute_keep_for_themselves_are_refused() {
        for bad in ["Host", "x-meshroute-cluster", "bad name", "", ":path"] {
            let doc = HeaderModifierDoc { set: vec![header(bad, "v")], ..HeaderModifierDoc::default() };
            assert!(HeaderModifier::compile(&doc).is_err(), "{bad:?}");
        }
        let doc = HeaderModifierDoc { add: vec![header("x-ok", "a\r\nb")], ..HeaderModifierDoc::default() };
        assert!(HeaderModifier::compile(&doc).is_err());
    }
}
