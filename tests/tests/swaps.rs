//! Route tables and the filter module swapped while Envoy carries a steady load: every request
//! still answered 2xx by a backend the live table allows, Envoy never restarted.
//!
//! CI runs short versions; `MESHROUTE_SOAK=1` (`make soak`) runs each for at least 30 s.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use meshroute_e2e::live::{module_variant, process_start_time, replace_file, wait_until, SyncProcess, DEADLINE};
use meshroute_e2e::load::{Load, LoadReport, LoadSpec, Target};
use meshroute_e2e::mesh::{Mesh, Mode};
use meshroute_e2e::tools;

const ECDS_SUCCESS: &str = "extension_config_discovery.http_filter.meshroute.update_success";
const ECDS_REJECTED: &str = "extension_config_discovery.http_filter.meshroute.update_rejected";
const MODULE_FETCHES: &str = "wasm.remote_load_fetch_successes";
const VMS_CREATED: &str = "wasm.envoy.wasm.runtime.v8.created";

/// Whether this is the long run of `make soak`.
fn soak() -> bool {
    std::env::var_os("MESHROUTE_SOAK").is_some_and(|value| value != "0" && !value.is_empty())
}

/// One of the two route sets the table alternates between. `/move` goes to `echo-v1` in
/// [`RouteSet::One`] and to `echo-v2` in [`RouteSet::Two`]; `/stay` goes to `echo-v3` in both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RouteSet {
    One,
    Two,
}

impl RouteSet {
    fn other(self) -> RouteSet {
        match self {
            RouteSet::One => RouteSet::Two,
            RouteSet::Two => RouteSet::One,
        }
    }

    /// Where `/move` goes.
    fn moving_backend(self) -> &'static str {
        match self {
            RouteSet::One => "echo-v1",
            RouteSet::Two => "echo-v2",
        }
    }

    fn manifest(self) -> String {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: swapped\n  namespace: default\nspec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: echo\n    port: 80\n  rules:\n  - matches:\n    - path:\n        type: PathPrefix\n        value: /move\n    backendRefs:\n    - name: {}\n      port: 80\n  - matches:\n    - path:\n        type: PathPrefix\n        value: /stay\n    backendRefs:\n    - name: echo-v3\n      port: 80\n",
            self.moving_backend()
        )
    }
}

const STAYING_BACKEND: &str = "echo-v3";
const MOVE: usize = 0;
const STAY: usize = 1;

fn mesh(name: &str) -> Mesh {
    mesh_in(name, Mode::Filter)
}

fn mesh_in(name: &str, mode: Mode) -> Mesh {
    Mesh::builder(name)
        .mode(mode)
        .service("echo")
        .service("echo-v1")
        .service("echo-v2")
        .service("echo-v3")
        .routes(&RouteSet::One.manifest())
        .start()
}

/// A few hundred requests per second over six connections, three HTTP/1.1 and three h2c,
/// alternating between `/move` and `/stay` on the `echo` Service.
fn load_spec(mesh: &Mesh, duration: Duration) -> LoadSpec {
    let address: std::net::SocketAddr = mesh.address_of("echo").parse().unwrap_or_else(|error| panic!("echo's address: {error}"));
    let target = |path: &str| Target { address, path: path.to_owned(), host: "echo".to_owned() };
    const RATE: u32 = 300;
    LoadSpec {
        targets: vec![target("/move"), target("/stay")],
        connections: 6,
        rate: RATE,
        duration,
        max_requests: (duration.as_secs_f64() * f64::from(RATE) * 1.2) as usize + 100,
    }
}

/// Envoy's pid and start time: the same pair before and after means the same process.
fn envoy_identity(mesh: &Mesh) -> (u32, u64) {
    let pid = mesh.envoy_pid();
    let started = process_start_time(pid).unwrap_or_else(|| panic!("Envoy (pid {pid}) is not running"));
    (pid, started)
}

fn stat(mesh: &Mesh, name: &str) -> u64 {
    mesh.stats(&format!("^{}$", name.replace('.', "\\."))).get(name).copied().unwrap_or(0)
}

/// Median and worst of some durations, in ms.
fn median_and_worst(values: &mut [Duration]) -> Option<(f64, f64)> {
    values.sort();
    let median = *values.get(values.len() / 2)?;
    let worst = *values.last()?;
    Some((median.as_secs_f64() * 1000.0, worst.as_secs_f64() * 1000.0))
}

/// How long a published change may take to become visible before the request that saw the
/// older table is a failure in itself: generous, for a loaded 2-core machine.
const MAX_LAG: Duration = Duration::from_secs(2);

/// Checks every answer against the tables live around it and measures how long each change
/// took to become visible. `changes` are (written at, route set), the first being the set the
/// mesh started with.
fn check_against_timeline(report: &LoadReport, changes: &[(Duration, RouteSet)]) -> Vec<Duration> {
    // The table that answered a request sent at `sent` and done at `done` was written before
    // `done` and not replaced for longer than MAX_LAG before `sent`.
    let allowed = |sent: Duration, done: Duration| -> Vec<RouteSet> {
        let oldest = changes.iter().rposition(|(at, _)| *at + MAX_LAG <= sent).unwrap_or(0);
        changes[oldest..].iter().filter(|(at, _)| *at <= done).map(|(_, set)| *set).collect()
    };
    for sample in &report.samples {
        let backend = sample.backend.as_deref().unwrap_or("no backend");
        match sample.target {
            STAY => assert_eq!(backend, STAYING_BACKEND, "/stay never moves: {sample}"),
            _ => {
                let sets = allowed(sample.sent, sample.done);
                assert!(
                    sets.iter().any(|set| set.moving_backend() == backend),
                    "{sample}: the tables live then ({sets:?}) send /move elsewhere"
                );
            }
        }
    }
    // After the last change has had time to show, only it answers.
    if let Some((last_at, last)) = changes.last() {
        for sample in report.samples.iter().filter(|s| s.target == MOVE && s.sent > *last_at + MAX_LAG) {
            assert_eq!(sample.backend.as_deref(), Some(last.moving_backend()), "after the last change: {sample}");
        }
    }
    // Publish-to-visible: change k is visible with the first answer from its backend to a
    // request sent after it was written, while Envoy still answered with change k-1 right before
    // it (otherwise the answer may come from the table before that, which is the same set).
    let moving: Vec<_> = report.samples.iter().filter(|s| s.target == MOVE).collect();
    let mut latencies = Vec::new();
    for k in 1..changes.len() {
        let (at, set) = changes[k];
        let next = changes.get(k + 1).map_or(Duration::MAX, |(next, _)| *next);
        let before = moving.iter().rev().find(|s| s.sent < at);
        if before.and_then(|s| s.backend.as_deref()) != Some(changes[k - 1].1.moving_backend()) {
            continue;
        }
        if let Some(first) =
            moving.iter().find(|s| s.sent >= at && s.sent < next && s.backend.as_deref() == Some(set.moving_backend()))
        {
            latencies.push(first.done - at);
        }
    }
    latencies
}

/// Under `load`, after half a second, writes the other route set to `routes` every `every` for
/// `swapping`. Returns each change with when it was written (on the load's clock; the first is
/// the set in place at the start), and the times of the first and the last write.
fn swap_routes(
    load: &Load,
    routes: &Path,
    swapping: Duration,
    every: Duration,
) -> (Vec<(Duration, RouteSet)>, Duration, Duration) {
    let mut changes = vec![(Duration::ZERO, RouteSet::One)];
    thread::sleep(Duration::from_millis(500));
    let mut set = RouteSet::One;
    let first_write = load.now();
    let mut next = Instant::now();
    while load.now() < first_write + swapping {
        set = set.other();
        replace_file(routes, set.manifest().as_bytes());
        changes.push((load.now(), set));
        next += every;
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    (changes, first_write, load.now())
}

/// The route table swapped every 100 ms by `meshroute sync` watching the manifests, while the
/// load runs.
#[test]
fn table_swaps_under_load_lose_no_request() {
    let swapping = if soak() { Duration::from_secs(30) } else { Duration::from_secs(5) };
    let mesh = mesh("swaps_table");
    let routes = mesh.manifests_dir().join("routes-0.yaml");
    let before = envoy_identity(&mesh);
    let sync = SyncProcess::start(&mesh, &tools::filter_wasm());
    let rejected_before = stat(&mesh, ECDS_REJECTED);
    let applied_before = stat(&mesh, ECDS_SUCCESS);

    let load = Load::start(mesh.runtime(), &load_spec(&mesh, swapping + Duration::from_secs(4)));
    let (changes, first_write, last_write) = swap_routes(&load, &routes, swapping, Duration::from_millis(100));
    thread::sleep(MAX_LAG + Duration::from_millis(500));
    let report = load.stop(mesh.runtime());
    let sync_log = sync.stop();

    println!("table swaps: {report}");
    let swaps = changes.len() - 1;
    let publications = sync_log.lines().filter(|line| line.contains("wrote ecds.json")).count();
    let applied = stat(&mesh, ECDS_SUCCESS) - applied_before;
    println!(
        "table swaps: {swaps} changes written over {:.1} s, {publications} published by sync, {applied} applied by Envoy",
        (last_write - first_write).as_secs_f64()
    );
    report.assert_all_ok();
    let mut latencies = check_against_timeline(&report, &changes);
    let measured = latencies.len();
    match median_and_worst(&mut latencies) {
        Some((median, worst)) => println!(
            "table swaps: publish-to-visible (manifest written -> first answer from the new backend) median {median:.0} ms, worst {worst:.0} ms, over {measured} of {swaps} changes"
        ),
        None => panic!("no change became visible:\n{sync_log}"),
    }
    assert_eq!(envoy_identity(&mesh), before, "Envoy's process changed");
    assert_eq!(stat(&mesh, ECDS_REJECTED), rejected_before, "Envoy rejected a table:\n{}", mesh.envoy_log_tail());
    assert!(publications >= swaps / 2, "sync published {publications} of {swaps} changes:\n{sync_log}");
}

/// The same over ADS: `meshroute serve --wasm` watches the manifests and pushes each table to
/// Envoy (ECDS over ADS, `sync --xds` bootstrap); no file of Envoy's changes. Every 200 ms for
/// 3 s in CI.
#[test]
fn table_swaps_over_ads_lose_no_request() {
    let swapping = if soak() { Duration::from_secs(30) } else { Duration::from_secs(3) };
    let mesh = mesh_in("swaps_table_ads", Mode::Ads);
    let routes = mesh.manifests_dir().join("routes-0.yaml");
    let before = envoy_identity(&mesh);
    let rejected_before = stat(&mesh, ECDS_REJECTED);
    let applied_before = stat(&mesh, ECDS_SUCCESS);
    let fetched_before = stat(&mesh, MODULE_FETCHES);
    assert!(fetched_before >= 1, "Envoy fetched no module from serve:\n{}", mesh.envoy_log_tail());

    let load = Load::start(mesh.runtime(), &load_spec(&mesh, swapping + Duration::from_secs(4)));
    let (changes, _, _) = swap_routes(&load, &routes, swapping, Duration::from_millis(200));
    thread::sleep(MAX_LAG + Duration::from_millis(500));
    let report = load.stop(mesh.runtime());
    let serve_log = mesh.xds().log();

    println!("table swaps over ADS: {report}");
    let swaps = changes.len() - 1;
    let versions = serve_log.lines().filter(|line| line.starts_with("meshroute serve: version ")).count() - 1;
    let applied = stat(&mesh, ECDS_SUCCESS) - applied_before;
    println!("table swaps over ADS: {swaps} changes written, {versions} versions served, {applied} applied by Envoy");
    report.assert_all_ok();
    let mut latencies = check_against_timeline(&report, &changes);
    let measured = latencies.len();
    match median_and_worst(&mut latencies) {
        Some((median, worst)) => println!(
            "table swaps over ADS: publish-to-visible median {median:.0} ms, worst {worst:.0} ms, over {measured} of {swaps} changes"
        ),
        None => panic!("no change became visible:\n{serve_log}"),
    }
    assert_eq!(envoy_identity(&mesh), before, "Envoy's process changed");
    assert_eq!(stat(&mesh, ECDS_REJECTED), rejected_before, "Envoy rejected a table:\n{}", mesh.envoy_log_tail());
    assert!(applied >= 1 && versions >= swaps / 2, "serve served {versions} of {swaps} changes:\n{serve_log}");
}

/// The names and modification times of every file in `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, SystemTime> {
    fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .flatten()
        .filter_map(|entry| Some((entry.file_name().into_string().ok()?, entry.metadata().ok()?.modified().ok()?)))
        .collect()
}

fn modules_in(dir: &Path) -> Vec<String> {
    snapshot(dir).into_keys().filter(|name| name.starts_with("meshroute_filter-") && name.ends_with(".wasm")).collect()
}

/// The module file Envoy's live ECDS configuration names, from its config dump.
fn live_module(mesh: &Mesh) -> String {
    let dump = mesh.admin("/config_dump?resource=ecds_filters");
    let start = dump.find("meshroute_filter-").unwrap_or_else(|| panic!("no module in the ECDS config dump:\n{dump}"));
    let end = dump[start..].find(".wasm").map_or(dump.len(), |end| start + end + ".wasm".len());
    dump[start..end].to_owned()
}

/// A user's upgrade: `sync` restarted with `--wasm` naming another build, under load. Envoy
/// starts a VM for the new module and keeps serving; no request fails.
#[test]
fn module_swaps_under_load_lose_no_request() {
    let upgrades = if soak() { 20 } else { 2 };
    let mesh = mesh("swaps_module");
    let out = mesh.out_dir();
    let original = tools::filter_wasm();
    let builds: Vec<PathBuf> = (0..2)
        .map(|variant| {
            let path = mesh.work_dir().join(format!("build-{variant}/meshroute_filter.wasm"));
            let bytes = fs::read(&original).unwrap_or_else(|error| panic!("{}: {error}", original.display()));
            fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).unwrap_or_else(|error| panic!("{error}"));
            let bytes = if variant == 0 { bytes } else { module_variant(&bytes, "meshroute.test-build", b"variant 1") };
            fs::write(&path, bytes).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            path
        })
        .collect();
    let before = envoy_identity(&mesh);

    // Restarting sync with what is already published rewrites nothing.
    let files = snapshot(&out);
    let sync = SyncProcess::start(&mesh, &builds[0]);
    assert_eq!(sync.publications().last().map(|line| line.ends_with("unchanged")), Some(true), "{}", sync.log());
    assert_eq!(snapshot(&out), files, "a restart of sync with nothing changed rewrote files");
    let mut current_module = live_module(&mesh);
    let mut sync = Some(sync);

    let per_upgrade = Duration::from_millis(1500);
    let load = Load::start(mesh.runtime(), &load_spec(&mesh, per_upgrade * (upgrades + 1) + Duration::from_secs(30)));
    let vms_before = stat(&mesh, VMS_CREATED);
    let mut upgrade_times = Vec::new();
    thread::sleep(per_upgrade);
    for upgrade in 1..=upgrades {
        let applied = stat(&mesh, ECDS_SUCCESS);
        let build = &builds[upgrade as usize % 2];
        drop(sync.take());
        let started = Instant::now();
        let restarted = SyncProcess::start(&mesh, build);
        let line = restarted.publications().last().cloned().unwrap_or_default();
        assert!(line.contains("ecds.json"), "sync published no new ECDS for the new build: {}", restarted.log());
        wait_until(
            "Envoy to apply the new module",
            DEADLINE,
            || (stat(&mesh, ECDS_SUCCESS) > applied).then_some(()),
            || mesh.envoy_log_tail(),
        );
        upgrade_times.push(started.elapsed());
        let live = live_module(&mesh);
        assert_ne!(live, current_module, "Envoy still runs the old module");
        // The module Envoy ran until now stays on disk until a later publication.
        let on_disk = modules_in(&out);
        assert!(on_disk.contains(&live) && on_disk.contains(&current_module), "{on_disk:?}");
        assert!(on_disk.len() <= 2, "older modules are cleaned up: {on_disk:?}");
        current_module = live;
        sync = Some(restarted);
        thread::sleep(per_upgrade);
    }
    let report = load.stop(mesh.runtime());
    let vms = stat(&mesh, VMS_CREATED) - vms_before;
    println!("module swaps: {report}");
    let mut times = upgrade_times.clone();
    let (median, worst) = median_and_worst(&mut times).unwrap_or_default();
    println!(
        "module swaps: {upgrades} upgrades (sync restarted with another build), {vms} VMs created; sync start to new module applied: median {median:.0} ms, worst {worst:.0} ms"
    );
    report.assert_all_ok();
    for sample in &report.samples {
        let expected = if sample.target == STAY { STAYING_BACKEND } else { RouteSet::One.moving_backend() };
        assert_eq!(sample.backend.as_deref(), Some(expected), "{sample}");
    }
    assert!(vms >= u64::from(upgrades), "each new module runs in a new VM: {vms} created for {upgrades} upgrades");
    assert_eq!(envoy_identity(&mesh), before, "Envoy's process changed");
}
