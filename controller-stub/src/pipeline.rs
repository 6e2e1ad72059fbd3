//! The whole pure path from a manifests directory to a route table: load, decode and validate,
//! resolve references, compile. `check`, `explain`, `compile` and `sync` all go through
//! [`build`], so they agree on what the manifests mean.
//!
//! One bad resource blocks nothing else: a resource that does not validate is left out, and
//! everything else is compiled. Where a [`LastGood`] is given (`sync` keeps one while it
//! watches), the last version of that resource that validated stands in for it, so a typo in
//! one team's route never takes that route down nor freezes anyone else's change.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use meshroute_filter::document::TableDocument;
use meshroute_filter::table::RouteTable;

use crate::compile::compile;
use crate::decode::{Decoded, Rejected};
use crate::diag::{Diagnostic, Severity};
use crate::load::{load_dir, SourceFile};
use crate::model::{Manifests, ParentRef, RejectedVersion, Resource, ResourceKey};
use crate::resolve::{find_service, is_consumer_route, is_core_service, statuses, Attachment, ParentStatus, RouteStatus};
use crate::shadow::shadowed_rules;

/// A directory's manifests, compiled.
#[derive(Debug, Clone)]
pub struct Build {
    /// What validated, and the last good versions standing in for what did not.
    pub manifests: Manifests,
    /// The table the filter receives.
    pub table: TableDocument,
    /// `table` as the filter compiles it, for tools that route with the filter's own code.
    pub compiled: Arc<RouteTable>,
    /// Errors (what was left out), warnings (published anyway, worth a look: unresolved
    /// references, parents that do not take the route, shadowed rules) and notes, sorted by
    /// file and line.
    pub diagnostics: Vec<Diagnostic>,
    /// Every route's status per parent, HTTPRoutes then GRPCRoutes, by namespace and name.
    pub statuses: Vec<RouteStatus>,
}

impl Build {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.of(Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.of(Severity::Warning)
    }

    /// Whether every resource validated.
    pub fn is_valid(&self) -> bool {
        self.errors().next().is_none()
    }

    /// How many resources of `dir` did not validate, and what stands in for them; `None` when
    /// everything validated. `sync` and `serve` say it after each build.
    pub fn problems_summary(&self, dir: &Path) -> Option<String> {
        let errors = self.errors().count();
        if errors == 0 {
            return None;
        }
        let standing_in: Vec<String> =
            self.manifests.resources().filter(|r| r.meta().last_good.is_some()).map(|r| r.key().to_string()).collect();
        let kept = if standing_in.is_empty() {
            "what does not validate is left out".to_owned()
        } else {
            format!("what does not validate is left out, and the last good version of {} stays in place", standing_in.join(", "))
        };
        Some(format!("{errors} problem{} in {}: {kept}", if errors == 1 { "" } else { "s" }, dir.display()))
    }

    /// The warnings, as a list; for tests.
    #[cfg(test)]
    pub fn warnings_vec(&self) -> Vec<Diagnostic> {
        self.warnings().cloned().collect()
    }

    /// Errors and warnings, without notes; for tests.
    #[cfg(test)]
    pub fn problems(&self) -> Vec<Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity != Severity::Note).cloned().collect()
    }

    fn of(&self, severity: Severity) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(move |d| d.severity == severity)
    }
}

/// The last version of each resource that validated and was published, by the file it came
/// from. `sync` keeps it between publications; a resource whose current manifest does not
/// validate (or whose file no longer parses) is published as this version instead.
#[derive(Debug, Clone, Default)]
pub struct LastGood {
    resources: Vec<Resource>,
}

impl LastGood {
    /// Everything `build` published: its stand-ins stay the last good versions.
    pub fn of(build: &Build) -> Self {
        LastGood { resources: build.manifests.resources().collect() }
    }

    /// Adds to `decoded` the last good version of each rejected resource, and of each resource
    /// of a file that no longer parses, unless a valid version is present. Each is marked with
    /// the error that keeps its current version out. A stand-in Service whose ClusterIP another
    /// Service now holds is left out.
    fn stand_in(&self, decoded: &mut Decoded) {
        let mut present: HashSet<ResourceKey> = decoded.resources.iter().map(Resource::key).collect();
        let mut taken_ips: HashSet<String> = decoded
            .resources
            .iter()
            .filter_map(|r| match r {
                Resource::Service(s) => Some(s.cluster_ips.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        for rejected in &decoded.rejected {
            let candidates: Vec<(&Resource, RejectedVersion)> = match rejected {
                Rejected::Resource { key, error, generation, .. } => self
                    .resources
                    .iter()
                    .filter(|r| r.key() == *key)
                    .map(|r| (r, RejectedVersion { error: error.clone(), generation: *generation }))
                    .collect(),
                Rejected::File { file, error } => self
                    .resources
                    .iter()
                    .filter(|r| r.meta().source.file == *file)
                    .map(|r| (r, RejectedVersion { error: error.clone(), generation: None }))
                    .collect(),
            };
            for (old, current) in candidates {
                if present.contains(&old.key()) {
                    continue;
                }
                if let Resource::Service(s) = old {
                    if s.cluster_ips.iter().any(|ip| taken_ips.contains(ip)) {
                        continue;
                    }
                    taken_ips.extend(s.cluster_ips.iter().cloned());
                }
                let mut old = old.clone();
                old.meta_mut().last_good = Some(current);
                present.insert(old.key());
                decoded.resources.push(old);
            }
        }
    }
}

/// Reads, validates and compiles every manifest under `dir`, the table for a client in
/// `client_namespace` (GEP-1294: its consumer routes replace producer routes; statuses and
/// diagnostics are the same for every client). `Err` only when the directory cannot be read
/// (or, never expected, when the filter would refuse the compiled table).
pub fn build(dir: &Path, client_namespace: &str) -> Result<Build, Vec<Diagnostic>> {
    build_with(dir, &LastGood::default(), client_namespace)
}

/// [`build`], with `last_good` standing in for what does not validate.
pub fn build_with(dir: &Path, last_good: &LastGood, client_namespace: &str) -> Result<Build, Vec<Diagnostic>> {
    let loaded = load_dir(dir)?;
    build_files(&loaded.files, loaded.errors, last_good, client_namespace)
}

/// [`build_with`], reported on stderr as `sync` and `serve` report each build: every
/// diagnostic, then what did not validate and what stands in for it. `None` when `dir` cannot
/// be read, and the caller's last configuration stays. `program` names the command (`meshroute
/// sync`); `rest` says what happens to everything else (`published`, `served`).
pub fn build_reported(dir: &Path, last_good: &LastGood, client_namespace: &str, program: &str, rest: &str) -> Option<Build> {
    let build = match build_with(dir, last_good, client_namespace) {
        Ok(build) => build,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!("{program}: {} cannot be read; the last good configuration stays in place", dir.display());
            return None;
        }
    };
    for diagnostic in &build.diagnostics {
        eprintln!("{diagnostic}");
    }
    if let Some(problems) = build.problems_summary(dir) {
        eprintln!("{program}: {problems}; everything else is {rest}");
    }
    Some(build)
}

/// [`build_with`] from files already read; `unreadable`: a problem for each file that could
/// not be read (see [`crate::load::Loaded`]).
pub fn build_files(
    files: &[SourceFile],
    unreadable: Vec<Diagnostic>,
    last_good: &LastGood,
    client_namespace: &str,
) -> Result<Build, Vec<Diagnostic>> {
    let mut decoded = crate::decode::decode(files, unreadable);
    last_good.stand_in(&mut decoded);
    // In file order, stand-ins where they were: what did not change keeps its place (listeners
    // follow the order of the Services), so Envoy's files change only where the input did.
    decoded.resources.sort_by(|a, b| a.meta().source.cmp(&b.meta().source));
    let mut manifests = Manifests::default();
    for resource in &decoded.resources {
        manifests.push(resource.clone());
    }
    let statuses = statuses(&manifests);
    let table = compile(&manifests, &statuses, client_namespace);
    let compiled = RouteTable::compile(&table).map_err(|e| {
        // Validation should have caught it; say so rather than publish a table the filter
        // would refuse.
        vec![Diagnostic::error("", 0, format!("internal error: the compiled route table is refused: {e}"))]
    })?;
    let mut diagnostics = decoded.diagnostics;
    diagnostics.extend(status_diagnostics(&manifests, &statuses));
    diagnostics.extend(consumer_route_notes(&statuses));
    diagnostics.extend(shadowed_rules_of_every_client(&manifests, &statuses, Some((&table, &compiled))));
    diagnostics.extend(shadowed_draft_rules(&decoded.resources, &decoded.drafts));
    diagnostics.sort();
    diagnostics.dedup();
    Ok(Build { manifests, table, compiled: Arc::new(compiled), diagnostics, statuses })
}

/// Shadowed-rule warnings for every route, whichever clients see it. Each route is checked in
/// the table of the clients in its own namespace: they see it on every port it is attached to,
/// beside the very routes it competes with there (its fellow producer routes, or its fellow
/// consumer routes from that namespace; GEP-1294). Without consumer routes every client has
/// the same table, so `table`, when given, is checked alone.
fn shadowed_rules_of_every_client(
    m: &Manifests,
    statuses: &[RouteStatus],
    table: Option<(&TableDocument, &RouteTable)>,
) -> Vec<Diagnostic> {
    let consumers =
        statuses.iter().any(|s| s.attachments().any(|(namespace, _, _)| is_consumer_route(&s.meta.namespace, namespace)));
    if let (false, Some((table, compiled))) = (consumers, table) {
        return shadowed_rules(m, table, compiled);
    }
    let namespaces: BTreeSet<&str> = statuses.iter().map(|s| s.meta.namespace.as_str()).collect();
    let mut out = Vec::new();
    for namespace in namespaces {
        // Only the ports this namespace's routes are on, and the routes attached there.
        let places: HashSet<Attachment<'_>> =
            statuses.iter().filter(|s| s.meta.namespace == namespace).flat_map(RouteStatus::attachments).collect();
        let there = statuses.iter().filter(|s| s.attachments().any(|place| places.contains(&place)));
        let table = compile(m, there, namespace);
        let Ok(compiled) = RouteTable::compile(&table) else { continue };
        let ours = |d: &Diagnostic| {
            d.subject
                .as_deref()
                .and_then(|s| s.split_once(' '))
                .and_then(|(_, route)| route.split_once('/'))
                .is_some_and(|(route_namespace, _)| route_namespace == namespace)
        };
        out.extend(shadowed_rules(m, &table, &compiled).into_iter().filter(ours));
    }
    out
}

/// A note on each parentRef of a consumer route (GEP-1294): which clients it applies to, and
/// whose routes it replaces for them.
fn consumer_route_notes(statuses: &[RouteStatus]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for status in statuses {
        for (i, parent) in status.parents.iter().enumerate() {
            let ParentStatus::Mesh { parent, accepted, ports, .. } = parent else { continue };
            if !accepted.status || !is_consumer_route(&status.meta.namespace, &parent.namespace) {
                continue;
            }
            let list = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
            let scope = if ports.len() == 1 { format!("port {list}") } else { format!("ports {list}") };
            out.push(
                Diagnostic::note(
                    &parent.source.file,
                    parent.source.line,
                    format!(
                        "consumer route: applies only to clients in namespace {}, replacing Service {}/{}'s producer routes for them on {scope}; clients in other namespaces keep the producer routes (GEP-1294)",
                        status.meta.namespace, parent.namespace, parent.name
                    ),
                )
                .subject(status.subject())
                .field(format!("spec.parentRefs[{i}]")),
            );
        }
    }
    out
}

/// The shadowed-rule warnings about routes that decoded despite errors, found among everything
/// that decoded (a draft stands in for the last good version of itself).
fn shadowed_draft_rules(resources: &[Resource], drafts: &[Resource]) -> Vec<Diagnostic> {
    let routes: HashSet<String> = drafts
        .iter()
        .filter(|d| matches!(d, Resource::HttpRoute(_) | Resource::GrpcRoute(_)))
        .map(|d| d.key().to_string())
        .collect();
    if routes.is_empty() {
        return Vec::new();
    }
    let drafted: HashSet<ResourceKey> = drafts.iter().map(Resource::key).collect();
    let mut manifests = Manifests::default();
    for resource in resources.iter().filter(|r| !drafted.contains(&r.key())).chain(drafts) {
        manifests.push(resource.clone());
    }
    let statuses = statuses(&manifests);
    shadowed_rules_of_every_client(&manifests, &statuses, None)
        .into_iter()
        .filter(|d| d.subject.as_ref().is_some_and(|subject| routes.contains(subject)))
        .collect()
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "real_routes_tests.rs"]
mod real_routes_tests;

#[cfg(test)]
#[path = "consumer_routes_tests.rs"]
mod consumer_routes_tests;

/// Unresolved backends, parents that do not take the route (a Service parent not accepted, a
/// port an HTTPRoute loses to a GRPCRoute, a `kind: Service` in the wrong group), and what is
/// ignored on the way (Gateway parents, `hostnames`).
fn status_diagnostics(m: &Manifests, statuses: &[RouteStatus]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for status in statuses {
        let at = |field: String, d: Diagnostic| d.subject(status.subject()).field(field);
        for (i, parent) in status.parents.iter().enumerate() {
            let field = format!("spec.parentRefs[{i}]");
            match parent {
                ParentStatus::NotMesh { parent } => out.push(at(field, not_mesh_parent(m, parent))),
                ParentStatus::Mesh { parent, accepted, taken, .. } => {
                    let warning = |message: String| {
                        at(field.clone(), Diagnostic::warning(&parent.source.file, parent.source.line, message))
                    };
                    if accepted.status {
                        for (port, by) in taken {
                            out.push(warning(format!(
                                "not applied on Service {}/{} port {port}: {by} takes that port (GRPCRoute > HTTPRoute, GEP-1294)",
                                parent.namespace, parent.name
                            )));
                        }
                    } else {
                        out.push(warning(format!("not attached: Accepted False ({}): {}", accepted.reason, accepted.message)));
                    }
                }
            }
        }
        if !status.hostnames.is_empty() && status.parents.iter().any(|p| matches!(p, ParentStatus::Mesh { .. })) {
            out.push(at(
                "spec.hostnames".to_owned(),
                Diagnostic::note(
                    &status.meta.source.file,
                    status.meta.source.line,
                    "ignored on a Service parent: a mesh route takes requests by the Service they are sent to, whatever their Host",
                ),
            ));
        }
        for u in &status.unresolved {
            let effect = match u.weight {
                Some(weight) => format!("its share of requests (weight {weight}) will get 500"),
                None => "no copies are sent to it; the requests themselves are not affected".to_owned(),
            };
            out.push(at(
                u.path.clone(),
                Diagnostic::warning(
                    &u.source.file,
                    u.source.line,
                    format!("ResolvedRefs False ({}): {}; {effect}", u.reason, u.message),
                ),
            ));
        }
    }
    out
}

/// A parentRef that is not a Kubernetes Service. `kind: Service` in another group is almost
/// always a missing `group: ""` (the group then defaults to the Gateway API's own): a warning,
/// with the fix when the Service exists. A Gateway parent makes a north-south route, another
/// implementation's business: a note, as for any other kind.
fn not_mesh_parent(m: &Manifests, parent: &ParentRef) -> Diagnostic {
    let (file, line) = (&parent.source.file, parent.source.line);
    if parent.kind == "Service" && !is_core_service(&parent.group, &parent.kind) {
        let mut message = format!(
            "kind Service in group {:?} is not a Kubernetes Service, so this parentRef attaches to nothing \
             (group defaults to gateway.networking.k8s.io when left out)",
            parent.group
        );
        if find_service(m, &parent.namespace, &parent.name).is_some() {
            message.push_str(&format!("; add `group: \"\"` to attach to Service {}/{}", parent.namespace, parent.name));
        }
        return Diagnostic::warning(file, line, message);
    }
    if parent.kind == "Gateway" {
        return Diagnostic::note(
            file,
            line,
            format!(
                "Gateway {}/{}: a north-south route, served by the Gateway's implementation; meshroute ignores this parentRef",
                parent.namespace, parent.name
            ),
        );
    }
    let group = if parent.group.is_empty() { "core" } else { &parent.group };
    Diagnostic::note(file, line, format!("{} in group {group} is not a Service; meshroute ignores this parentRef", parent.kind))
}
