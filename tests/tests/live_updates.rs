//! What reaches a running Envoy and what does not: a ConfigMap update picked up, an invalid or
//! half-written one never published, a route table or module Envoy refuses leaving the last
//! good one serving.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use meshroute_e2e::live::{module_variant, replace_file, wait_until, with_table, ConfigMapVolume, SyncProcess, DEADLINE};
use meshroute_e2e::load::{Load, LoadSpec, Target};
use meshroute_e2e::mesh::Mesh;
use meshroute_e2e::tools;

const ECDS: &str = "extension_config_discovery.http_filter.meshroute";

fn route(moving_backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: live\n  namespace: default\nspec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: echo\n    port: 80\n  rules:\n  - matches:\n    - path:\n        type: PathPrefix\n        value: /move\n    backendRefs:\n    - name: {moving_backend}\n      port: 80\n      weight: 1\n"
    )
}

fn mesh(name: &str) -> Mesh {
    Mesh::builder(name).service("echo").service("echo-v1").service("echo-v2").routes(&route("echo-v1")).start()
}

fn ecds_stats(mesh: &Mesh) -> BTreeMap<String, u64> {
    mesh.stats(&format!("^{}\\.", ECDS.replace('.', "\\.")))
}

fn ecds_stat(mesh: &Mesh, name: &str) -> u64 {
    ecds_stats(mesh).get(&format!("{ECDS}.{name}")).copied().unwrap_or(0)
}

/// Every file of `dir` with its contents.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .flatten()
        .filter_map(|entry| Some((entry.file_name().into_string().ok()?, fs::read(entry.path()).ok()?)))
        .collect()
}

/// Waits until `/move` is answered by `backend`.
#[track_caller]
fn wait_for_route(mesh: &Mesh, backend: &str) {
    wait_until(
        &format!("/move to go to {backend}"),
        DEADLINE,
        || (mesh.get("echo", "/move").send().backend.as_deref() == Some(backend)).then_some(()),
        || mesh.envoy_log_tail(),
    );
}

/// A short steady load on `/move`, for checking that nothing fails while Envoy is refusing.
fn light_load(mesh: &Mesh, duration: Duration) -> Load {
    let address = mesh.address_of("echo").parse().unwrap_or_else(|error| panic!("echo's address: {error}"));
    let spec = LoadSpec {
        targets: vec![Target { address, path: "/move".to_owned(), host: "echo".to_owned() }],
        connections: 2,
        rate: 100,
        duration,
        max_requests: 100 * duration.as_secs() as usize + 100,
    };
    Load::start(mesh.runtime(), &spec)
}

fn envoy_log(mesh: &Mesh) -> String {
    fs::read_to_string(mesh.work_dir().join("envoy.log")).unwrap_or_default()
}

/// How many times a VM of the filter has taken a route table, by its own log.
fn tables_loaded(mesh: &Mesh) -> usize {
    envoy_log(mesh).matches("route table loaded").count()
}

/// The manifests of a ConfigMap updated as kubelet does it: picked up when valid; when invalid
/// or cut short, reported (file, line, field) by sync and by `meshroute check`, and never
/// published: the files Envoy reads stay byte for byte, and routing stays.
#[test]
fn configmap_updates_are_picked_up_and_invalid_ones_never_published() {
    let mesh = mesh("live_configmap");
    let services = fs::read(mesh.manifests_dir().join("services.yaml")).unwrap_or_else(|error| panic!("{error}"));
    let files = |routes: &str| {
        vec![("services.yaml".to_owned(), services.clone()), ("routes.yaml".to_owned(), routes.as_bytes().to_vec())]
    };
    let mut volume = ConfigMapVolume::mount(&mesh.work_dir().join("configmap"), &files(&route("echo-v1")));
    let out = mesh.out_dir();
    let published = contents(&out);

    // The same manifests through a mounted ConfigMap: nothing to rewrite.
    let sync = SyncProcess::start_on(&mesh, &volume.dir, &tools::filter_wasm());
    assert!(sync.publications().last().is_some_and(|line| line.ends_with("unchanged")), "{}", sync.log());
    assert_eq!(contents(&out), published);

    volume.update(&files(&route("echo-v2")));
    sync.wait_for("wrote ecds.json", 1);
    wait_for_route(&mesh, "echo-v2");
    let good = contents(&out);

    // Invalid: a negative weight.
    let invalid = route("echo-v1").replace("weight: 1", "weight: -1");
    let weight_line = invalid.lines().position(|line| line.contains("weight: -1")).map(|i| i + 1).unwrap_or_default();
    volume.update(&files(&invalid));
    sync.wait_for("the last good version of HTTPRoute default/live stays in place", 1);
    let log = sync.log();
    let located = format!("routes.yaml:{weight_line}:");
    let reported =
        log.lines().find(|line| line.contains(&located)).unwrap_or_else(|| panic!("sync did not report {located}:\n{log}"));
    assert!(reported.contains("spec.rules[0].backendRefs[0].weight"), "the field: {reported}");
    let (code, text) = tools::meshroute_check(&volume.dir, false);
    assert_eq!(code, Some(1), "meshroute check:\n{text}");
    assert!(text.contains(&located) && text.contains("spec.rules[0].backendRefs[0].weight"), "meshroute check:\n{text}");
    assert_eq!(contents(&out), good, "an invalid update changed Envoy's files");
    mesh.get("echo", "/move").expect_backend("echo-v2");

    // Half-written: the file ends inside a quoted string.
    let whole = route("echo-v1").replace("name: echo-v1", "name: \"echo-v1\"");
    let cut = &whole[..whole.find("\"echo-v1").map_or(whole.len(), |at| at + 5)];
    volume.update(&files(cut));
    sync.wait_for("the last good version of HTTPRoute default/live stays in place", 2);
    let log = sync.log();
    let reported: Vec<&str> = log.lines().filter(|line| line.starts_with("routes.yaml:")).collect();
    assert!(reported.len() >= 2, "sync reported the cut file with its line:\n{log}");
    let (code, text) = tools::meshroute_check(&volume.dir, false);
    assert!(code == Some(1) && text.contains("routes.yaml:"), "meshroute check:\n{text}");
    assert_eq!(contents(&out), good, "a half-written update changed Envoy's files");
    mesh.get("echo", "/move").expect_backend("echo-v2");

    // And a good update after them is published.
    volume.update(&files(&whole));
    sync.wait_for("wrote ecds.json", 2);
    wait_for_route(&mesh, "echo-v1");
    println!("configmap: sync said:\n{}", sync.stop());
}

/// `ecds.json` replaced by hand (atomically) with a route table the filter refuses and with a
/// file Envoy cannot parse: Envoy rejects both, says so in its log and stats, and keeps routing
/// with the last good table; no request fails meanwhile.
#[test]
fn envoy_refuses_a_bad_table_and_keeps_the_last_good_one() {
    let mesh = mesh("live_bad_table");
    let ecds_path = mesh.out_dir().join("ecds.json");
    let good = fs::read_to_string(&ecds_path).unwrap_or_else(|error| panic!("{error}"));
    let load = light_load(&mesh, Duration::from_secs(60));
    let before = ecds_stats(&mesh);
    println!("ECDS stats before: {before:?}");

    // A table the filter refuses: valid Envoy configuration, a route table of an unknown
    // version. (The filter's `on_configure` returns false.)
    let refused = with_table(&good, r#"{"version":99}"#);
    replace_file(&ecds_path, refused.as_bytes());
    wait_until(
        "Envoy to reject the table",
        DEADLINE,
        || {
            (ecds_stat(&mesh, "update_rejected") > before.get(&format!("{ECDS}.update_rejected")).copied().unwrap_or(0))
                .then_some(())
        },
        || mesh.envoy_log_tail(),
    );
    assert!(mesh.envoy_log_tail().contains("route table refused"), "{}", mesh.envoy_log_tail());
    thread::sleep(Duration::from_millis(500));
    mesh.get("echo", "/move").expect_backend("echo-v1");

    // A file that is not even YAML: Envoy fails to read it (update_failure, not
    // update_rejected, which counts configurations read and then refused).
    let failed = ecds_stat(&mesh, "update_failure");
    replace_file(&ecds_path, b"\x00\x01resources: [\xff\xfe garbage");
    wait_until(
        "Envoy to fail on the garbage",
        DEADLINE,
        || (ecds_stat(&mesh, "update_failure") > failed).then_some(()),
        || mesh.envoy_log_tail(),
    );
    assert!(mesh.envoy_log_tail().contains("Filesystem config update failure"), "{}", mesh.envoy_log_tail());
    thread::sleep(Duration::from_millis(500));
    mesh.get("echo", "/move").expect_backend("echo-v1");

    // The last good table is still the live one, and a good update after them is applied.
    let applied = ecds_stat(&mesh, "update_success");
    replace_file(&ecds_path, good.replace("echo-v1.default", "echo-v2.default").as_bytes());
    wait_until(
        "Envoy to apply the next good table",
        DEADLINE,
        || (ecds_stat(&mesh, "update_success") > applied).then_some(()),
        || mesh.envoy_log_tail(),
    );
    wait_for_route(&mesh, "echo-v2");
    thread::sleep(Duration::from_millis(300));
    let report = load.stop(mesh.runtime());
    let after = ecds_stats(&mesh);
    println!("bad table: {report}");
    println!("ECDS stats after: {after:?}");
    let counted = |name: &str| after.get(&format!("{ECDS}.{name}")).copied().unwrap_or(0);
    assert_eq!((counted("update_rejected"), counted("update_failure")), (1, 1), "one refused table, one unreadable file");
    report.assert_all_ok();
    for sample in &report.samples {
        assert!(matches!(sample.backend.as_deref(), Some("echo-v1" | "echo-v2")), "{sample}");
    }
}

/// A new build Envoy cannot load (sync restarted with `--wasm` naming a broken file): Envoy
/// rejects its ECDS, keeps the VM it has, and the module its live configuration names is still
/// on disk.
#[test]
fn a_module_envoy_cannot_load_is_refused_and_the_previous_one_kept() {
    let mesh = mesh("live_bad_module");
    let out = mesh.out_dir();
    let good_module = tools::filter_wasm();
    let broken = mesh.work_dir().join("broken/meshroute_filter.wasm");
    fs::create_dir_all(broken.parent().unwrap_or(Path::new("."))).unwrap_or_else(|error| panic!("{error}"));
    let bytes = fs::read(&good_module).unwrap_or_else(|error| panic!("{error}"));
    // A truncated build: the header is right, the code is cut off.
    fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap_or_else(|error| panic!("{error}"));
    let modules_before: Vec<String> = contents(&out).into_keys().filter(|name| name.ends_with(".wasm")).collect();
    let load = light_load(&mesh, Duration::from_secs(60));
    let rejected = ecds_stat(&mesh, "update_rejected");
    let loaded_before = tables_loaded(&mesh);

    let sync = SyncProcess::start(&mesh, &broken);
    wait_until(
        "Envoy to reject the broken module",
        DEADLINE,
        || (ecds_stat(&mesh, "update_rejected") > rejected).then_some(()),
        || mesh.envoy_log_tail(),
    );
    thread::sleep(Duration::from_millis(500));
    mesh.get("echo", "/move").expect_backend("echo-v1");
    // (Envoy's ECDS config dump shows the rejected configuration as the last one received, and
    // update_success counts rereads of the unchanged file, which every rename into the watched
    // directory causes; what runs is told by the routing and by the filter's own log.)
    assert!(envoy_log(&mesh).contains("Failed to parse corrupted Wasm module"), "{}", mesh.envoy_log_tail());
    assert_eq!(tables_loaded(&mesh), loaded_before, "no new VM took a table");
    let modules: Vec<String> = contents(&out).into_keys().filter(|name| name.ends_with(".wasm")).collect();
    assert!(modules.contains(&modules_before[0]), "the module Envoy runs was removed: {modules:?}");
    drop(sync);

    // The fixed build, published by a restarted sync, is taken.
    let fixed = module_variant(&bytes, "meshroute.test-build", b"fixed");
    fs::write(&broken, fixed).unwrap_or_else(|error| panic!("{error}"));
    let sync = SyncProcess::start(&mesh, &broken);
    wait_until(
        "the fixed module to load a table",
        DEADLINE,
        || (tables_loaded(&mesh) > loaded_before).then_some(()),
        || mesh.envoy_log_tail(),
    );
    thread::sleep(Duration::from_millis(500));
    mesh.get("echo", "/move").expect_backend("echo-v1");
    let report = load.stop(mesh.runtime());
    println!("bad module: {report}");
    println!("bad module: sync said:\n{}", sync.stop());
    report.assert_all_ok();
}
