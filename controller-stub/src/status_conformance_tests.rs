//! Status documents compared with what the Gateway API's own conformance suite expects of a
//! route in the same situation (kubernetes-sigs/gateway-api, `conformance/`).
//!
//! What the suite compares, in `conformance/utils/kubernetes/helpers.go`:
//! - `ConditionsHaveLatestObservedGeneration`, run first by every route check: each condition
//!   of each parent has `observedGeneration` equal to the route's `metadata.generation`.
//! - `parentsForRouteMatch` (behind `RoutesAndParentMustBeAccepted` and `RouteMustHaveParents`):
//!   some parent with the expected `controllerName`, `parentRef.group`, `parentRef.kind`,
//!   `parentRef.name` and `parentRef.namespace` (an absent namespace passes unless required),
//!   whose conditions include each expected one by `type`, `status` and `reason`
//!   (`conditionsMatch`, `findConditionInList`). `port` and `sectionName` are not compared.
//! - `HTTPRouteMustHaveCondition`: the parent named like the expected parent (and in its
//!   namespace, when one is written) has the condition, by `type`, `status` and `reason`.
//! - `HTTPRouteMustHaveNoAcceptedParents`: no parents, or exactly one, `Accepted` False.
//! - `message` and `lastTransitionTime` are never compared.
//!
//! The suite's route status tests all use Gateway parents; its mesh tests
//! (`conformance/tests/mesh/`) check traffic only. So each case below takes the mesh test's
//! manifests where there is one and holds them to what the Gateway-parent tests require of a
//! route in the same situation:
//! - accepted: `mesh/httproute-simple-same-namespace.yaml` and `mesh/grpcroute-weight.yaml`,
//!   held to `RoutesAndParentMustBeAccepted` (`Accepted` True/`Accepted`, which every route test
//!   runs first, for GRPCRoutes too, e.g. `grpcroute-exact-method-matching.go`) and
//!   `HTTPRouteMustBeAcceptedAndResolved` (`ResolvedRefs` True/`ResolvedRefs`).
//! - one bad backendRef of two: `httproute-invalid-nonexistent-backendref.go` (`ResolvedRefs`
//!   False/`BackendNotFound`), `httproute-invalid-backendref-unknown-kind.go` (False/`InvalidKind`,
//!   with its very backendRef `group: unknownkind.example.com, kind: NonExistent`) and
//!   `httproute-partially-invalid-via-invalid-reference-grant.go` (two rules, one with a bad
//!   backendRef), each with the route `Accepted` True. None asks for `PartiallyInvalid`: the
//!   rule stays and the bad backend's share gets 500.
//! - refused parent: `httproute-invalid-parentref-not-matching-listener-port.go` and
//!   `-not-matching-section-name.go` (`Accepted` False/`NoMatchingParent`, the one parent not
//!   accepted, and, in the first, `ResolvedRefs` True). The suite has no parentRef to an object
//!   that does not exist; `NoMatchingParent` is the API's reason for "no matching parent".
//! - unsupported filter: the suite is silent. The API (`apis/v1/shared_types.go`,
//!   `RouteConditionPartiallyInvalid`) allows dropping the invalid rules: `Accepted` True at the
//!   latest generation, `PartiallyInvalid` True/`UnsupportedValue` with a message starting
//!   "Dropped Rule", and never `PartiallyInvalid` on a route that is fully invalid or not
//!   accepted. A route whose every rule is dropped is refused, `Accepted` False/`UnsupportedValue`,
//!   as `HTTPRouteFilter.type` says of a value an implementation does not know.
//! - serving its last good version: the suite is silent (its `httproute-observed-generation-bump.go`
//!   only checks that a valid change raises `observedGeneration`). The API's "Fall Back" approach
//!   to a partly invalid route fits what `sync` and `serve` do: `Accepted` True with the
//!   generation of the last good version, and `PartiallyInvalid` True with a message starting
//!   "Fall Back" and saying why (see `status::partially_invalid`). The suite's
//!   `ConditionsHaveLatestObservedGeneration` would call those conditions stale, which they are.
//! - `lastTransitionTime` across an unrelated change: the suite never compares it;
//!   `metav1.Condition` says it is when the condition last changed from one status to another.
//!
//! Stricter than the suite here: the whole `parentRef` must be as written, and the conditions
//! exactly these, in meshroute's order (`Accepted`, `ResolvedRefs`, `PartiallyInvalid`), each
//! with its `observedGeneration`. `message` and `lastTransitionTime` must be present.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;
use yaml_rust2::{Yaml, YamlLoader};

use super::{now, Transitions, CONTROLLER_NAME, STATUS_DIR};
use crate::check::{check, Output};
use crate::pipeline::LastGood;

const NS: &str = "gateway-conformance-mesh";

/// The Services of `conformance/mesh/manifests.yaml` a route needs, with the ports they use
/// there, and ClusterIPs.
const SERVICES: &str = "apiVersion: v1
kind: Service
metadata: {name: echo, namespace: gateway-conformance-mesh}
spec:
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, appProtocol: http, targetPort: 8080}
  - {name: http-alt, port: 8080, appProtocol: http}
  - {name: grpc, port: 7070, appProtocol: kubernetes.io/h2c}
---
apiVersion: v1
kind: Service
metadata: {name: echo-v1, namespace: gateway-conformance-mesh}
spec:
  clusterIP: 10.96.0.11
  ports:
  - {name: http, port: 80, appProtocol: http, targetPort: 8080}
  - {name: http-alt, port: 8080, appProtocol: http}
  - {name: grpc, port: 7070}
---
apiVersion: v1
kind: Service
metadata: {name: echo-v2, namespace: gateway-conformance-mesh}
spec:
  clusterIP: 10.96.0.12
  ports:
  - {name: http, port: 80, appProtocol: http, targetPort: 8080}
  - {name: http-alt, port: 8080, appProtocol: http}
  - {name: grpc, port: 7070}
";

/// An HTTPRoute in the mesh namespace with `spec` indented by two spaces.
fn http_route(name: &str, generation: i64, spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {NS}, generation: {generation}}}
spec:
{spec}"
    )
}

/// An HTTPRoute on port 80 of Service `echo` with one rule, to `backend`.
fn echo_route(name: &str, generation: i64, backend: &str) -> String {
    let parent = "{group: \"\", kind: Service, name: echo, port: 80}";
    http_route(name, generation, &format!("  parentRefs: [{parent}]\n  rules:\n  - backendRefs: [{backend}]\n"))
}

/// What `meshroute check DIR -o json` prints for [`SERVICES`] and `routes`: its `items`.
fn check_json(routes: &[String]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.yaml"), SERVICES).unwrap();
    std::fs::write(dir.path().join("routes.yaml"), routes.join("---\n")).unwrap();
    let report = check(dir.path(), false, Output::Json);
    let list: Value = serde_json::from_str(&report.text).unwrap_or_else(|e| panic!("{e}: {}", report.text));
    assert_eq!((&list["apiVersion"], &list["kind"]), (&json!("v1"), &json!("List")));
    list["items"].as_array().unwrap().clone()
}

/// A `RouteParentStatus` as expected: `parentRef` as written, meshroute's `controllerName`, and
/// each condition's `(type, status, reason, observedGeneration)`.
fn parent(parent_ref: Value, conditions: &[(&str, &str, &str, i64)]) -> Value {
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(kind, status, reason, generation)| {
            json!({"type": kind, "status": status, "reason": reason, "observedGeneration": generation})
        })
        .collect();
    json!({"parentRef": parent_ref, "controllerName": CONTROLLER_NAME, "conditions": conditions})
}

/// The document of route `kind` `name` among `items`, which must be there once, with
/// `metadata.generation` `generation` and exactly the parents `expected`. Returns each
/// condition's `message`, by parent then condition, for the cases that check it.
fn assert_status(items: &[Value], kind: &str, name: &str, generation: i64, expected: &[Value]) -> Vec<Vec<String>> {
    let found: Vec<&Value> = items.iter().filter(|d| d["kind"] == kind && d["metadata"]["name"] == name).collect();
    let [doc] = found.as_slice() else { panic!("{kind} {name}: {} documents in {items:#?}", found.len()) };
    assert_eq!(doc["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(doc["metadata"], json!({"namespace": NS, "name": name, "generation": generation}));
    let mut messages = Vec::new();
    let mut compared = doc["status"]["parents"].clone();
    for parent in compared.as_array_mut().unwrap() {
        let mut texts = Vec::new();
        for condition in parent["conditions"].as_array_mut().unwrap() {
            let condition = condition.as_object_mut().unwrap();
            let message = condition.remove("message").and_then(|m| m.as_str().map(str::to_owned));
            let time = condition.remove("lastTransitionTime").and_then(|t| t.as_str().map(str::to_owned));
            assert!(message.as_ref().is_some_and(|m| !m.is_empty()), "{name}: {condition:?} has no message");
            assert!(time.is_some_and(|t| t.ends_with('Z') && t.len() == 20), "{name}: {condition:?}");
            texts.extend(message);
        }
        messages.push(texts);
    }
    assert_eq!(compared, json!(expected), "{kind} {name}: {doc:#}");
    messages
}

fn service_ref(extra: Value) -> Value {
    let mut parent_ref = json!({"group": "", "kind": "Service", "name": "echo"});
    parent_ref.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    parent_ref
}

/// As every route test of the suite first requires, and `HTTPRouteMustBeAcceptedAndResolved`.
#[test]
fn accepted_http_and_grpc_routes_are_accepted_and_resolved_at_their_generation() {
    // mesh/httproute-simple-same-namespace.yaml and mesh/grpcroute-weight.yaml.
    let http = http_route(
        "gateway-conformance-mesh-test",
        3,
        "  parentRefs:
  - group: \"\"
    kind: Service
    name: echo
    port: 80
  rules:
  - backendRefs:
    - name: echo-v1
      port: 8080
",
    );
    let grpc = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: mesh-grpc-weighted-backends, namespace: {NS}, generation: 5}}
spec:
  parentRefs:
  - group: \"\"
    kind: Service
    name: echo
    port: 7070
  rules:
  - backendRefs:
    - {{name: echo-v1, port: 7070, weight: 70}}
    - {{name: echo-v2, port: 7070, weight: 30}}
"
    );
    let items = check_json(&[http, grpc]);
    assert_eq!(items.len(), 2);
    let accepted = |port: u16, generation| {
        parent(
            service_ref(json!({"port": port})),
            &[("Accepted", "True", "Accepted", generation), ("ResolvedRefs", "True", "ResolvedRefs", generation)],
        )
    };
    assert_status(&items, "HTTPRoute", "gateway-conformance-mesh-test", 3, &[accepted(80, 3)]);
    assert_status(&items, "GRPCRoute", "mesh-grpc-weighted-backends", 5, &[accepted(7070, 5)]);
}

/// As `httproute-invalid-nonexistent-backendref.go` and `-backendref-unknown-kind.go` expect.
#[test]
fn one_bad_backend_ref_of_two_leaves_the_route_accepted_with_resolved_refs_false_and_its_reason() {
    // httproute-partially-invalid-via-invalid-reference-grant.yaml's shape: two rules, the
    // first with the bad backendRef.
    let route = |name: &str, bad_backend: &str| {
        http_route(
            name,
            2,
            &format!(
                "  parentRefs: [{{group: \"\", kind: Service, name: echo, namespace: {NS}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v2}}}}]
    backendRefs:
    - {bad_backend}
  - backendRefs:
    - {{name: echo-v1, port: 8080}}
"
            ),
        )
    };
    let items = check_json(&[
        // httproute-invalid-nonexistent-backendref.yaml's backendRef.
        route("nonexistent-backend", &format!("{{name: nonexistent, namespace: {NS}, port: 8080}}")),
        // httproute-invalid-backendref-unknown-kind.yaml's backendRef.
        route("unknown-kind-backend", "{group: unknownkind.example.com, kind: NonExistent, name: echo-v1, port: 8080}"),
    ]);
    let written = service_ref(json!({"namespace": NS}));
    for (name, reason) in [("nonexistent-backend", "BackendNotFound"), ("unknown-kind-backend", "InvalidKind")] {
        let expected = parent(written.clone(), &[("Accepted", "True", "Accepted", 2), ("ResolvedRefs", "False", reason, 2)]);
        let messages = assert_status(&items, "HTTPRoute", name, 2, &[expected]);
        assert!(messages[0][1].starts_with("spec.rules[0].backendRefs[0]: "), "names the bad backendRef: {messages:?}");
    }
}

/// As `httproute-invalid-parentref-not-matching-listener-port.go` and
/// `-not-matching-section-name.go` expect, and likewise for a Service that does not exist.
#[test]
fn a_parent_ref_that_matches_no_service_port_is_refused_with_no_matching_parent() {
    let cases = [
        (
            "no-such-service",
            "{group: \"\", kind: Service, name: nothing}",
            json!({"group": "", "kind": "Service", "name": "nothing"}),
        ),
        // The suite's port 81, and its port 80 with sectionName http1.
        ("not-matching-port", "{group: \"\", kind: Service, name: echo, port: 81}", service_ref(json!({"port": 81}))),
        (
            "not-matching-section-name",
            "{group: \"\", kind: Service, name: echo, port: 80, sectionName: http1}",
            service_ref(json!({"port": 80, "sectionName": "http1"})),
        ),
    ];
    let routes: Vec<String> = cases
        .iter()
        .map(|(name, written, _)| {
            http_route(
                name,
                1,
                &format!("  parentRefs: [{written}]\n  rules:\n  - backendRefs: [{{name: echo-v1, port: 8080}}]\n"),
            )
        })
        .collect();
    let items = check_json(&routes);
    for (name, _, parent_ref) in cases {
        let expected =
            parent(parent_ref, &[("Accepted", "False", "NoMatchingParent", 1), ("ResolvedRefs", "True", "ResolvedRefs", 1)]);
        assert_status(&items, "HTTPRoute", name, 1, &[expected]);
    }
}

/// The suite is silent; the API's `PartiallyInvalid` "Drop Rule(s)" approach, and
/// `HTTPRouteFilter.type`'s `Accepted` False/`UnsupportedValue` once nothing is left.
#[test]
fn a_rule_with_an_unsupported_filter_is_dropped_and_the_route_partially_invalid_or_refused_if_nothing_is_left() {
    let cors_rule = "  - matches: [{path: {value: /cors}}]
    filters: [{type: CORS, cors: {allowOrigins: [\"*\"]}}]
    backendRefs: [{name: echo-v1, port: 8080}]
";
    let parents = "  parentRefs: [{group: \"\", kind: Service, name: echo, port: 80}]\n  rules:\n";
    let items = check_json(&[
        http_route("one-rule-dropped", 4, &format!("{parents}  - backendRefs: [{{name: echo-v2, port: 8080}}]\n{cors_rule}")),
        http_route("every-rule-dropped", 4, &format!("{parents}{cors_rule}")),
    ]);
    let written = service_ref(json!({"port": 80}));
    let partly = parent(
        written.clone(),
        &[
            ("Accepted", "True", "Accepted", 4),
            ("ResolvedRefs", "True", "ResolvedRefs", 4),
            ("PartiallyInvalid", "True", "UnsupportedValue", 4),
        ],
    );
    let messages = assert_status(&items, "HTTPRoute", "one-rule-dropped", 4, &[partly]);
    assert!(messages[0][2].starts_with("Dropped Rule spec.rules[1]: "), "the API's prefix, then which rule: {messages:?}");
    let refused = parent(written, &[("Accepted", "False", "UnsupportedValue", 4), ("ResolvedRefs", "True", "ResolvedRefs", 4)]);
    assert_status(&items, "HTTPRoute", "every-rule-dropped", 4, &[refused]);
}

/// A watching `meshroute sync` (native mode: no filter module to publish) between two changes
/// to its manifests directory: what its watch loop keeps from one publication to the next.
struct WatchingSync {
    dir: TempDir,
    out: TempDir,
    last_good: LastGood,
    transitions: Transitions,
}

impl WatchingSync {
    fn new(files: &[(&str, &str)]) -> Self {
        let sync = WatchingSync {
            dir: tempfile::tempdir().unwrap(),
            out: tempfile::tempdir().unwrap(),
            last_good: LastGood::default(),
            transitions: Transitions::default(),
        };
        sync.write(files);
        sync
    }

    fn write(&self, files: &[(&str, &str)]) {
        for (name, text) in files {
            std::fs::write(self.dir.path().join(name), text).unwrap();
        }
    }

    /// One publication, as after a change; whether everything validated.
    fn publish(&mut self) -> bool {
        let args = crate::SyncArgs {
            dir: self.dir.path().to_path_buf(),
            out: self.out.path().to_path_buf(),
            once: false,
            mode: crate::Mode::Native,
            wasm: "unused.wasm".into(),
            admin_port: 9901,
            xds: None,
            xds_allow_remote: false,
            no_metrics: false,
            client: crate::Client { namespace: NS.to_owned() },
        };
        crate::sync::cycle(&args, self.out.path(), &mut self.last_good, &mut self.transitions)
    }

    fn status_path(&self, route: &str) -> std::path::PathBuf {
        self.out.path().join(STATUS_DIR).join(format!("httproute_{NS}_{route}.yaml"))
    }

    /// Route `route`'s status file, as JSON.
    fn status(&self, route: &str) -> Value {
        let text = std::fs::read_to_string(self.status_path(route)).unwrap();
        let docs = YamlLoader::load_from_str(&text).unwrap();
        let [doc] = docs.as_slice() else { panic!("one document: {text}") };
        to_json(doc)
    }

    /// The cluster Envoy's published routes (native mode's `rds.json`) send the first rule of
    /// route `route` to.
    fn cluster_of(&self, route: &str) -> String {
        let text = std::fs::read_to_string(self.out.path().join(crate::envoy::RDS_FILE)).unwrap();
        let rds: Value = serde_json::from_str(&text).unwrap();
        let name = format!("{NS}/{route}/rules/0");
        rds["resources"][0]["virtual_hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|host| host["routes"].as_array().into_iter().flatten())
            .find(|r| r["name"].as_str().is_some_and(|n| n.starts_with(&name)))
            .and_then(|r| r["route"]["cluster"].as_str())
            .unwrap_or_else(|| panic!("{route} in {text}"))
            .to_owned()
    }
}

/// A status file as read back: strings stay strings (`"True"` is no boolean), numbers numbers.
fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::String(s) => json!(s),
        Yaml::Integer(i) => json!(i),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(map) => Value::Object(map.iter().map(|(k, v)| (k.as_str().unwrap().to_owned(), to_json(v))).collect()),
        other => panic!("not in a status document: {other:?}"),
    }
}

/// Each condition's `lastTransitionTime` in a status document, by type, of its first parent.
fn transition_times(doc: &Value) -> Vec<(String, String)> {
    doc["status"]["parents"][0]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap().to_owned(), c["lastTransitionTime"].as_str().unwrap().to_owned()))
        .collect()
}

/// Until the clock, to the second as condition times are written, has moved past `time`: a
/// condition stamped anew from now on cannot carry `time` by chance.
fn wait_past(time: &str) {
    while now().as_str() <= time {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A route whose current manifest does not validate while `sync` keeps its last good version
/// live: its status says so in the API's "Fall Back" terms (see the module comment), and the
/// fix brings it back to the current generation.
#[test]
fn a_route_served_as_its_last_good_version_keeps_that_versions_conditions_and_says_fall_back() {
    let good = echo_route("split", 3, "{name: echo-v1, port: 8080}");
    let mut sync = WatchingSync::new(&[("services.yaml", SERVICES), ("route.yaml", &good)]);
    assert!(sync.publish());
    let written = service_ref(json!({"port": 80}));
    let accepted_at =
        |generation| [("Accepted", "True", "Accepted", generation), ("ResolvedRefs", "True", "ResolvedRefs", generation)];
    assert_status(&[sync.status("split")], "HTTPRoute", "split", 3, &[parent(written.clone(), &accepted_at(3))]);
    let first_times = transition_times(&sync.status("split"));
    let v1 = crate::model::cluster_name(NS, "echo-v1", 8080);
    assert_eq!(sync.cluster_of("split"), v1);

    // Generation 4 moves to echo-v2 with a typo: it does not validate, and generation 3 stays.
    wait_past(&first_times[0].1);
    sync.write(&[("route.yaml", &echo_route("split", 4, "{name: echo-v2, port: 8080, wieght: 1}"))]);
    assert!(!sync.publish(), "an error: the output is not what the input says");
    assert_eq!(sync.cluster_of("split"), v1, "generation 3 is live");
    let [accepted, resolved] = accepted_at(3);
    let expected = parent(written.clone(), &[accepted, resolved, ("PartiallyInvalid", "True", "UnsupportedValue", 4)]);
    let doc = sync.status("split");
    let messages = assert_status(std::slice::from_ref(&doc), "HTTPRoute", "split", 4, &[expected]);
    let fall_back = &messages[0][2];
    assert!(
        fall_back.starts_with(
            "Fall Back to the last version that validated (generation 3): the current manifest (generation 4) does not validate: "
        ) && fall_back.contains("unknown field \"wieght\""),
        "{fall_back}"
    );
    assert_eq!(transition_times(&doc)[..2], first_times[..], "Accepted and ResolvedRefs did not change status");

    // Fixed at generation 5: served, and reported, as written.
    sync.write(&[("route.yaml", &echo_route("split", 5, "{name: echo-v2, port: 8080}"))]);
    assert!(sync.publish());
    assert_eq!(sync.cluster_of("split"), crate::model::cluster_name(NS, "echo-v2", 8080));
    assert_status(&[sync.status("split")], "HTTPRoute", "split", 5, &[parent(written, &accepted_at(5))]);
}

/// A change to another route, and a new Service, leave a route's status file alone: not
/// rewritten, so its `lastTransitionTime`s are those of its first publication.
#[test]
fn an_unrelated_change_neither_rewrites_a_routes_status_file_nor_moves_its_transition_times() {
    let mut sync = WatchingSync::new(&[
        ("services.yaml", SERVICES),
        ("a.yaml", &echo_route("a", 1, "{name: echo-v1, port: 8080}")),
        ("b.yaml", &echo_route("b", 1, "{name: echo-v2, port: 8080}")),
    ]);
    assert!(sync.publish());
    let before = std::fs::read_to_string(sync.status_path("a")).unwrap();
    let inode = |path: &Path| std::fs::metadata(path).unwrap().ino();
    let a_inode = inode(&sync.status_path("a"));
    let published_at = transition_times(&sync.status("a"))[0].1.clone();

    wait_past(&published_at);
    let unrelated = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: echo-v3, namespace: {NS}}}\nspec: {{clusterIP: 10.96.0.13, ports: [{{port: 80}}]}}\n"
    );
    sync.write(&[("b.yaml", &echo_route("b", 2, "{name: gone, port: 8080}")), ("more-services.yaml", &unrelated)]);
    assert!(sync.publish());
    assert_eq!(std::fs::read_to_string(sync.status_path("a")).unwrap(), before, "a's status is byte for byte the same");
    assert_eq!(inode(&sync.status_path("a")), a_inode, "and the file was not replaced by an identical one");
    assert!(transition_times(&sync.status("a")).iter().all(|(_, time)| *time == published_at));
    // The control: b's ResolvedRefs did change, at the new time; its Accepted did not.
    let b = transition_times(&sync.status("b"));
    assert_eq!(b[0], ("Accepted".to_owned(), published_at.clone()));
    assert!(b[1].0 == "ResolvedRefs" && b[1].1 > published_at, "{b:?}");
}
