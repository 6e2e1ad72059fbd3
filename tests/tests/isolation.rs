//! One bad route never freezes the mesh: while `meshroute sync` watches a mounted ConfigMap under
//! load, one team breaks its route and another changes its own (on the same Service) in the same
//! update. The changed
//! route follows, the broken one keeps routing as it did, no request fails, and the error is
//! reported with its file, line and field. Runs against the filter and Envoy's own router.

use std::fs;
use std::process::Command;
use std::thread;
use std::time::Duration;

use meshroute_e2e::live::{wait_until, ConfigMapVolume, SyncProcess, DEADLINE};
use meshroute_e2e::load::{Load, LoadSpec, Target};
use meshroute_e2e::mesh::Mesh;
use meshroute_e2e::tools;

/// Team `team`'s route on `echo`: `/team` to `backend`, named `team-TEAM`.
fn team_route(team: &str, backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: team-{team}
  namespace: default
spec:
  parentRefs:
  - {{group: \"\", kind: Service, name: echo, port: 80}}
  rules:
  - matches:
    - path: {{type: PathPrefix, value: /{team}}}
    backendRefs:
    - {{name: {backend}, port: 80}}
"
    )
}

fn team_a(backend: &str) -> String {
    team_route("a", backend)
}

fn team_b(backend: &str) -> String {
    team_route("b", backend)
}

#[test]
fn a_broken_route_keeps_routing_while_another_team_changes_theirs() {
    let mesh = Mesh::builder("isolation_broken_route")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(&team_a("echo-v1"))
        .routes(&team_b("echo-v1"))
        .start();
    mesh.get("echo", "/a").expect_backend("echo-v1");
    mesh.get("echo", "/b").expect_backend("echo-v1");

    let services = fs::read(mesh.manifests_dir().join("services.yaml")).unwrap_or_else(|error| panic!("{error}"));
    let files = |a: &str, b: &str| {
        vec![
            ("services.yaml".to_owned(), services.clone()),
            ("team-a.yaml".to_owned(), a.as_bytes().to_vec()),
            ("team-b.yaml".to_owned(), b.as_bytes().to_vec()),
        ]
    };
    let mut volume = ConfigMapVolume::mount(&mesh.work_dir().join("configmap"), &files(&team_a("echo-v1"), &team_b("echo-v1")));
    let sync = SyncProcess::start_on(&mesh, &volume.dir, &tools::filter_wasm());

    // One load client's connections each go to one address: both routes are on echo.
    let address = mesh.address_of("echo").parse().unwrap_or_else(|error| panic!("echo's address: {error}"));
    let target = |path: &str| Target { address, path: path.to_owned(), host: "echo".to_owned() };
    let duration = Duration::from_secs(6);
    let load = Load::start(
        mesh.runtime(),
        &LoadSpec {
            targets: vec![target("/a"), target("/b")],
            connections: 4,
            rate: 200,
            duration,
            max_requests: 200 * duration.as_secs() as usize + 200,
        },
    );
    thread::sleep(Duration::from_secs(1));

    // One update: team A misspells a field of its route while team B moves to echo-v2.
    let broken = team_a("echo-v2").replace("    backendRefs:", "    backendRef:");
    let broken_line = broken.lines().position(|line| line.contains("backendRef:")).map_or(0, |i| i + 1);
    volume.update(&files(&broken, &team_b("echo-v2")));
    wait_until(
        "/b to go to echo-v2",
        DEADLINE,
        || (mesh.get("echo", "/b").send().backend.as_deref() == Some("echo-v2")).then_some(()),
        || format!("{}\n{}", sync.log(), mesh.envoy_log_tail()),
    );
    let report = load.finish(mesh.runtime());
    println!("{report}");
    report.assert_all_ok();

    // Team A's route kept routing as before, through the whole update.
    let a_answers: Vec<&str> =
        report.samples.iter().filter(|s| s.target == 0).map(|s| s.backend.as_deref().unwrap_or("none")).collect();
    assert!(!a_answers.is_empty() && a_answers.iter().all(|b| *b == "echo-v1"), "/a was answered by {a_answers:?}");
    mesh.get("echo", "/a").expect_backend("echo-v1");
    // Team B's answers moved from echo-v1 to echo-v2, and never elsewhere.
    let b_answers: Vec<&str> =
        report.samples.iter().filter(|s| s.target == 1).map(|s| s.backend.as_deref().unwrap_or("none")).collect();
    assert!(b_answers.iter().all(|b| *b == "echo-v1" || *b == "echo-v2"), "{b_answers:?}");

    // The error names file, line, resource and field; sync says what stands in.
    let log = sync.log();
    let located = format!("team-a.yaml:{broken_line}: HTTPRoute default/team-a: spec.rules[0]: unknown field \"backendRef\"");
    assert!(log.lines().any(|line| line.starts_with(&located)), "sync did not report {located}:\n{log}");
    assert!(log.contains("the last good version of HTTPRoute default/team-a stays in place"), "{log}");
    let (code, text) = tools::meshroute_check(&volume.dir, false);
    assert_eq!(code, Some(1), "meshroute check:\n{text}");
    assert!(text.contains(&located), "meshroute check:\n{text}");

    // Fixed, it follows like any other change.
    volume.update(&files(&team_a("echo-v2"), &team_b("echo-v2")));
    wait_until(
        "/a to go to echo-v2",
        DEADLINE,
        || (mesh.get("echo", "/a").send().backend.as_deref() == Some("echo-v2")).then_some(()),
        || format!("{}\n{}", sync.log(), mesh.envoy_log_tail()),
    );
    println!("isolation: sync said:\n{}", sync.stop());
}

/// `sync --once` publishes what validates and exits non-zero: a route that never validated is
/// left out, and the others route.
#[test]
fn sync_once_publishes_what_validates_and_fails() {
    let broken = team_b("echo-v2").replace("parentRefs:", "parentRefz:");
    let mesh = Mesh::builder("isolation_sync_once")
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .routes(&team_a("echo-v1"))
        .start();
    mesh.get("echo", "/a").expect_backend("echo-v1");
    fs::write(mesh.manifests_dir().join("team-b.yaml"), &broken).unwrap_or_else(|error| panic!("{error}"));
    // The harness wrote team A's route as routes-0.yaml.
    fs::write(mesh.manifests_dir().join("routes-0.yaml"), team_a("echo-v2")).unwrap_or_else(|error| panic!("{error}"));
    let mut command = Command::new(tools::meshroute_bin());
    command.arg("sync").arg(mesh.manifests_dir()).arg("--out").arg(mesh.out_dir()).arg("--once");
    command.arg("--wasm").arg(tools::filter_wasm()).arg("--admin-port").arg(mesh.admin_port().to_string());
    if mesh.mode() == meshroute_e2e::mesh::Mode::Native {
        command.args(["--mode", "native"]);
    }
    let output = command.output().unwrap_or_else(|error| panic!("cannot run meshroute sync: {error}"));
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("team-b.yaml:") && said.contains("parentRefz"), "{said}");
    wait_until(
        "/a to go to echo-v2",
        DEADLINE,
        || (mesh.get("echo", "/a").send().backend.as_deref() == Some("echo-v2")).then_some(()),
        || mesh.envoy_log_tail(),
    );
    mesh.get("echo", "/b").expect_status(404);
}
