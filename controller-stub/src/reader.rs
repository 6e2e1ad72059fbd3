//! Typed reading of one YAML document with every problem recorded against the field's path and
//! line. Readers never stop at the first problem: they return `None` for the bad field and carry
//! on, so one run reports everything.

use std::path::Path;

use crate::diag::Diagnostic;
use crate::syntax;
use crate::yaml::{glued_key, Node, Value};

/// Reads one document of one file; collects diagnostics.
pub struct Reader<'a> {
    pub file: &'a Path,
    /// `HTTPRoute default/echo-route`, once known.
    pub subject: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The entries of a mapping that passed the unknown-field check.
#[derive(Clone, Copy)]
pub struct Fields<'n> {
    pub node: &'n Node,
    entries: &'n [(Node, Node)],
}

impl<'n> Fields<'n> {
    /// The value of `key`; an explicit `null` counts as absent, as in JSON merge semantics.
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _)| k.scalar().is_some_and(|s| s.text == key)).map(|(_, v)| v).filter(|v| !v.is_null())
    }

    pub fn line(&self) -> usize {
        self.node.line
    }
}

/// `parent.child`, or `child` at the top.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a Path) -> Self {
        Reader { file, subject: None, diagnostics: Vec::new() }
    }

    pub fn error(&mut self, line: usize, field: &str, message: impl Into<String>) {
        self.push(Diagnostic::error(self.file, line, message).field(field));
    }

    /// A problem that does not make the resource invalid (the field is ignored, say).
    pub fn warning(&mut self, line: usize, field: &str, message: impl Into<String>) {
        self.push(Diagnostic::warning(self.file, line, message).field(field));
    }

    pub fn note(&mut self, line: usize, field: &str, message: impl Into<String>) {
        self.push(Diagnostic::note(self.file, line, message).field(field));
    }

    fn push(&mut self, mut d: Diagnostic) {
        if let Some(subject) = &self.subject {
            d = d.subject(subject.clone());
        }
        self.diagnostics.push(d);
    }

    /// A mapping whose keys are all in `allowed`; unknown keys are reported (with a hint for
    /// near misses) and ignored. `None` when `node` is not a mapping.
    pub fn fields<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            _ => {
                let mut message = format!("must be a mapping, found {}", node.describe());
                if let Some(hint) = node.scalar().and_then(|s| glued_key(&s.text)) {
                    message.push_str(&format!(" ({hint})"));
                }
                self.error(node.line, path, message);
                return None;
            }
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, _) in entries {
            let Some(name) = key.scalar().map(|s| s.text.as_str()) else {
                self.error(key.line, path, format!("keys must be strings, found {}", key.describe()));
                continue;
            };
            if seen.contains(&name) {
                self.error(key.line, &join(path, name), "duplicate field");
                continue;
            }
            seen.push(name);
            if !allowed.contains(&name) {
                let mut message = format!("unknown field {name:?}");
                if let Some(hint) = glued_key(name) {
                    message.push_str(&format!(" ({hint})"));
                } else if let Some(near) = syntax::nearest(name, allowed) {
                    message.push_str(&format!(" (did you mean {near:?}?)"));
                } else {
                    message.push_str(&format!(" (allowed: {})", allowed.join(", ")));
                }
                self.error(key.line, path, message);
            }
        }
        Some(Fields { node, entries })
    }

    /// A required field; reported at the mapping's line when missing.
    pub fn required<'n>(&mut self, fields: &Fields<'n>, key: &str, path: &str) -> Option<&'n Node> {
        let value = fields.get(key);
        if value.is_none() {
            self.error(fields.line(), &join(path, key), "required");
        }
        value
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match node.scalar().and_then(|s| s.as_str()) {
            Some(s) => Some(s.to_owned()),
            None => {
                let mut message = format!("must be a string, found {}", node.describe());
                if node.scalar().is_some() {
                    message.push_str(" (quote it)");
                }
                self.error(node.line, path, message);
                None
            }
        }
    }

    /// An optional string field, `Some("")` never turned into `None`.
    pub fn opt_string(&mut self, fields: &Fields<'_>, key: &str, path: &str) -> Option<String> {
        fields.get(key).and_then(|node| self.string(node, &join(path, key)))
    }

    /// A required string field.
    pub fn req_string(&mut self, fields: &Fields<'_>, key: &str, path: &str) -> Option<String> {
        self.required(fields, key, path).and_then(|node| self.string(node, &join(path, key)))
    }

    /// An integer in `min..=max`.
    pub fn int(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        match node.scalar().and_then(|s| s.as_int()) {
            Some(value) if (min..=max).contains(&value) => Some(value),
            Some(_) => {
                self.error(node.line, path, format!("must be between {min} and {max}"));
                None
            }
            None => {
                self.error(node.line, path, format!("must be an integer, found {}", node.describe()));
                None
            }
        }
    }

    pub fn port(&mut self, node: &Node, path: &str) -> Option<u16> {
        self.int(node, path, 1, 65535).and_then(|p| u16::try_from(p).ok())
    }

    pub fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        let value = node.scalar().and_then(|s| s.as_bool());
        if value.is_none() {
            self.error(node.line, path, format!("must be true or false, found {}", node.describe()));
        }
        value
    }

    /// The items of a list of at most `max` entries (`None` for "no limit"). Reports a
    /// non-list and too many items; returns the items it can.
    pub fn list<'n>(&mut self, node: &'n Node, path: &str, max: Option<usize>) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => {
                if let Some(max) = max {
                    if items.len() > max {
                        self.error(node.line, path, format!("must have at most {max} items, has {}", items.len()));
                    }
                }
                items
            }
            _ => {
                self.error(node.line, path, format!("must be a list, found {}", node.describe()));
                &[]
            }
        }
    }

    /// One of `allowed`, exactly.
    pub fn one_of(&mut self, node: &Node, path: &str, allowed: &[&str]) -> Option<String> {
        let value = self.string(node, path)?;
        if allowed.contains(&value.as_str()) {
            return Some(value);
        }
        let mut message = format!("{value:?} is not one of {}", allowed.join(", "));
        if let Some(near) = syntax::nearest(&value, allowed) {
            message.push_str(&format!(" (did you mean {near}?)"));
        }
        self.error(node.line, path, message);
        None
    }

    /// The value paired with the one of `options` written, exactly: how an enum field is read,
    /// so that each value's meaning is spelt out once and no arm catches the rest.
    pub fn choice<T: Copy>(&mut self, node: &Node, path: &str, options: &[(&str, T)]) -> Option<T> {
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let value = self.one_of(node, path, &names)?;
        options.iter().find(|(name, _)| *name == value).map(|(_, v)| *v)
    }

    /// Applies a [`syntax`] check to a string, reporting its message.
    pub fn check(&mut self, line: usize, path: &str, result: Result<(), String>) -> bool {
        match result {
            Ok(()) => true,
            Err(message) => {
                self.error(line, path, message);
                false
            }
        }
    }
}

impl Reader<'_> {
    /// How many items a list node has (0 for anything else); no diagnostics.
    pub fn list_len(&self, node: &Node) -> usize {
        match &node.value {
            Value::Seq(items) => items.len(),
            _ => 0,
        }
    }
}
