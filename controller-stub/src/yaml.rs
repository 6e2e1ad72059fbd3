//! Multi-document YAML read into a small tree whose every node (mapping keys included) knows
//! its 1-based line, so that validation can point at the exact place of a mistake. Scalars keep
//! their text and whether they were quoted; the decoder gives them a type, as the API server
//! would after YAML-to-JSON conversion.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based.
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in written order; keys are nodes so they keep their line.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    /// Plain (unquoted, not a block scalar): only these can be null, booleans or numbers.
    pub plain: bool,
}

impl Scalar {
    /// `null`, `~` or nothing at all, written plain.
    pub fn is_null(&self) -> bool {
        self.plain && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }

    pub fn as_bool(&self) -> Option<bool> {
        if !self.plain {
            return None;
        }
        match self.text.as_str() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        }
    }

    /// A YAML integer (decimal, `0x`, `0o`), written plain.
    pub fn as_int(&self) -> Option<i64> {
        if !self.plain {
            return None;
        }
        let text = self.text.as_str();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let value = if let Some(hex) = digits.strip_prefix("0x") {
            i64::from_str_radix(hex, 16).ok()?
        } else if let Some(oct) = digits.strip_prefix("0o") {
            i64::from_str_radix(oct, 8).ok()?
        } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok()?
        } else {
            return None;
        };
        Some(if negative { -value } else { value })
    }

    /// A plain scalar that YAML reads as a float (`1.5`, `1e3`, `.inf`).
    pub fn is_float(&self) -> bool {
        self.plain
            && (self.text.parse::<f64>().is_ok() && self.text.bytes().any(|b| b.is_ascii_digit())
                || matches!(self.text.as_str(), ".inf" | "-.inf" | "+.inf" | ".nan" | ".NaN" | ".Inf"))
    }

    /// A string, as the API server sees it: quoted anything, or a plain scalar that is not
    /// null, a boolean or a number.
    pub fn as_str(&self) -> Option<&str> {
        if self.is_null() || self.as_bool().is_some() || self.as_int().is_some() || self.is_float() {
            None
        } else {
            Some(&self.text)
        }
    }
}

impl Node {
    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.scalar().is_some_and(Scalar::is_null)
    }

    /// What this node is, for "expected a mapping, found ..." messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
            Value::Scalar(s) if s.is_null() => "null".to_owned(),
            Value::Scalar(s) if s.as_bool().is_some() => format!("the boolean {}", s.text),
            Value::Scalar(s) if s.as_int().is_some() || s.is_float() => format!("the number {}", s.text),
            Value::Scalar(s) => format!("the string {:?}", s.text),
        }
    }
}

/// A document of a YAML stream: its root node.
pub type Document = Node;

/// Why a YAML stream could not be read; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

/// Parses every document of `text`. Documents that are empty (or just `null`) are left out.
pub fn parse(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    match parser.load(&mut builder, true) {
        Ok(()) => {}
        Err(e) => {
            let line = e.marker().line().max(1);
            let mut message = format!("invalid YAML: {}", e.info());
            let mut hints = Vec::new();
            if e.info().contains("expected '-' indicator") {
                hints.push("the items of one list must all start in the same column".to_owned());
            }
            hints.extend(missing_space_hint(text, line));
            if !hints.is_empty() {
                message.push_str(&format!(" ({})", hints.join("; ")));
            }
            return Err(YamlError { line, message });
        }
    }
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(builder.documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// `key:value` written without the space YAML needs after the colon, near `line`: the usual
/// reason a mapping ends up malformed. Names the line when it is not `line` itself.
fn missing_space_hint(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let near = |n: usize| n.abs_diff(line);
    let mut candidates: Vec<usize> = (line.saturating_sub(3).max(1)..=line + 2).collect();
    candidates.sort_by_key(|&n| (near(n), std::cmp::Reverse(n)));
    candidates.into_iter().find_map(|n| {
        let hint = lines.get(n - 1).and_then(|l| glued_key(l))?;
        Some(if n == line { hint } else { format!("line {n}: {hint}") })
    })
}

/// For a scalar like `service:echo_basic.Echo` (or a line `  - service:x`), the hint
/// `missing space after "service:"`. URLs (`http://...`) and times (`10:30`) are left alone.
pub fn glued_key(text: &str) -> Option<String> {
    let text = text.trim_start().trim_start_matches("- ").trim();
    let (key, rest) = text.split_once(':')?;
    let starts_like_key = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let key_ok = starts_like_key && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let rest_ok = rest.chars().next().is_some_and(|c| !c.is_whitespace() && c != '/' && c != ':');
    (key_ok && rest_ok).then(|| format!("missing space after \"{key}:\""))
}

enum Open {
    Seq { line: usize, anchor: usize, items: Vec<Node> },
    Map { line: usize, anchor: usize, entries: Vec<(Node, Node)>, key: Option<Node> },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    documents: Vec<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<YamlError>,
}

impl Builder {
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line().max(1);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.finish(Node { line, value: Value::Scalar(Scalar { text, plain }) }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq { line, anchor, items: Vec::new() }),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Open::Map { line, anchor, entries: Vec::new(), key: None })
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Seq { line, anchor, items }) => self.finish(Node { line, value: Value::Seq(items) }, anchor),
                Some(Open::Map { line, anchor, entries, .. }) => {
                    self.finish(Node { line, value: Value::Map(entries) }, anchor)
                }
                None => {}
            },
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.line = line;
                    self.finish(node, 0);
                }
                None => {
                    if self.error.is_none() {
                        self.error = Some(YamlError { line, message: "invalid YAML: unknown alias".to_owned() });
                    }
                }
            },
            Event::DocumentStart => self.anchors.clear(),
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn keys_and_values_keep_their_lines() {
        let docs = parse("a: 1\nb:\n  - x\n  - y: 2\n").unwrap();
        assert_eq!(docs.len(), 1);
        let entries = map(&docs[0]);
        assert_eq!(entries[0].0.line, 1);
        assert_eq!(entries[1].0.line, 2);
        let Value::Seq(items) = &entries[1].1.value else { panic!() };
        assert_eq!(items[0].line, 3);
        assert_eq!(map(&items[1])[0].0.line, 4);
    }

    #[test]
    fn several_documents_and_empty_ones_skipped() {
        let docs = parse("---\n---\na: 1\n---\n# only a comment\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(map(&docs[1])[0].0.line, 7);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn scalar_types_follow_yaml_core_schema() {
        let s = |text: &str, plain| Scalar { text: text.into(), plain };
        assert_eq!(s("80", true).as_int(), Some(80));
        assert_eq!(s("80", false).as_int(), None);
        assert_eq!(s("80", false).as_str(), Some("80"));
        assert_eq!(s("80", true).as_str(), None);
        assert!(s("~", true).is_null());
        assert_eq!(s("true", true).as_bool(), Some(true));
        assert!(s("1.5", true).is_float());
        assert_eq!(s("echo", true).as_str(), Some("echo"));
        assert_eq!(s("2024-05-01T10:00:00Z", true).as_str(), Some("2024-05-01T10:00:00Z"));
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let docs = parse("a: &x {k: v}\nb: *x\n").unwrap();
        let entries = map(&docs[0]);
        assert_eq!(entries[1].1.line, 2);
        assert_eq!(map(&entries[1].1)[0].1.scalar().unwrap().text, "v");
    }

    #[test]
    fn malformed_yaml_reports_its_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        assert!(err.message.starts_with("invalid YAML: "), "{err:?}");
    }

    #[test]
    fn product_page_grpcroute_text_gets_both_hints() {
        let text = include_str!("../tests/fixtures/product-page/grpcroute.yaml");
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, 12);
        assert_eq!(
            err.message,
            "invalid YAML: while parsing a block collection, did not find expected '-' indicator \
             (the items of one list must all start in the same column; line 13: missing space after \"service:\")"
        );
        // With the list indented consistently, the colon is what remains.
        let err = parse(&text.replace("   - matches", "  - matches")).unwrap_err();
        assert_eq!(err.line, 14);
        assert_eq!(
            err.message,
            "invalid YAML: mapping values are not allowed in this context (line 13: missing space after \"service:\")"
        );
    }

    #[test]
    fn glued_key_hint() {
        assert_eq!(glued_key("        service:echo_basic.grpcecho.GrpcEcho").as_deref(), Some("missing space after \"service:\""));
        assert_eq!(glued_key("http://example.com"), None);
        assert_eq!(glued_key("service: x"), None);
        assert_eq!(glued_key("10:30"), None);
    }
}
