//! Route status in the Gateway API's own shape (`HTTPRouteStatus`, `GRPCRouteStatus`:
//! `status.parents[]` of `RouteParentStatus`), for `check -o yaml|json` and the files `sync`
//! writes under `OUT/status/`.
//!
//! Only parents meshroute is responsible for get an entry: Service parentRefs, including one
//! naming a Service that does not exist (`Accepted: False`, `NoMatchingParent`), so that a
//! user reading the status sees why a route does nothing. A Gateway parent is another
//! implementation's. Conditions, in this order: `Accepted`, `ResolvedRefs`, and
//! `PartiallyInvalid` while rules are dropped or a last good version is served (on accepted
//! parents only, as the API's `RouteConditionPartiallyInvalid` requires: see
//! [`partially_invalid`]); each with the `metadata.generation` it was computed from as
//! `observedGeneration`.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::publish;
use crate::resolve::{kind_name, Condition, ParentStatus, RouteStatus};

/// The `controllerName` of meshroute's statuses: a domain-prefixed path, as the API requires.
pub const CONTROLLER_NAME: &str = "meshroute.dev/mesh-controller";

/// One route's status document: what `kubectl get -o yaml` shows of it, status included.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatusDoc {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: MetadataDoc,
    pub status: StatusDoc,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataDoc {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusDoc {
    pub parents: Vec<ParentStatusDoc>,
}

/// `RouteParentStatus`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentStatusDoc {
    pub parent_ref: ParentRefDoc,
    pub controller_name: &'static str,
    pub conditions: Vec<ConditionDoc>,
}

/// `ParentReference` as an API server stores it: `group` and `kind` always (CRD defaults),
/// `namespace`, `sectionName` and `port` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRefDoc {
    pub group: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionDoc {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `"True"` or `"False"`.
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub observed_generation: i64,
    /// RFC 3339, seconds, UTC.
    pub last_transition_time: String,
}

/// When each condition last changed status: `(route key, parent index, condition type)` to
/// `(status, time)`. A condition keeps its `lastTransitionTime` while its status stays.
#[derive(Debug, Clone, Default)]
pub struct Transitions(HashMap<(String, usize, &'static str), (&'static str, String)>);

/// The API's limit on a condition's message.
const MAX_MESSAGE: usize = 32_768;

/// The status documents of every route with a Service parent, in `statuses` order; `now` is
/// the time a condition that changed (or is new) records, and `transitions` learns them.
pub fn documents(statuses: &[RouteStatus], transitions: &mut Transitions, now: &str) -> Vec<RouteStatusDoc> {
    statuses
        .iter()
        .filter_map(|status| {
            let key = file_stem(status);
            let parents: Vec<ParentStatusDoc> = status
                .parents
                .iter()
                .enumerate()
                .filter_map(|(index, parent)| {
                    let ParentStatus::Mesh { parent, accepted, resolved_refs, .. } = parent else { return None };
                    let served = status.meta.generation;
                    let mut conditions =
                        vec![("Accepted", accepted.clone(), served), ("ResolvedRefs", resolved_refs.clone(), served)];
                    // The API sets it on accepted parents only.
                    if accepted.status {
                        conditions.extend(partially_invalid(status).map(|(c, generation)| ("PartiallyInvalid", c, generation)));
                    }
                    let conditions = conditions
                        .into_iter()
                        .map(|(kind, c, observed_generation)| {
                            let state = if c.status { "True" } else { "False" };
                            let slot = (key.clone(), index, kind);
                            let time = match transitions.0.get(&slot) {
                                Some((was, time)) if *was == state => time.clone(),
                                _ => now.to_owned(),
                            };
                            transitions.0.insert(slot, (state, time.clone()));
                            ConditionDoc {
                                kind,
                                status: state,
                                reason: c.reason,
                                message: truncate(c.message, MAX_MESSAGE),
                                observed_generation,
                                last_transition_time: time,
                            }
                        })
                        .collect();
                    Some(ParentStatusDoc {
                        parent_ref: ParentRefDoc {
                            group: parent.group.clone(),
                            kind: parent.kind.clone(),
                            namespace: parent.namespace_written.then(|| parent.namespace.clone()),
                            name: parent.name.clone(),
                            section_name: parent.section_name.clone(),
                            port: parent.port,
                        },
                        controller_name: CONTROLLER_NAME,
                        conditions,
                    })
                })
                .collect();
            (!parents.is_empty()).then(|| RouteStatusDoc {
                api_version: "gateway.networking.k8s.io/v1",
                kind: kind_name(status.kind),
                metadata: MetadataDoc {
                    namespace: status.meta.namespace.clone(),
                    name: status.meta.name.clone(),
                    generation: current_generation(status),
                },
                status: StatusDoc { parents },
            })
        })
        .collect()
}

/// The route's `PartiallyInvalid` condition and the generation it was computed from, when part
/// of what the user wrote is not served. The API (`RouteConditionPartiallyInvalid`) names two
/// ways of serving a partly invalid route, and meshroute takes both:
/// - "Dropped Rule": a rule with a filter meshroute does not implement is dropped (its requests
///   get 500); the message starts "Dropped Rule" and names the rules.
/// - "Fall Back": while `sync` or `serve` keep the last good version of a route whose current
///   manifest does not validate, that version's conditions stand, with its generation as their
///   `observedGeneration` (the API: `Accepted` True "with the generation of the last known good
///   state"), and this condition, at the current manifest's generation, says "Fall Back" and
///   why: the user sees both that an older version is live and what keeps the new one out.
pub fn partially_invalid(status: &RouteStatus) -> Option<(Condition, i64)> {
    let dropped: Vec<String> =
        status.dropped.iter().map(|(rule, why)| format!("Dropped Rule spec.rules[{rule}]: {why}")).collect();
    let served = status.meta.generation;
    let (message, generation) = match &status.meta.last_good {
        Some(current) => {
            let at = |g: i64| if g > 0 { format!(" (generation {g})") } else { String::new() };
            let mut message = format!(
                "Fall Back to the last version that validated{}: the current manifest{} does not validate: {}",
                at(served),
                at(current.generation.unwrap_or(0)),
                current.error
            );
            if !dropped.is_empty() {
                message.push_str(&format!("; in that version, {}", dropped.join("; ")));
            }
            (message, current_generation(status))
        }
        None if dropped.is_empty() => return None,
        None => (dropped.join("; "), served),
    };
    Some((Condition { status: true, reason: "UnsupportedValue", message }, generation))
}

/// `metadata.generation` of the route as the user wrote it last: the current manifest's where
/// its last good version stands in for it (and its generation can be read).
fn current_generation(status: &RouteStatus) -> i64 {
    status.meta.last_good.as_ref().and_then(|current| current.generation).unwrap_or(status.meta.generation)
}

/// `httproute_NAMESPACE_NAME`: the status file's name without `.yaml`, one per route. Names
/// and namespaces never hold `_` (DNS subdomains and labels), so the parts cannot run together.
pub fn file_stem(status: &RouteStatus) -> String {
    format!("{}_{}_{}", kind_name(status.kind).to_ascii_lowercase(), status.meta.namespace, status.meta.name)
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The current time as RFC 3339 in UTC, to the second, as Kubernetes writes condition times.
pub fn now() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let seconds = i64::try_from(seconds).unwrap_or(0);
    match jiff::Timestamp::from_second(seconds) {
        Ok(t) => jiff::tz::Offset::UTC.to_datetime(t).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_owned(),
    }
}

/// One status document as YAML (`---` first, as multi-document output wants).
pub fn to_yaml(doc: &RouteStatusDoc) -> Result<String, String> {
    let value = serde_json::to_value(doc).map_err(|e| e.to_string())?;
    crate::envoy::yaml::to_yaml("", &value).map_err(|e| e.to_string())
}

/// The directory under `sync`'s OUT that holds one status file per route.
pub const STATUS_DIR: &str = "status";

/// Writes each route's status document to `dir/KIND_NAMESPACE_NAME.yaml` (atomically, and only
/// when its content changed) and removes the files of routes that are gone. Returns the names
/// written and removed.
pub fn publish(dir: &Path, statuses: &[RouteStatus], transitions: &mut Transitions) -> io::Result<(Vec<String>, Vec<String>)> {
    std::fs::create_dir_all(dir)?;
    let now = now();
    let mut names = Vec::new();
    let mut written = Vec::new();
    for (status, doc) in statuses.iter().filter_map(|s| Some((s, documents(std::slice::from_ref(s), transitions, &now).pop()?))) {
        let name = format!("{}.yaml", file_stem(status));
        let text = to_yaml(&doc).map_err(io::Error::other)?;
        if publish::write_if_changed(dir, &name, text.as_bytes())? {
            written.push(name.clone());
        }
        names.push(name);
    }
    let keep: Vec<&str> = names.iter().map(String::as_str).collect();
    let removed = publish::remove_stale(dir, "", ".yaml", &keep)?;
    Ok((written, removed))
}

impl Transitions {
    /// What the status files in `dir` recorded, so that a restarted `sync` keeps the times of
    /// conditions that did not change. Files it cannot read are skipped.
    pub fn read(dir: &Path) -> Self {
        let mut out = Transitions::default();
        let Ok(entries) = std::fs::read_dir(dir) else { return out };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".yaml") else { continue };
            let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
            let Ok(docs) = yaml_rust2::YamlLoader::load_from_str(&text) else { continue };
            let Some(parents) = docs.first().and_then(|d| d["status"]["parents"].as_vec()) else { continue };
            for (index, parent) in parents.iter().enumerate() {
                for c in parent["conditions"].as_vec().into_iter().flatten() {
                    let kind =
                        ["Accepted", "ResolvedRefs", "PartiallyInvalid"].into_iter().find(|k| c["type"].as_str() == Some(k));
                    let state = ["True", "False"].into_iter().find(|s| c["status"].as_str() == Some(s));
                    if let (Some(kind), Some(state), Some(time)) = (kind, state, c["lastTransitionTime"].as_str()) {
                        out.0.insert((stem.to_owned(), index, kind), (state, time.to_owned()));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::load::SourceFile;
    use crate::pipeline::{build_files, LastGood};

    const SERVICES: &str = "
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: v1, namespace: default}
spec:
  clusterIP: 10.96.0.11
  ports: [{port: 80}]
";

    /// The status documents of `routes` beside [`SERVICES`], as JSON, at time `now`.
    fn statuses(routes: &str, transitions: &mut Transitions, now: &str) -> Vec<Value> {
        let files = [
            SourceFile { path: "services.yaml".into(), text: SERVICES.to_owned() },
            SourceFile { path: "routes.yaml".into(), text: routes.to_owned() },
        ];
        let b = build_files(&files, Vec::new(), &LastGood::default(), "default").unwrap_or_else(|e| panic!("{e:#?}"));
        documents(&b.statuses, transitions, now).into_iter().map(|d| serde_json::to_value(d).unwrap()).collect()
    }

    fn route(parents: &str, rules: &str) -> String {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default, generation: 7}}
spec:
  parentRefs: {parents}
  rules:
{rules}"
        )
    }

    fn conditions(doc: &Value, parent: usize) -> Vec<(String, String, String)> {
        doc["status"]["parents"][parent]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (c["type"].as_str().unwrap().into(), c["status"].as_str().unwrap().into(), c["reason"].as_str().unwrap().into())
            })
            .collect()
    }

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:05:00Z";

    #[test]
    fn an_accepted_route_has_the_api_shape_with_the_parent_ref_as_written() {
        let docs = statuses(
            &route("[{group: \"\", kind: Service, name: echo, port: 80}]", "  - backendRefs: [{name: v1, port: 80}]\n"),
            &mut Transitions::default(),
            T0,
        );
        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        assert_eq!((doc["apiVersion"].as_str(), doc["kind"].as_str()), (Some("gateway.networking.k8s.io/v1"), Some("HTTPRoute")));
        assert_eq!(doc["metadata"], json!({"namespace": "default", "name": "r", "generation": 7}));
        let parent = &doc["status"]["parents"][0];
        assert_eq!(parent["parentRef"], json!({"group": "", "kind": "Service", "name": "echo", "port": 80}));
        assert_eq!(parent["controllerName"], json!(CONTROLLER_NAME));
        assert_eq!(
            conditions(doc, 0),
            [
                ("Accepted".into(), "True".into(), "Accepted".into()),
                ("ResolvedRefs".into(), "True".into(), "ResolvedRefs".into())
            ]
        );
        for c in parent["conditions"].as_array().unwrap() {
            assert_eq!((c["observedGeneration"].as_i64(), c["lastTransitionTime"].as_str()), (Some(7), Some(T0)));
            assert!(!c["message"].as_str().unwrap().is_empty());
        }
    }

    #[test]
    fn a_missing_service_a_bad_backend_and_a_dropped_rule_each_show_as_the_api_says() {
        let parents = "[{group: \"\", kind: Service, name: echo, namespace: default}, {group: \"\", kind: Service, name: gone}]";
        let rules = "  - backendRefs: [{name: v1, port: 80}, {name: nothing, port: 80}]
  - matches: [{path: {value: /cors}}]
    filters: [{type: CORS, cors: {allowOrigins: [\"*\"]}}]
    backendRefs: [{name: v1, port: 80}]
";
        let docs = statuses(&route(parents, rules), &mut Transitions::default(), T0);
        let doc = &docs[0];
        assert_eq!(doc["status"]["parents"][0]["parentRef"]["namespace"], json!("default"), "written, so shown");
        assert_eq!(
            conditions(doc, 0),
            [
                ("Accepted".into(), "True".into(), "Accepted".into()),
                ("ResolvedRefs".into(), "False".into(), "BackendNotFound".into()),
                ("PartiallyInvalid".into(), "True".into(), "UnsupportedValue".into()),
            ]
        );
        // The parent that does not take the route has no PartiallyInvalid: the API sets it on
        // accepted parents only.
        assert_eq!(
            conditions(doc, 1),
            [
                ("Accepted".into(), "False".into(), "NoMatchingParent".into()),
                ("ResolvedRefs".into(), "False".into(), "BackendNotFound".into()),
            ]
        );
    }

    #[test]
    fn a_gateway_parent_is_not_ours_and_gets_no_entry() {
        let docs = statuses(
            &route("[{name: gateway}, {group: \"\", kind: Service, name: echo}]", "  - backendRefs: [{name: v1, port: 80}]\n"),
            &mut Transitions::default(),
            T0,
        );
        let parents = docs[0]["status"]["parents"].as_array().unwrap();
        assert_eq!(parents.len(), 1);
        assert_eq!(parents[0]["parentRef"]["kind"], json!("Service"));
    }

    #[test]
    fn last_transition_time_moves_only_when_a_condition_changes_status() {
        let mut transitions = Transitions::default();
        let parents = "[{group: \"\", kind: Service, name: echo}]";
        statuses(&route(parents, "  - backendRefs: [{name: v1, port: 80}]\n"), &mut transitions, T0);
        // An unrelated change (another weight): the same statuses, the same times.
        let docs = statuses(&route(parents, "  - backendRefs: [{name: v1, port: 80, weight: 5}]\n"), &mut transitions, T1);
        let times = |doc: &Value| -> Vec<String> {
            doc["status"]["parents"][0]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["lastTransitionTime"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(times(&docs[0]), [T0, T0]);
        // The backend goes away: ResolvedRefs turns False at T1, Accepted keeps T0.
        let docs = statuses(&route(parents, "  - backendRefs: [{name: gone, port: 80}]\n"), &mut transitions, T1);
        assert_eq!(times(&docs[0]), [T0, T1]);
    }

    #[test]
    fn status_files_are_written_when_they_change_and_keep_their_times_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let files = |rules: &str| {
            [
                SourceFile { path: "services.yaml".into(), text: SERVICES.to_owned() },
                SourceFile { path: "routes.yaml".into(), text: route("[{group: \"\", kind: Service, name: echo}]", rules) },
            ]
        };
        let build = |rules: &str| build_files(&files(rules), Vec::new(), &LastGood::default(), "default").unwrap();
        let mut transitions = Transitions::default();
        let b = build("  - backendRefs: [{name: v1, port: 80}]\n");
        let (written, removed) = publish(dir.path(), &b.statuses, &mut transitions).unwrap();
        assert_eq!((written, removed), (vec!["httproute_default_r.yaml".to_owned()], vec![]));
        let first = std::fs::read_to_string(dir.path().join("httproute_default_r.yaml")).unwrap();
        assert!(first.contains("controllerName: meshroute.dev/mesh-controller"), "{first}");
        // Nothing changed: nothing written.
        assert_eq!(publish(dir.path(), &b.statuses, &mut transitions).unwrap(), (vec![], vec![]));
        // A restarted sync reads the times back: an unrelated change writes nothing either.
        let mut restarted = Transitions::read(dir.path());
        let b = build("  - backendRefs: [{name: v1, port: 80, weight: 3}]\n");
        assert_eq!(publish(dir.path(), &b.statuses, &mut restarted).unwrap(), (vec![], vec![]));
        // The route is gone: so is its file.
        let b = build_files(&files("")[..1], Vec::new(), &LastGood::default(), "default").unwrap();
        assert_eq!(
            publish(dir.path(), &b.statuses, &mut restarted).unwrap(),
            (vec![], vec!["httproute_default_r.yaml".to_owned()])
        );
    }

    /// The CRD's OpenAPI constraints on `status.parents` (Gateway API v1 `RouteParentStatus`,
    /// `ParentReference`, and `metav1.Condition`), transcribed, checked on every document the
    /// statuses above produce.
    #[test]
    fn status_documents_satisfy_the_crds_status_schema() {
        let re = |pattern: &str| regex_lite::Regex::new(pattern).unwrap();
        let controller =
            re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$");
        let condition_type = re(
            r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        );
        let reason = re(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$");
        let group = re(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
        let kind = re(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$");
        let namespace = re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
        let section = re(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
        let time = re(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$");
        let parents = "[{group: \"\", kind: Service, name: echo, namespace: default, port: 80}, {group: \"\", kind: Service, name: gone, sectionName: grpc}]";
        let rules = "  - backendRefs: [{name: v1, port: 80}, {name: nothing, port: 80}]
  - matches: [{path: {value: /cors}}]
    filters: [{type: CORS, cors: {allowOrigins: [\"*\"]}}]
    backendRefs: [{name: v1, port: 80}]
";
        let docs = statuses(&route(parents, rules), &mut Transitions::default(), &now());
        let parents = docs[0]["status"]["parents"].as_array().unwrap();
        assert!((1..=32).contains(&parents.len()));
        for parent in parents {
            let name = parent["controllerName"].as_str().unwrap();
            assert!(name.len() <= 253 && controller.is_match(name), "{name}");
            let r = &parent["parentRef"];
            let text = |key: &str| r[key].as_str();
            assert!(text("name").is_some_and(|n| (1..=253).contains(&n.len())));
            assert!(text("group").is_some_and(|g| g.len() <= 253 && group.is_match(g)));
            assert!(text("kind").is_some_and(|k| (1..=63).contains(&k.len()) && kind.is_match(k)));
            assert!(text("namespace").is_none_or(|n| (1..=63).contains(&n.len()) && namespace.is_match(n)));
            assert!(text("sectionName").is_none_or(|s| (1..=253).contains(&s.len()) && section.is_match(s)));
            assert!(r["port"].as_u64().is_none_or(|p| (1..=65535).contains(&p)));
            let allowed = ["group", "kind", "namespace", "name", "sectionName", "port"];
            assert!(r.as_object().unwrap().keys().all(|k| allowed.contains(&k.as_str())), "{r}");
            let conditions = parent["conditions"].as_array().unwrap();
            assert!((1..=8).contains(&conditions.len()));
            let mut types = std::collections::HashSet::new();
            for c in conditions {
                let t = c["type"].as_str().unwrap();
                assert!(t.len() <= 316 && condition_type.is_match(t) && types.insert(t), "{t}: types are a map key");
                assert!(["True", "False", "Unknown"].contains(&c["status"].as_str().unwrap()));
                let why = c["reason"].as_str().unwrap();
                assert!((1..=1024).contains(&why.len()) && reason.is_match(why), "{why}");
                assert!(c["message"].as_str().unwrap().len() <= 32_768);
                assert!(c["observedGeneration"].as_i64().is_some_and(|g| g >= 0));
                assert!(time.is_match(c["lastTransitionTime"].as_str().unwrap()));
            }
        }
    }
}

#[cfg(test)]
#[path = "status_conformance_tests.rs"]
mod conformance_tests;
