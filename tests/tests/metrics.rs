//! What the mesh counts, read where a Prometheus server reads it: Envoy's admin
//! `/stats/prometheus`. A known mix of requests (two routes on one Service, a weighted split, a
//! redirect, an unmatched path, an unresolved backendRef, a rule without backends, gRPC calls
//! matched and unmatched) must show up as exactly those counts under exactly those tags, in the
//! filter and in native mode; and a table swap must neither reset nor double a counter.

use std::collections::BTreeMap;
use std::time::Duration;

use meshroute_e2e::live::{module_variant, replace_file, wait_until, SyncProcess, DEADLINE};
use meshroute_e2e::mesh::{Mesh, Mode};
use meshroute_e2e::tools;
use tonic::Code;

const FAMILY: &str = "envoy_meshroute_requests_total";

const ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: first
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - name: split
    matches:
    - path: {type: PathPrefix, value: /split}
    backendRefs:
    - {name: echo-v1, port: 80}
    - {name: echo-v2, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /gone}
    backendRefs:
    - {name: missing, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /old}
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /new}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: second.v2
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, port: 80}
  rules:
  - name: only
    matches:
    - path: {type: Exact, value: /second}
    backendRefs:
    - {name: echo-v3, port: 80}
  - matches:
    - path: {type: Exact, value: /empty}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: calls
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: grpc-echo}
  rules:
  - matches:
    - method: {service: echo_basic.grpcecho.GrpcEcho, method: Echo}
    backendRefs:
    - {name: grpc-v1, port: 8080}
"#;

fn mesh(name: &str) -> Mesh {
    Mesh::builder(name)
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .service("echo-v3")
        .grpc_service("grpc-echo")
        .grpc_service("grpc-v1")
        .routes(ROUTES)
        .start()
}

type Series = BTreeMap<BTreeMap<String, String>, u64>;

/// One series: its six tags, and its count.
fn series(expected: &mut Series, tags: [&str; 6], count: u64) {
    if count == 0 {
        return;
    }
    let names = ["frontend", "route", "rule", "rule_name", "backend", "outcome"];
    let labels = names.iter().zip(tags).map(|(name, value)| (name.to_string(), value.to_owned())).collect();
    *expected.entry(labels).or_default() += count;
}

/// Waits until Envoy shows `expected` (native mode counts when a request's log entry is
/// written, just after its answer), then requires exactly it.
#[track_caller]
fn expect_counts(mesh: &Mesh, expected: &Series) {
    let settled = wait_until(
        "the counters to settle",
        DEADLINE,
        || {
            let now = mesh.prometheus(FAMILY);
            (now == *expected).then_some(now)
        },
        || format!("expected {expected:#?}\nEnvoy shows {:#?}", mesh.prometheus(FAMILY)),
    );
    assert_eq!(&settled, expected);
}

/// The backend tag of an unresolved backendRef's share: native mode cannot name it (Envoy
/// answers before any cluster is chosen), the filter can.
fn unresolved_backend(mesh: &Mesh, tag: &'static str) -> &'static str {
    if mesh.mode() == Mode::Native {
        ""
    } else {
        tag
    }
}

#[test]
fn a_known_mix_of_requests_counts_exactly_under_its_tags() {
    let mesh = mesh("metrics_known_mix");
    let mut expected = Series::new();
    let (mut v1, mut v2) = (0, 0);
    for _ in 0..40 {
        match mesh.get("echo", "/split/a").expect_one_of(&["echo-v1", "echo-v2"]).backend.as_deref() {
            Some("echo-v1") => v1 += 1,
            _ => v2 += 1,
        }
    }
    assert!(v1 > 0 && v2 > 0, "40 requests all went to one backend of a 1:1 split: v1 {v1}, v2 {v2}");
    for _ in 0..5 {
        mesh.get("echo", "/second").expect_backend("echo-v3");
    }
    for _ in 0..3 {
        mesh.get("echo", "/gone").expect_status(500);
    }
    for _ in 0..2 {
        mesh.get("echo", "/empty").expect_status(500);
    }
    for _ in 0..4 {
        mesh.get("echo", "/nowhere").expect_status(404);
    }
    for _ in 0..6 {
        mesh.get("echo", "/old").expect_redirect(302, "http://echo/new");
    }
    for _ in 0..3 {
        mesh.grpc("grpc-echo", "Echo").expect_backend("grpc-v1");
    }
    for _ in 0..2 {
        mesh.grpc("grpc-echo", "EchoTwo").expect_code(Code::Unimplemented);
    }

    let echo = "default/echo:80";
    series(&mut expected, [echo, "default/first", "0", "split", "default/echo-v1:80", "routed"], v1);
    series(&mut expected, [echo, "default/first", "0", "split", "default/echo-v2:80", "routed"], v2);
    let missing = unresolved_backend(&mesh, "default/missing:80");
    series(&mut expected, [echo, "default/first", "1", "", missing, "invalid_backend"], 3);
    series(&mut expected, [echo, "default/first", "2", "", "", "redirect"], 6);
    series(&mut expected, [echo, "default/second.v2", "0", "only", "default/echo-v3:80", "routed"], 5);
    series(&mut expected, [echo, "default/second.v2", "1", "", "", "no_backends"], 2);
    series(&mut expected, [echo, "", "", "", "", "no_route"], 4);
    let grpc = "default/grpc-echo:8080";
    series(&mut expected, [grpc, "default/calls", "0", "", "default/grpc-v1:8080", "routed"], 3);
    series(&mut expected, [grpc, "", "", "", "", "no_route"], 2);
    expect_counts(&mesh, &expected);
}

/// A request to a Service port without routes is Envoy's business, not meshroute's: it counts
/// under no meshroute series.
#[test]
fn a_port_without_routes_counts_nothing() {
    let mesh = mesh("metrics_port_without_routes");
    for _ in 0..3 {
        mesh.get("echo-v1", "/anything").expect_backend("echo-v1");
    }
    mesh.get("echo", "/second").expect_backend("echo-v3");
    let mut expected = Series::new();
    series(&mut expected, ["default/echo:80", "default/second.v2", "0", "only", "default/echo-v3:80", "routed"], 1);
    expect_counts(&mesh, &expected);
}

/// Prometheus counters only go up; a drop reads as a restart and a double as traffic. Counts
/// carry across a route change (a new table for the filter, new routes for native mode) and a
/// new Service (new listeners), for series the change left alone and for the one it moved.
#[test]
fn a_table_swap_neither_resets_nor_doubles_a_counter() {
    let mesh = mesh("metrics_table_swap");
    let sync = SyncProcess::start(&mesh, &tools::filter_wasm());
    let routes = mesh.manifests_dir().join("routes-0.yaml");
    let second = ["default/echo:80", "default/second.v2", "0", "only"];
    let mut expected = Series::new();
    for _ in 0..7 {
        mesh.get("echo", "/second").expect_backend("echo-v3");
    }
    series(&mut expected, [second[0], second[1], second[2], second[3], "default/echo-v3:80", "routed"], 7);
    expect_counts(&mesh, &expected);

    // /second now goes to echo-v1: a new table (a new route configuration in native mode).
    replace_file(&routes, ROUTES.replace("- {name: echo-v3, port: 80}", "- {name: echo-v1, port: 80}").as_bytes());
    let (mut polled_v3, mut polled_v1) = (0, 0);
    wait_until(
        "/second to move to echo-v1",
        DEADLINE,
        || match mesh.get("echo", "/second").send().backend.as_deref() {
            Some("echo-v1") => {
                polled_v1 += 1;
                Some(())
            }
            Some("echo-v3") => {
                polled_v3 += 1;
                None
            }
            other => panic!("/second answered by {other:?} during the change"),
        },
        || sync.log(),
    );
    for _ in 0..5 {
        mesh.get("echo", "/second").expect_backend("echo-v1");
    }
    series(&mut expected, [second[0], second[1], second[2], second[3], "default/echo-v3:80", "routed"], polled_v3);
    series(&mut expected, [second[0], second[1], second[2], second[3], "default/echo-v1:80", "routed"], polled_v1 + 5);
    expect_counts(&mesh, &expected);

    // A new Service: new listeners, a new table; the old counters stay.
    let [a, b, c, _] = mesh.service("echo").cluster_ip.octets();
    let with_new = format!(
        "{}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: extra\n  namespace: default\nspec:\n  clusterIP: {a}.{b}.{c}.250\n  ports:\n  - {{name: http, port: 80}}\n",
        ROUTES.replace("- {name: echo-v3, port: 80}", "- {name: echo-v1, port: 80}")
    );
    let added = |mesh: &Mesh| mesh.stats("^listener_manager\\.listener_(added|modified)$").values().sum::<u64>();
    let listeners_before = added(&mesh);
    replace_file(&routes, with_new.as_bytes());
    wait_until(
        "Envoy to add the new Service's listener",
        DEADLINE,
        || (added(&mesh) > listeners_before).then_some(()),
        || sync.log(),
    );
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..2 {
        mesh.get("echo", "/second").expect_backend("echo-v1");
    }
    series(&mut expected, [second[0], second[1], second[2], second[3], "default/echo-v1:80", "routed"], 2);
    expect_counts(&mesh, &expected);
}

/// A new module runs in new VMs, and a proxy-wasm counter lives only as long as a VM that
/// defined it: the new VMs take over every series the old ones defined, so the counts go on.
/// (Envoy fed over ADS starts new VMs for each new table too; `MESHROUTE_E2E_MODE=ads` runs
/// the swap test above through that.)
#[test]
fn a_new_module_goes_on_counting_where_the_old_one_stopped() {
    let mesh = mesh("metrics_new_module");
    if mesh.mode() != Mode::Filter {
        return;
    }
    for _ in 0..4 {
        mesh.get("echo", "/second").expect_backend("echo-v3");
    }
    mesh.get("echo", "/nowhere").expect_status(404);
    let mut expected = Series::new();
    series(&mut expected, ["default/echo:80", "default/second.v2", "0", "only", "default/echo-v3:80", "routed"], 4);
    series(&mut expected, ["default/echo:80", "", "", "", "", "no_route"], 1);
    expect_counts(&mesh, &expected);

    let wasm = std::fs::read(tools::filter_wasm()).unwrap_or_else(|error| panic!("the filter module: {error}"));
    let variant = mesh.work_dir().join("meshroute_filter-variant.wasm");
    std::fs::write(&variant, module_variant(&wasm, "metrics-test", b"1")).unwrap_or_else(|error| panic!("{error}"));
    let created = |mesh: &Mesh| mesh.stats("^wasm\\.envoy\\.wasm\\.runtime\\.v8\\.created$").values().sum::<u64>();
    let before = created(&mesh);
    let sync = SyncProcess::start(&mesh, &variant);
    wait_until("Envoy to start the new module's VMs", DEADLINE, || (created(&mesh) > before).then_some(()), || sync.log());
    // Until the old VMs are gone, both count under the same stats; then only the new ones.
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        mesh.get("echo", "/second").expect_backend("echo-v3");
    }
    series(&mut expected, ["default/echo:80", "default/second.v2", "0", "only", "default/echo-v3:80", "routed"], 3);
    expect_counts(&mesh, &expected);
}
