//! `meshroute check DIR [--strict] [-o text|yaml|json]`: each route's status per parent, then
//! the errors, warnings and notes. Exit 1 on errors (the resources they concern are left out of
//! what would be published; the rest is checked and compiled all the same), or on warnings with
//! `--strict`. Notes never fail a check. With `-o yaml` or `-o json` the statuses are printed in
//! the Gateway API's own shape ([`crate::status`]) and the diagnostics go to stderr.

use std::fmt::Write as _;
use std::path::Path;

use meshroute_filter::document::{RouteKind, TableDocument};
use meshroute_filter::metrics;

use crate::diag::{Diagnostic, Severity};
use crate::model::Manifests;
use crate::pipeline::{build, Build};
use crate::resolve::{Condition, ParentStatus, RouteStatus};

/// What `check` prints (on stdout, and on stderr) and whether it passes.
pub struct Report {
    pub text: String,
    pub stderr: String,
    pub ok: bool,
}

/// How `check` prints the statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people: statuses, then the diagnostics, then counts.
    Text,
    /// The routes with their `status`, as YAML documents.
    Yaml,
    /// The routes with their `status`, as a JSON `List`.
    Json,
}

pub fn check(dir: &Path, strict: bool, output: Output) -> Report {
    // Statuses and diagnostics are the same for clients in every namespace (GEP-1294 only
    // changes which routes each sees); the table, which `check` does not show, is a client's in
    // `default`.
    match build(dir, "default") {
        Err(errors) => Report { text: String::new(), stderr: errors_text(&errors), ok: false }.for_people(output),
        Ok(mut b) => {
            with_proxyless_gaps(&mut b);
            let ok = b.is_valid() && (!strict || b.warnings().next().is_none());
            let documents = || crate::status::documents(&b.statuses, &mut Default::default(), &crate::status::now());
            let text = match output {
                Output::Text => return Report { text: status_text(&b), stderr: String::new(), ok },
                Output::Yaml => documents().iter().filter_map(|d| crate::status::to_yaml(d).ok()).collect(),
                Output::Json => {
                    let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": documents() });
                    serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
                }
            };
            let mut stderr = String::new();
            for d in &b.diagnostics {
                let _ = writeln!(stderr, "{d}");
            }
            Report { text, stderr, ok }
        }
    }
}

impl Report {
    /// Text output prints everything on stdout, as it always has.
    fn for_people(self, output: Output) -> Self {
        match output {
            Output::Text => Report { text: self.stderr, stderr: String::new(), ok: self.ok },
            Output::Yaml | Output::Json => self,
        }
    }
}

/// The problems of input that does not validate (errors, and the warnings that came with
/// them), then their count.
pub fn errors_text(errors: &[Diagnostic]) -> String {
    let mut text = String::new();
    for e in errors {
        let _ = writeln!(text, "{e}");
    }
    let warnings = errors.iter().filter(|e| e.severity == Severity::Warning).count();
    let errors = errors.len() - warnings;
    let _ = write!(text, "{errors} error{}", if errors == 1 { "" } else { "s" });
    if warnings > 0 {
        let _ = write!(text, ", {warnings} warning{}", if warnings == 1 { "" } else { "s" });
    }
    let _ = writeln!(text);
    text
}

fn condition(name: &str, c: &Condition) -> String {
    format!("{name}: {} ({}): {}", if c.status { "True" } else { "False" }, c.reason, c.message)
}

/// Each route, its parents and their conditions, then the warnings.
pub fn status_text(b: &Build) -> String {
    let mut text = String::new();
    for status in &b.statuses {
        let _ = writeln!(text, "{} ({}:{})", status.subject(), status.meta.source.file.display(), status.meta.source.line);
        if status.parents.is_empty() {
            let _ = writeln!(text, "  no parentRefs: attached nowhere");
        }
        for parent in &status.parents {
            match parent {
                ParentStatus::NotMesh { parent } => {
                    let group = if parent.group.is_empty() { "core" } else { &parent.group };
                    let _ = writeln!(
                        text,
                        "  parent {} {}/{} (group {group}): not a mesh parent (a Service), ignored",
                        parent.kind, parent.namespace, parent.name
                    );
                }
                ParentStatus::Mesh { parent, accepted, resolved_refs, .. } => {
                    let port = parent.port.map(|p| format!(" port {p}")).unwrap_or_default();
                    let _ = writeln!(text, "  parent Service {}/{}{port}", parent.namespace, parent.name);
                    let _ = writeln!(text, "    {}", condition("Accepted", accepted));
                    let _ = writeln!(text, "    {}", condition("ResolvedRefs", resolved_refs));
                    // As the status documents say it: dropped rules, or the last good version.
                    if let Some((partly, _)) = crate::status::partially_invalid(status).filter(|_| accepted.status) {
                        let _ = writeln!(text, "    {}", condition("PartiallyInvalid", &partly));
                    }
                }
            }
        }
        counted_as(&mut text, b, status);
        let accepted_somewhere = status.attachments().next().is_some();
        if let Some(error) = status.meta.last_good.as_ref().filter(|_| !accepted_somewhere) {
            let _ = writeln!(text, "  serving its last good version: the current manifest does not validate: {error}");
        }
    }
    if b.statuses.is_empty() {
        let _ = writeln!(text, "no routes");
    }
    for d in &b.diagnostics {
        let _ = writeln!(text, "{d}");
    }
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut summary = vec![plural(b.statuses.len(), "route")];
    let errors = b.errors().count();
    if errors > 0 {
        summary.push(plural(errors, "error"));
    }
    summary.push(plural(b.warnings().count(), "warning"));
    let notes = b.diagnostics.len() - errors - b.warnings().count();
    if notes > 0 {
        summary.push(plural(notes, "note"));
    }
    let _ = writeln!(text, "{}", summary.join(", "));
    text
}

/// The tags of `envoy_meshroute_requests_total` the route's requests count under, on each
/// Service port it is attached to, rule by rule (see [`meshroute_filter::metrics`]).
fn counted_as(text: &mut String, b: &Build, status: &RouteStatus) {
    let (namespace, name) = (&status.meta.namespace, &status.meta.name);
    let same = |meta: &crate::model::Meta| meta.namespace == *namespace && meta.name == *name;
    let rule_names: Vec<Option<&str>> = match status.kind {
        RouteKind::Http => b
            .manifests
            .http_routes
            .iter()
            .find(|r| same(&r.meta))
            .map(|r| r.rules.iter().map(|rule| rule.name.as_deref()).collect()),
        RouteKind::Grpc => b
            .manifests
            .grpc_routes
            .iter()
            .find(|r| same(&r.meta))
            .map(|r| r.rules.iter().map(|rule| rule.name.as_deref()).collect()),
    }
    .unwrap_or_default();
    let frontends: Vec<String> = status
        .attachments()
        .map(|(ns, service, port)| format!("frontend=\"{}\"", metrics::frontend_tag(ns, service, port)))
        .collect();
    if frontends.is_empty() {
        return;
    }
    let _ = writeln!(
        text,
        "  counted in {} as route=\"{}\" on {}",
        metrics::REQUESTS_TOTAL,
        metrics::route_tag(namespace, name),
        frontends.join(", ")
    );
    for (i, rule_name) in rule_names.iter().enumerate() {
        let named = rule_name.map(|n| format!(" rule_name=\"{n}\"")).unwrap_or_default();
        let _ = writeln!(text, "    rule=\"{i}\"{named}");
    }
}

/// What proxyless gRPC clients cannot honour (`xds::grpc::unsupported`), as warnings on the
/// routes they call: GRPCRoutes, and HTTPRoutes on Service ports declared HTTP/2 (`grpc`,
/// `h2c`, `http2`), the ports gRPC clients dial. Elsewhere it would only be noise. Here, not in
/// the pipeline: only `check` reports them, and the pipeline stays free of the xDS types.
pub fn with_proxyless_gaps(b: &mut Build) {
    let gaps = proxyless_gaps(&b.manifests, &b.statuses, &b.table);
    b.diagnostics.extend(gaps);
    b.diagnostics.sort();
}

fn proxyless_gaps(m: &Manifests, statuses: &[RouteStatus], table: &TableDocument) -> Vec<Diagnostic> {
    let grpc_port = |namespace: &str, name: &str, port: u16| {
        crate::resolve::find_service(m, namespace, name)
            .and_then(|service| service.ports.iter().find(|p| p.port == port))
            .is_some_and(|p| crate::protocol::declared(p).0 == crate::protocol::Declared::Http2)
    };
    crate::xds::grpc::unsupported(table)
        .into_iter()
        .filter_map(|gap| {
            let status =
                statuses.iter().find(|s| s.kind == gap.kind && s.meta.namespace == gap.namespace && s.meta.name == gap.name)?;
            let called = gap.kind == RouteKind::Grpc || status.attachments().any(|(ns, name, port)| grpc_port(ns, name, port));
            called.then(|| {
                let message = gap.to_string();
                let message = message.split_once(": ").map_or(message.as_str(), |(_, rest)| rest).to_owned();
                Diagnostic::warning(&status.meta.source.file, status.meta.source.line, message)
                    .subject(status.subject())
                    .field(gap.field.clone())
            })
        })
        .collect()
}
