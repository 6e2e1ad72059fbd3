//! Problems found in the manifests, each tied to the file and line it comes from, the resource
//! it concerns and the field, so a user can go straight to the mistake.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    /// Published anyway, but likely not what was meant; `check --strict` fails on warnings.
    Warning,
    /// Worth knowing and nothing to fix: skipped kinds, ignored fields. Never fails `check`.
    Note,
}

/// One problem. Displayed as
/// `routes/echo.yaml:12: HTTPRoute default/echo-route: spec.rules[0].backendRefs[1].weight: must be between 0 and 1000000`
/// (warnings carry `warning: ` after the location, notes `note: `).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// Relative to the manifests directory.
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: usize,
    pub severity: Severity,
    /// `HTTPRoute default/echo-route`, when the resource is known.
    pub subject: Option<String>,
    /// `spec.rules[0].backendRefs[1].weight`, when one field is at fault.
    pub field: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Diagnostic { file: file.into(), line, severity: Severity::Error, subject: None, field: None, message: message.into() }
    }

    pub fn warning(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(file, line, message) }
    }

    pub fn note(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Note, ..Diagnostic::error(file, line, message) }
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        f.write_str(": ")?;
        match self.severity {
            Severity::Error => {}
            Severity::Warning => f.write_str("warning: ")?,
            Severity::Note => f.write_str("note: ")?,
        }
        if let Some(subject) = &self.subject {
            write!(f, "{subject}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_location_subject_field_and_message() {
        let d = Diagnostic::error("routes/echo.yaml", 12, "must be between 0 and 1000000")
            .subject("HTTPRoute default/echo-route")
            .field("spec.rules[0].backendRefs[1].weight");
        assert_eq!(
            d.to_string(),
            "routes/echo.yaml:12: HTTPRoute default/echo-route: spec.rules[0].backendRefs[1].weight: must be between 0 and 1000000"
        );
        let w = Diagnostic::warning("a.yaml", 3, "never matches");
        assert_eq!(w.to_string(), "a.yaml:3: warning: never matches");
    }
}
