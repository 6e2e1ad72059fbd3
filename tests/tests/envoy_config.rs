//! Envoy accepts the configuration meshroute ships: the local bootstrap `meshroute sync` renders
//! (with the listeners, clusters and filter it writes beside it), its ADS variant (`sync --xds`,
//! with what `meshroute serve` serves), the pod sidecar bootstraps (files and ADS) and the
//! Istio EnvoyFilter's patches, each checked by stock Envoy.
//!
//! `envoy --mode validate` checks a bootstrap and its static resources, and runs the wasm
//! filter's `on_configure` for a static filter, but it does not read files named by
//! `path_config_source` (LDS, CDS, ECDS). So the files `sync` writes are also loaded by a
//! running Envoy, whose admin counters must show every update accepted.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use meshroute_e2e::proxyless::XdsServer;
use meshroute_e2e::tools;
use serde_json::{json, Value};

const SELECTION_HEADER: &str = "x-meshroute-cluster";
const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// Bound on waiting for Envoy or `meshroute sync`; reaching it is a failure.
const DEADLINE: Duration = Duration::from_secs(30);

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let path = std::env::temp_dir().join(format!("meshroute-envoy-config-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn existing(path: PathBuf, build: &str) -> PathBuf {
    assert!(path.is_file(), "{} is missing: run `{build}`", path.display());
    path
}

fn envoy() -> PathBuf {
    existing(tools::envoy_bin(), "make setup (or set ENVOY_BIN)")
}

fn meshroute() -> PathBuf {
    existing(tools::meshroute_bin(), "cargo build --release -p meshroute")
}

fn module() -> PathBuf {
    existing(tools::filter_wasm(), "cargo build -p meshroute-filter --target wasm32-wasip1 --release")
}

fn envoy_config(name: &str) -> String {
    let path = tools::workspace_root().join("envoy-config").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The product page's echo-route (one-rule 9:1 form) on ClusterIPs of 127.77.0.0/24, with
/// EndpointSlices for the backends and none for the frontend (so it resolves by DNS).
fn write_manifests(dir: &Path) {
    let service = |name: &str, ip: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  clusterIP: {ip}\n  ports:\n  - name: http\n    port: 18080\n    targetPort: 8080\n"
        )
    };
    let slice = |name: &str, port: u16| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-1\n  namespace: default\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n- name: http\n  port: {port}\nendpoints:\n- addresses: [127.0.0.1]\n"
        )
    };
    write(
        &dir.join("services.yaml"),
        &[service("echo-service", "127.77.0.1"), service("echo-v1", "127.77.0.2"), service("echo-v2", "127.77.0.3")]
            .join("---\n"),
    );
    write(&dir.join("endpoints.yaml"), &[slice("echo-v1", 18081), slice("echo-v2", 18082)].join("---\n"));
    write(
        &dir.join("routes/echo-route.yaml"),
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: echo-route\n  namespace: default\nspec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: echo-service\n    port: 18080\n  rules:\n  - backendRefs:\n    - name: echo-v1\n      port: 18080\n      weight: 9\n    - name: echo-v2\n      port: 18080\n      weight: 1\n",
    );
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The test manifests written to `manifests` and published once to `out`, which must succeed.
#[track_caller]
fn publish_test_manifests(manifests: &Path, out: &Path) {
    write_manifests(manifests);
    let output = sync_once(manifests, out);
    assert!(output.status.success(), "meshroute sync --once failed:\n{}", describe(&output));
}

fn sync_once(manifests: &Path, out: &Path) -> Output {
    run(Command::new(meshroute())
        .arg("sync")
        .arg(manifests)
        .arg("--out")
        .arg(out)
        .arg("--once")
        .arg("--wasm")
        .arg(module())
        .args(["--admin-port", "0"]))
}

/// `envoy --mode validate -c config` must say OK.
fn validate(config: &Path) {
    let output = run(Command::new(envoy()).args(["--mode", "validate", "-c"]).arg(config).args(["-l", "warning"]));
    let text = describe(&output);
    assert!(output.status.success() && text.contains("OK"), "Envoy rejected {}:\n{text}", config.display());
}

/// Envoy running `config`, its admin address learnt from `--admin-address-path`.
struct Envoy {
    _process: Running,
    admin: String,
    log: PathBuf,
}

impl Envoy {
    fn start(config: &Path, work: &TempDir) -> Envoy {
        let admin_file = work.join("admin-address");
        let log = work.join("envoy.log");
        let process = Command::new(envoy())
            .arg("-c")
            .arg(config)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "info"])
            .arg("--admin-address-path")
            .arg(&admin_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // stderr, not --log-path: that file is flushed only now and then.
            .stderr(fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display())))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Envoy: {e}"));
        let process = Running(process);
        let start = Instant::now();
        let admin = loop {
            if let Ok(address) = fs::read_to_string(&admin_file) {
                if !address.trim().is_empty() {
                    break address.trim().to_owned();
                }
            }
            assert!(
                start.elapsed() < DEADLINE,
                "Envoy never opened its admin port:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        };
        Envoy { _process: process, admin, log }
    }

    fn get(&self, path: &str) -> String {
        let Ok(mut stream) = TcpStream::connect(&self.admin) else { return String::new() };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default()
    }

    /// The admin counter `name`, or None before Envoy reports it.
    fn stat(&self, name: &str) -> Option<u64> {
        let body = self.get("/stats");
        body.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(": ")?.trim().parse().ok())
    }

    /// Waits until every `(counter, at least)` holds.
    fn wait_for(&self, wanted: &[(&str, u64)]) {
        let start = Instant::now();
        loop {
            let missing: Vec<String> = wanted
                .iter()
                .filter_map(|(name, least)| match self.stat(name) {
                    Some(value) if value >= *least => None,
                    value => Some(format!("{name} = {value:?}, want >= {least}")),
                })
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "Envoy never got there: {missing:?}\n{}", self.log_text());
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

const ECDS_SUCCESS: &str = "extension_config_discovery.http_filter.meshroute.update_success";
const ECDS_REJECTED: &str = "extension_config_discovery.http_filter.meshroute.update_rejected";

#[test]
fn local_bootstrap_from_sync_validates_and_its_files_load() {
    let work = TempDir::new("local");
    let (manifests, out) = (work.join("manifests"), work.join("out"));
    publish_test_manifests(&manifests, &out);

    let bootstrap = out.join("envoy.yaml");
    validate(&bootstrap);

    // The module is published under its content hash, and only once.
    let modules: Vec<String> = fs::read_dir(&out)
        .map(|entries| entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let modules: Vec<&String> = modules.iter().filter(|name| name.ends_with(".wasm")).collect();
    assert_eq!(modules.len(), 1, "{modules:?}");
    assert!(modules[0].starts_with("meshroute_filter-"), "{modules:?}");
    assert_eq!(fs::read(out.join(modules[0])).ok(), fs::read(module()).ok());
    for name in ["envoy.yaml", "lds.json", "cds.json", "ecds.json"] {
        let mode = fs::metadata(out.join(name)).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
        assert_eq!(mode.ok(), Some(0o644), "{name}");
    }
    assert!(read(&out.join("ecds.json")).contains("FAIL_RELOAD"));

    // What validate mode skips: the listeners, clusters and the filter, loaded for real.
    let envoy = Envoy::start(&bootstrap, &work);
    envoy.wait_for(&[
        ("cluster_manager.cds.update_success", 1),
        ("listener_manager.lds.update_success", 1),
        (ECDS_SUCCESS, 1),
        // One listener for the three Services' addresses.
        ("listener_manager.total_listeners_active", 1),
    ]);
    for counter in ["cluster_manager.cds.update_rejected", "listener_manager.lds.update_rejected", ECDS_REJECTED] {
        assert_eq!(envoy.stat(counter), Some(0), "{counter}\n{}", envoy.log_text());
    }
    let clusters = envoy.get("/clusters");
    for name in ["echo-service", "echo-v1", "echo-v2"] {
        assert!(clusters.contains(&format!("outbound|18080||{name}.default.svc.cluster.local")), "{clusters}");
    }
    assert!(clusters.contains("127.0.0.1:18081"), "echo-v1's endpoint from its EndpointSlice:\n{clusters}");
    let listeners = envoy.get("/listeners");
    for address in ["127.77.0.1:18080", "127.77.0.2:18080", "127.77.0.3:18080"] {
        assert!(listeners.contains(address), "{listeners}");
    }
    assert!(envoy.log_text().contains("route table loaded"), "{}", envoy.log_text());

    // A table the filter refuses is rejected by Envoy, which keeps the last good one.
    let ecds = read(&out.join("ecds.json"));
    let broken = meshroute_e2e::live::with_table(&ecds, r#"{"version":99}"#);
    write(&out.join(".ecds.json.broken"), &broken);
    fs::rename(out.join(".ecds.json.broken"), out.join("ecds.json")).unwrap_or_else(|e| panic!("rename: {e}"));
    envoy.wait_for(&[(ECDS_REJECTED, 1)]);
    assert_eq!(envoy.stat(ECDS_SUCCESS), Some(1), "{}", envoy.log_text());
    assert!(envoy.log_text().contains("route table refused"), "{}", envoy.log_text());
}

#[test]
fn sync_without_changes_writes_nothing() {
    let work = TempDir::new("idempotent");
    let (manifests, out) = (work.join("manifests"), work.join("out"));
    write_manifests(&manifests);
    let first = sync_once(&manifests, &out);
    assert!(first.status.success(), "{}", describe(&first));
    let before = fs::metadata(out.join("lds.json")).and_then(|m| m.modified()).ok();
    let second = sync_once(&manifests, &out);
    assert!(second.status.success(), "{}", describe(&second));
    assert!(String::from_utf8_lossy(&second.stdout).contains("unchanged"), "{}", describe(&second));
    assert_eq!(fs::metadata(out.join("lds.json")).and_then(|m| m.modified()).ok(), before);
}

/// What does not validate is left out, everything else is published, and the exit code says
/// that something was left out.
#[test]
fn sync_once_on_invalid_input_publishes_the_rest_and_exits_1() {
    let work = TempDir::new("invalid");
    let (manifests, out) = (work.join("manifests"), work.join("out"));
    write_manifests(&manifests);
    let route = manifests.join("routes/echo-route.yaml");
    write(&route, &read(&route).replace("weight: 9", "weight: 2000000"));
    let output = sync_once(&manifests, &out);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("weight"), "{}", describe(&output));
    let ecds = read(&out.join("ecds.json"));
    assert!(!ecds.contains("echo-route"), "the invalid route is left out:\n{ecds}");
    assert!(read(&out.join("cds.json")).contains("echo-v1"), "the Services are published");
}

#[test]
fn sync_watches_the_manifests_and_envoy_follows() {
    let work = TempDir::new("watch");
    let (manifests, out) = (work.join("manifests"), work.join("out"));
    write_manifests(&manifests);
    let sync_log = work.join("sync.log");
    let log_file = |path: &Path| fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let _sync = Running(
        Command::new(meshroute())
            .arg("sync")
            .arg(&manifests)
            .arg("--out")
            .arg(&out)
            .arg("--wasm")
            .arg(module())
            .args(["--admin-port", "0"])
            .stdout(log_file(&sync_log))
            .stderr(log_file(&work.join("sync.err")))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start meshroute sync: {e}")),
    );
    let start = Instant::now();
    while !out.join("envoy.yaml").exists() {
        assert!(start.elapsed() < DEADLINE, "sync never published:\n{}", read(&work.join("sync.err")));
        thread::sleep(Duration::from_millis(50));
    }
    let envoy = Envoy::start(&out.join("envoy.yaml"), &work);
    envoy.wait_for(&[("listener_manager.lds.update_success", 1), ("listener_manager.total_listeners_active", 1)]);

    // A new Service: a new cluster and a new address of the one listener, without restarting
    // anything.
    write(
        &manifests.join("more.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo-v3\n  namespace: default\nspec:\n  clusterIP: 127.77.0.4\n  ports:\n  - port: 18080\n",
    );
    envoy.wait_for(&[("listener_manager.listener_modified", 1), ("cluster_manager.active_clusters", 4)]);
    assert!(envoy.get("/listeners").contains("127.77.0.4:18080"));
    assert_eq!(envoy.stat("listener_manager.total_listeners_active"), Some(1));

    // Invalid input: logged, and the last good configuration stays.
    let lds = read(&out.join("lds.json"));
    write(
        &manifests.join("more.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo-v3\nspec:\n  ports:\n  - port: 99999\n",
    );
    let start = Instant::now();
    while !read(&work.join("sync.err")).contains("last good") {
        assert!(start.elapsed() < DEADLINE, "sync never reported the invalid input:\n{}", read(&work.join("sync.err")));
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(read(&out.join("lds.json")), lds);
    assert_eq!(envoy.stat("listener_manager.total_listeners_active"), Some(1));
    assert!(read(&sync_log).lines().count() >= 2, "one line per publication:\n{}", read(&sync_log));
}

/// The sidecar bootstrap with its volume (`/etc/meshroute`) holding what `sync` writes.
fn sidecar_bootstrap(work: &TempDir) -> (String, PathBuf) {
    let (manifests, volume) = (work.join("manifests"), work.join("volume"));
    publish_test_manifests(&manifests, &volume);
    let template = envoy_config("sidecar-bootstrap.yaml");
    assert!(template.contains("/etc/meshroute/ecds.json") && template.contains("/etc/meshroute/cds.json"));
    let volume_text = volume.to_str().unwrap_or_else(|| panic!("non-UTF-8 temp dir"));
    (template.replace("/etc/meshroute", volume_text), volume)
}

#[test]
fn sidecar_bootstrap_validates_and_loads_what_sync_writes() {
    let work = TempDir::new("sidecar");
    let (text, volume) = sidecar_bootstrap(&work);
    for needle in ["envoy.filters.listener.original_dst", "ORIGINAL_DST", "route_config_name: meshroute", "address: 127.0.0.1"] {
        assert!(text.contains(needle), "sidecar bootstrap lacks {needle}");
    }
    assert_names_the_destination(&text);
    // Its routes are sync's: the filter's choice, else the original destination.
    let routes = read(&volume.join("sidecar-rds.json"));
    for needle in [r#""cluster_header":"x-meshroute-cluster""#, r#""cluster":"passthrough""#, "x-meshroute-destination"] {
        assert!(routes.contains(needle), "sidecar-rds.json lacks {needle}:\n{routes}");
    }
    let config = work.join("sidecar.yaml");
    write(&config, &text);
    validate(&config);

    // Loaded for real (admin and outbound ports moved so the test runs anywhere).
    assert!(text.contains("port_value: 15000") && text.contains("port_value: 15001"));
    let running = text.replace("port_value: 15000", "port_value: 0").replace("port_value: 15001", "port_value: 0");
    let config = work.join("sidecar-run.yaml");
    write(&config, &running);
    let envoy = Envoy::start(&config, &work);
    envoy.wait_for(&[
        ("cluster_manager.cds.update_success", 1),
        (ECDS_SUCCESS, 1),
        ("http.outbound_http.rds.meshroute.update_success", 1),
        ("listener_manager.total_listeners_active", 1),
    ]);
    assert_eq!(envoy.stat(ECDS_REJECTED), Some(0), "{}", envoy.log_text());
    assert!(envoy.get("/clusters").contains("outbound|18080||echo-v1.default.svc.cluster.local"));
}

/// The table `sync` and `serve` publish reads each request's destination from a header
/// (`destination_header`): a sidecar's listener must write it, over any copy the application sent.
fn assert_names_the_destination(bootstrap: &str) {
    let mutation = "header: {key: x-meshroute-destination, value: \"%DOWNSTREAM_LOCAL_ADDRESS%\"}\n                        append_action: OVERWRITE_IF_EXISTS_OR_ADD";
    assert!(bootstrap.contains("early_header_mutation_extensions:") && bootstrap.contains(mutation), "no destination header");
}

/// The `value: {...}` of each patch of the EnvoyFilter, by `applyTo`. The values are JSON
/// (valid YAML) precisely so that this needs no YAML parser.
fn envoy_filter_patches(text: &str) -> Vec<(String, Value)> {
    let mut patches = Vec::new();
    let mut apply_to = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if let Some(kind) = trimmed.strip_prefix("applyTo:") {
            apply_to = Some(kind.trim().to_owned());
        }
        if trimmed.starts_with("value: {") && !line.trim_start().starts_with('#') {
            let start = offset + line.find('{').unwrap_or(0);
            let end = start + json_object_len(&text[start..]);
            let value: Value = serde_json::from_str(&text[start..end])
                .unwrap_or_else(|e| panic!("patch value of {apply_to:?} is not JSON: {e}"));
            patches.push((apply_to.clone().unwrap_or_default(), value));
        }
        offset += line.len();
    }
    patches
}

/// Length of the JSON object at the start of `text`.
fn json_object_len(text: &str) -> usize {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in text.char_indices() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (true, false, _) => {}
            (false, _, '"') => in_string = true,
            (false, _, '{') => depth += 1,
            (false, _, '}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    panic!("unterminated JSON object")
}

fn patch<'a>(patches: &'a [(String, Value)], apply_to: &str) -> &'a Value {
    let found: Vec<&Value> = patches.iter().filter(|(kind, _)| kind == apply_to).map(|(_, value)| value).collect();
    assert_eq!(found.len(), 1, "one {apply_to} patch");
    found[0]
}

fn static_cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": { "cluster_name": name, "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
            "socket_address": { "address": "127.0.0.1", "port_value": port } } } }] }] },
    })
}

fn listener(name: &str, http_filters: Vec<Value>, routes: Vec<Value>) -> Value {
    json!({
        "name": name,
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "http_filters": http_filters,
                "route_config": { "virtual_hosts": [{ "name": "outbound", "domains": ["*"], "routes": routes }] },
            },
        }] }],
    })
}

#[test]
fn istio_envoyfilter_patches_validate_in_an_istio_shaped_bootstrap() {
    let text = envoy_config("istio-envoyfilter.yaml");
    assert!(text.contains("apiVersion: networking.istio.io/v1alpha3") && text.contains("kind: EnvoyFilter"));
    assert!(text.contains("context: SIDECAR_OUTBOUND"));
    let patches = envoy_filter_patches(&text);
    assert_eq!(patches.len(), 5, "{patches:?}");
    let extension = |name: &str| {
        patches
            .iter()
            .find(|(kind, value)| kind == "EXTENSION_CONFIG" && value["name"] == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("no EXTENSION_CONFIG {name}"))
    };
    let (table_config, shared_config) = (extension("meshroute-table"), extension("meshroute"));
    let holder = patch(&patches, "LISTENER");
    let filter = patch(&patches, "HTTP_FILTER");
    let route = patch(&patches, "HTTP_ROUTE");

    // The pieces agree with each other and with the filter: the outbound listeners' filter is
    // the shared one; the holder, which binds no port, brings the table to the same VM.
    assert_eq!(shared_config["name"], filter["name"], "the ECDS resource is found by the filter's name");
    assert_eq!(holder["bind_to_port"], false);
    let holder_filters = &holder["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
    assert_eq!(holder_filters[0]["name"], table_config["name"], "the holder's filter is the table's ECDS resource");
    for extension in [&table_config, &shared_config] {
        assert_eq!(extension["typed_config"]["@type"], WASM_TYPE_URL);
        let config = &extension["typed_config"]["config"];
        assert_eq!(config["failure_policy"], "FAIL_RELOAD");
        assert_eq!(config["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
    }
    let (table_wasm, shared_wasm) = (&table_config["typed_config"]["config"], &shared_config["typed_config"]["config"]);
    assert_eq!(table_wasm["vm_config"], shared_wasm["vm_config"], "one VM holds the table for both");
    assert_eq!(table_wasm["root_id"], shared_wasm["root_id"]);
    assert_eq!(filter["config_discovery"]["type_urls"][0], WASM_TYPE_URL);
    let table: Value = serde_json::from_str(table_wasm["configuration"]["value"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the route table is not JSON: {e}"));
    assert_eq!(table["version"], 2);
    assert_eq!(shared_wasm["configuration"]["value"], r#"{"table":"shared"}"#);
    assert_eq!(route["match"]["headers"][0]["name"], SELECTION_HEADER);
    assert_eq!(route["route"]["cluster_header"], SELECTION_HEADER);
    assert_eq!(route["request_headers_to_remove"][0], SELECTION_HEADER);

    // A bootstrap shaped like Istio's: ECDS over ADS from istiod, outbound listeners whose
    // router comes after the patched-in filter, the patched-in route first, and the holder.
    // Both EXTENSION_CONFIG values are also configured statically, so that validation loads
    // the module and runs the filter's own check of each configuration.
    let statically = |extension: &Value| {
        let mut wasm = extension["typed_config"].clone();
        wasm["config"]["vm_config"]["code"]["local"]["filename"] = json!(module());
        json!({ "name": extension["name"], "typed_config": wasm })
    };
    let router = json!({ "name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } });
    let default_route = json!({ "match": { "prefix": "/" },
        "route": { "cluster": "outbound|80||echo-service.default.svc.cluster.local" } });
    let bootstrap = json!({
        "node": { "id": "sidecar~10.0.0.1~app.default~default.svc.cluster.local", "cluster": "app.default" },
        "dynamic_resources": { "ads_config": { "api_type": "GRPC",
            "grpc_services": [{ "envoy_grpc": { "cluster_name": "xds-grpc" } }] } },
        "static_resources": {
            "clusters": [
                static_cluster("xds-grpc", 15010),
                static_cluster("outbound|80||echo-service.default.svc.cluster.local", 18080),
            ],
            "listeners": [
                listener("0.0.0.0_80", vec![filter.clone(), router.clone()], vec![route.clone(), default_route.clone()]),
                holder.clone(),
                listener("extension-config-table", vec![statically(&table_config), router.clone()], vec![default_route.clone()]),
                listener("extension-config-shared", vec![statically(&shared_config), router], vec![default_route]),
            ],
        },
    });
    let work = TempDir::new("istio");
    let config = work.join("istio-bootstrap.json");
    write(&config, &bootstrap.to_string());
    validate(&config);
}

/// `sync` writes each route's status, in the Gateway API's shape, to `OUT/status/`: one file per
/// route, rewritten only when it changes, so an unrelated change (another Service) leaves it
/// alone, times included, even across a restart; a route that goes away takes its file along.
#[test]
fn sync_writes_each_routes_status_and_rewrites_it_only_when_it_changes() {
    let work = TempDir::new("status");
    let (manifests, out) = (work.join("manifests"), work.join("out"));
    publish_test_manifests(&manifests, &out);
    let file = out.join("status/httproute_default_echo-route.yaml");
    let first = read(&file);
    for needle in [
        "kind: HTTPRoute",
        "controllerName: meshroute.dev/mesh-controller",
        "type: Accepted",
        "type: ResolvedRefs",
        "status: \"True\"",
        "observedGeneration: 0",
        "lastTransitionTime: ",
    ] {
        assert!(first.contains(needle), "status lacks {needle}:\n{first}");
    }
    let modified = fs::metadata(&file).and_then(|m| m.modified()).ok();

    // Another Service, a second run of sync (a restart): the status file is not rewritten.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(
        &manifests.join("other.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: other, namespace: default}\nspec:\n  clusterIP: 127.77.0.99\n  ports: [{port: 80}]\n",
    );
    let output = sync_once(&manifests, &out);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(read(&file), first);
    assert_eq!(fs::metadata(&file).and_then(|m| m.modified()).ok(), modified, "rewritten without a change");

    // The route goes: so does its status.
    fs::remove_file(manifests.join("routes/echo-route.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let output = sync_once(&manifests, &out);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(!file.exists(), "{}", describe(&output));
}

/// `sync --xds ADDR`: only a bootstrap, which validates and names serve at ADDR; a non-loopback
/// ADDR is refused as `serve` refuses it, unless `--xds-allow-remote`.
#[test]
fn sync_xds_writes_an_ads_bootstrap_and_refuses_a_remote_address() {
    let work = TempDir::new("sync-xds");
    let manifests = work.join("manifests");
    write_manifests(&manifests);
    let sync_xds = |out: &Path, xds: &str, extra: &[&str]| {
        run(Command::new(meshroute())
            .arg("sync")
            .arg(&manifests)
            .arg("--out")
            .arg(out)
            .args(["--once", "--xds", xds])
            .args(extra))
    };
    let out = work.join("out");
    let output = sync_xds(&out, "127.0.0.1:15010", &["--namespace", "team-a"]);
    assert!(output.status.success(), "{}", describe(&output));
    let names: Vec<String> = fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["envoy.yaml"], "only the bootstrap: everything else comes over ADS");
    let bootstrap = read(&out.join("envoy.yaml"));
    for needle in
        ["ads_config", "cluster_name: meshroute_xds", "NAMESPACE: \"team-a\"", "MESHROUTE_DATA_PLANE: envoy", "port_value: 15010"]
    {
        assert!(bootstrap.contains(needle), "the bootstrap lacks {needle}:\n{bootstrap}");
    }
    validate(&out.join("envoy.yaml"));

    let remote = work.join("remote");
    let output = sync_xds(&remote, "10.1.2.3:15010", &[]);
    let text = describe(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("not a loopback address") && text.contains("--xds-allow-remote"), "{text}");
    assert!(!remote.join("envoy.yaml").exists(), "nothing written for a refused address");
    let output = sync_xds(&remote, "10.1.2.3:15010", &["--xds-allow-remote"]);
    assert!(output.status.success() && read(&remote.join("envoy.yaml")).contains("10.1.2.3"), "{}", describe(&output));
}

/// The ADS sidecar bootstrap validates, and loads for real what `meshroute serve --wasm`
/// serves: clusters, the sidecar's routes, the filter with its module fetched from serve.
#[test]
fn sidecar_ads_bootstrap_validates_and_loads_what_serve_serves() {
    let work = TempDir::new("sidecar-ads");
    let manifests = work.join("manifests");
    write_manifests(&manifests);
    let text = envoy_config("sidecar-ads-bootstrap.yaml");
    for needle in ["envoy.filters.listener.original_dst", "ORIGINAL_DST", "route_config_name: meshroute", "ads: {}"] {
        assert!(text.contains(needle), "sidecar ADS bootstrap lacks {needle}");
    }
    assert_names_the_destination(&text);
    assert!(!text.contains("path_config_source"), "nothing from files");
    let config = work.join("sidecar-ads.yaml");
    write(&config, &text);
    validate(&config);

    let xds = XdsServer::start_with_module(&manifests, &work.join("serve.log"), Some(&module()));
    let serve_host = "address: meshroute-xds.meshroute-system.svc.cluster.local";
    assert!(text.contains(serve_host) && text.contains("port_value: 15010"));
    let running = text
        .replace(serve_host, &format!("address: {}", xds.address().ip()))
        .replace("port_value: 15010", &format!("port_value: {}", xds.address().port()))
        .replace("port_value: 15000", "port_value: 0")
        .replace("port_value: 15001", "port_value: 0");
    let config = work.join("sidecar-ads-run.yaml");
    write(&config, &running);
    let envoy = Envoy::start(&config, &work);
    envoy.wait_for(&[
        ("cluster_manager.cds.update_success", 1),
        (ECDS_SUCCESS, 1),
        ("http.outbound_http.rds.meshroute.update_success", 1),
        ("listener_manager.total_listeners_active", 1),
        ("wasm.remote_load_fetch_successes", 1),
    ]);
    assert_eq!(envoy.stat(ECDS_REJECTED), Some(0), "{}", envoy.log_text());
    assert!(envoy.get("/clusters").contains("outbound|18080||echo-v1.default.svc.cluster.local"));
    assert!(xds.log().contains("(namespace default, Envoy)"), "serve told Envoy from gRPC clients:\n{}", xds.log());
}
