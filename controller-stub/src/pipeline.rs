//! The whole pure path from a manifests directory to a route table: load, decode and validate,
//! resolve references, compile. `check`, `explain`, `compile` and `sync` all go through
//! [`build`], so they agree on what the manifests mean.

use std::path::Path;
use std::sync::Arc;

use meshroute_filter::document::TableDocument;
use meshroute_filter::table::RouteTable;

use crate::compile::compile;
use crate::diag::Diagnostic;
use crate::load::{load_dir, SourceFile};
use crate::model::Manifests;
use crate::resolve::{statuses, ParentStatus, RouteStatus};
use crate::shadow::shadowed_rules;

/// A directory's manifests, compiled.
#[derive(Debug, Clone)]
pub struct Build {
    pub manifests: Manifests,
    /// The table the filter receives.
    pub table: TableDocument,
    /// `table` as the filter compiles it, for tools that route with the filter's own code.
    pub compiled: Arc<RouteTable>,
    /// Unresolved references, parents that do not accept a route, shadowed rules: published
    /// anyway, but worth a look.
    pub warnings: Vec<Diagnostic>,
    /// Every route's status per parent, HTTPRoutes then GRPCRoutes, by namespace and name.
    pub statuses: Vec<RouteStatus>,
}

/// Reads, validates and compiles every manifest under `dir`. On invalid input, every error
/// found (not just the first) and the shadowed-rule warnings of what did decode, sorted by file
/// and line.
pub fn build(dir: &Path) -> Result<Build, Vec<Diagnostic>> {
    build_files(&load_dir(dir)?)
}

/// [`build`] from files already read.
pub fn build_files(files: &[SourceFile]) -> Result<Build, Vec<Diagnostic>> {
    let (manifests, mut errors) = crate::decode::decode(files);
    let statuses = statuses(&manifests);
    let table = compile(&manifests, &statuses);
    let compiled = RouteTable::compile(&table);
    if !errors.is_empty() {
        // What did decode is still worth a word: the product page's echo-route has both a
        // missing apiVersion and a rule that can never match.
        if let Ok(compiled) = &compiled {
            errors.extend(shadowed_rules(&manifests, &table, compiled));
        }
        errors.sort();
        errors.dedup();
        return Err(errors);
    }
    let compiled = match compiled {
        Ok(compiled) => compiled,
        // Validation should have caught it; if not, say so rather than publish a table the
        // filter would refuse.
        Err(e) => {
            return Err(vec![Diagnostic::error("", 0, format!("internal error: the compiled route table is refused: {e}"))])
        }
    };
    let mut warnings = status_warnings(&statuses);
    warnings.extend(shadowed_rules(&manifests, &table, &compiled));
    warnings.sort();
    Ok(Build { manifests, table, compiled: Arc::new(compiled), warnings, statuses })
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

/// Unresolved backends, parents that do not accept the route, and ports an HTTPRoute loses to
/// a GRPCRoute.
fn status_warnings(statuses: &[RouteStatus]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for status in statuses {
        for (i, parent) in status.parents.iter().enumerate() {
            if let ParentStatus::Mesh { parent, accepted, taken, .. } = parent {
                if accepted.status {
                    for (port, by) in taken {
                        out.push(
                            Diagnostic::warning(
                                &parent.source.file,
                                parent.source.line,
                                format!(
                                    "not applied on Service {}/{} port {port}: {by} takes that port (GRPCRoute > HTTPRoute, GEP-1294)",
                                    parent.namespace, parent.name
                                ),
                            )
                            .subject(status.subject())
                            .field(format!("spec.parentRefs[{i}]")),
                        );
                    }
                }
                if !accepted.status {
                    out.push(
                        Diagnostic::warning(
                            &parent.source.file,
                            parent.source.line,
                            format!("not attached: Accepted False ({}): {}", accepted.reason, accepted.message),
                        )
                        .subject(status.subject())
                        .field(format!("spec.parentRefs[{i}]")),
                    );
                }
            }
        }
        for u in &status.unresolved {
            out.push(
                Diagnostic::warning(
                    &u.source.file,
                    u.source.line,
                    format!(
                        "ResolvedRefs False ({}): {}; its share of requests (weight {}) will get 500",
                        u.reason, u.message, u.weight
                    ),
                )
                .subject(status.subject())
                .field(format!("spec.rules[{}].backendRefs[{}]", u.rule, u.backend)),
            );
        }
    }
    out
}
