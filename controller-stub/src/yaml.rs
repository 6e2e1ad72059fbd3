//! Multi-document YAML read into a small tree whose every node (mapping keys included) knows
//! its 1-based line, so that validation can point at the exact place of a mistake. Scalars keep
//! their text and whether they were quoted; the decoder gives them a type, as the API server
//! would after YAML-to-JSON conversion.
//!
//! yaml-rust2 does the scanning and parsing; this module only builds the tree from its marked
//! events. It is kept because yaml-rust2's own `Yaml` tree and the serde readers (serde_yaml and
//! its forks) drop positions once a value is parsed and type scalars themselves, while building
//! from the events keeps a line on every key and value and applies the depth and alias limits
//! below as the tree grows.

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

/// The deepest nesting of lists and mappings a file may have. Gateway API manifests need about
/// ten levels; the limit keeps a hostile file (`[[[[...`) from exhausting the stack of anything
/// that walks the tree.
pub const MAX_DEPTH: usize = 100;

/// The most nodes the aliases of one file may expand to. Every alias is a copy of its anchor,
/// so a few lines of anchors on anchors ("billion laughs") would otherwise take all memory.
pub const MAX_ALIAS_NODES: usize = 100_000;

/// Parses every document of `text`. Documents that are empty (or just `null`) are left out.
/// The parser's events are consumed one by one (yaml-rust2's own `load` recurses once per
/// level of nesting), so the depth and alias limits apply before anything deep is built.
pub fn parse(text: &str) -> Result<Vec<Document>, YamlError> {
    // A byte order mark may open a YAML stream; editors on Windows write one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(error) = unprintable(text) {
        return Err(error);
    }
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((event, mark)) => {
                builder.on_event(event, mark);
                if let Some(error) = builder.error.take() {
                    return Err(error);
                }
            }
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
    }
    Ok(builder.documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// The first character YAML does not allow (YAML 1.2 `c-printable`: no control characters
/// but tab and line breaks, no DEL, no C1 controls but NEL, no U+FFFE/U+FFFF). yaml-rust2 takes
/// a NUL for the end of the text and would silently drop whatever follows it.
fn unprintable(text: &str) -> Option<YamlError> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}')
            || c >= '\u{10000}'
    };
    let (at, c) = text.char_indices().find(|&(_, c)| !printable(c))?;
    let before = text.get(..at).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    Some(YamlError {
        line,
        message: format!(
            "invalid YAML: control character U+{:04X} at column {column} (YAML allows printable characters only; is this a binary file?)",
            u32::from(c)
        ),
    })
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
    Seq { line: usize, anchor: usize, items: Vec<Node>, shape: Shape },
    Map { line: usize, anchor: usize, entries: Vec<(Node, Node)>, key: Option<Node>, shape: Shape },
}

impl Open {
    fn shape(&mut self) -> &mut Shape {
        match self {
            Open::Seq { shape, .. } | Open::Map { shape, .. } => shape,
        }
    }
}

/// How big a finished node is: its node count and its height (a scalar is 1 high).
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    nodes: usize,
    height: usize,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    documents: Vec<Node>,
    anchors: HashMap<usize, (Node, Shape)>,
    /// Nodes copied in by aliases so far, in the whole stream.
    expanded: usize,
    error: Option<YamlError>,
}

impl Builder {
    fn finish(&mut self, node: Node, anchor: usize, shape: Shape) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), shape));
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(open) => {
                let parent = open.shape();
                parent.nodes += shape.nodes;
                parent.height = parent.height.max(shape.height + 1);
                match open {
                    Open::Seq { items, .. } => items.push(node),
                    Open::Map { entries, key, .. } => match key.take() {
                        None => *key = Some(node),
                        Some(k) => entries.push((k, node)),
                    },
                }
            }
        }
    }

    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError { line, message });
        }
    }

    /// Opens a list or mapping, unless that nests too deep.
    fn open(&mut self, line: usize, open: Open) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(line, format!("invalid YAML: lists and mappings nested deeper than {MAX_DEPTH} levels"));
        } else {
            self.stack.push(open);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line().max(1);
        let empty = Shape { nodes: 1, height: 1 };
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                self.finish(Node { line, value: Value::Scalar(Scalar { text, plain }) }, anchor, empty);
            }
            Event::SequenceStart(anchor, _) => self.open(line, Open::Seq { line, anchor, items: Vec::new(), shape: empty }),
            Event::MappingStart(anchor, _) => {
                self.open(line, Open::Map { line, anchor, entries: Vec::new(), key: None, shape: empty })
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Seq { line, anchor, items, shape }) => {
                    self.finish(Node { line, value: Value::Seq(items) }, anchor, shape)
                }
                Some(Open::Map { line, anchor, entries, shape, .. }) => {
                    self.finish(Node { line, value: Value::Map(entries) }, anchor, shape)
                }
                None => {}
            },
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(&(_, shape)) if self.stack.len() + shape.height > MAX_DEPTH + 1 => {
                    self.fail(line, format!("invalid YAML: this alias nests lists and mappings deeper than {MAX_DEPTH} levels"))
                }
                Some(&(_, shape)) if self.expanded + shape.nodes > MAX_ALIAS_NODES => {
                    self.fail(line, format!("invalid YAML: the aliases expand to more than {MAX_ALIAS_NODES} nodes"))
                }
                Some((node, shape)) => {
                    let (mut node, shape) = (node.clone(), *shape);
                    self.expanded += shape.nodes;
                    node.line = line;
                    self.finish(node, 0, shape);
                }
                None => self.fail(line, "invalid YAML: unknown alias".to_owned()),
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
        assert_eq!(
            glued_key("        service:echo_basic.grpcecho.GrpcEcho").as_deref(),
            Some("missing space after \"service:\"")
        );
        assert_eq!(glued_key("http://example.com"), None);
        assert_eq!(glued_key("service: x"), None);
        assert_eq!(glued_key("10:30"), None);
    }

    #[test]
    fn deep_flow_nesting_is_refused_without_overflowing_the_stack() {
        // yaml-rust2's scanner stops flow nesting at 255 levels itself, ahead of the builder.
        let scanner_limit = YamlError { line: 1, message: "invalid YAML: recursion limit exceeded".to_owned() };
        assert_eq!(parse(&"[".repeat(10_000)).unwrap_err(), scanner_limit);
        assert_eq!(parse(&format!("{}{}", "[".repeat(200_000), "]".repeat(200_000))).unwrap_err(), scanner_limit);
        assert_eq!(parse(&"{a: ".repeat(10_000)).unwrap_err(), scanner_limit);
        // Below the scanner's limit, the builder's applies.
        let ours =
            YamlError { line: 1, message: format!("invalid YAML: lists and mappings nested deeper than {MAX_DEPTH} levels") };
        assert_eq!(parse(&format!("{}{}", "[".repeat(150), "]".repeat(150))).unwrap_err(), ours);
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        let text: String = (0..150).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, 101);
        assert!(err.message.contains("nested deeper than 100 levels"), "{err:?}");
    }

    #[test]
    fn deep_compact_block_lists_are_refused() {
        // `- - - - x`: block nesting without flow brackets, which the scanner does not limit.
        let err = parse(&format!("{}x\n", "- ".repeat(100_000))).unwrap_err();
        assert_eq!(
            err,
            YamlError { line: 1, message: format!("invalid YAML: lists and mappings nested deeper than {MAX_DEPTH} levels") }
        );
    }

    #[test]
    fn nesting_up_to_the_limit_is_read() {
        let text = format!("{}x{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(parse(&text).unwrap().len(), 1);
    }

    #[test]
    fn alias_bomb_is_refused_before_it_expands() {
        // Billion laughs: ten levels of ten aliases each would be 10^10 nodes.
        let mut text = String::from("a0: &a0 [lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = parse(&text).unwrap_err();
        assert_eq!(err.message, format!("invalid YAML: the aliases expand to more than {MAX_ALIAS_NODES} nodes"));
        assert!((6..=10).contains(&err.line), "{err:?}");
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        // Each anchor nests the previous one 60 levels deeper: few nodes, great depth.
        let mut text = format!("a0: &a0 {}x{}\n", "[".repeat(60), "]".repeat(60));
        for i in 1..4 {
            text.push_str(&format!("a{i}: &a{i} {}*a{}{}\n", "[".repeat(60), i - 1, "]".repeat(60)));
        }
        let err = parse(&text).unwrap_err();
        assert_eq!(
            err,
            YamlError {
                line: 2,
                message: format!("invalid YAML: this alias nests lists and mappings deeper than {MAX_DEPTH} levels")
            }
        );
    }

    #[test]
    fn an_unknown_alias_is_an_error() {
        assert_eq!(parse("a: 1\n---\nb: *x\n").unwrap_err().message, "invalid YAML: while parsing node, found unknown anchor");
    }
}
