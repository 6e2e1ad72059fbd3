//! Envoy's resident memory across many route table swaps: each swap is a new plugin
//! configuration on the same VM (the module does not change), applied one after the other as
//! fast as Envoy takes them.
//!
//! CI runs 100 swaps and reports; `MESHROUTE_SOAK=1` (`make soak`) runs 1,000 and holds Envoy
//! to the target: within 10% of its memory after 10 swaps.

use std::fs;
use std::time::{Duration, Instant};

use meshroute_e2e::live::{process_start_time, replace_file, resident_kib, wait_until, DEADLINE};
use meshroute_e2e::mesh::Mesh;

const APPLIED: &str = "extension_config_discovery.http_filter.meshroute.update_success";
const REJECTED: &str = "extension_config_discovery.http_filter.meshroute.update_rejected";

fn soak() -> bool {
    std::env::var_os("MESHROUTE_SOAK").is_some_and(|value| value != "0" && !value.is_empty())
}

fn route(backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: memory\n  namespace: default\nspec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: echo\n    port: 80\n  rules:\n  - backendRefs:\n    - name: {backend}\n      port: 80\n"
    )
}

#[test]
fn memory_stays_flat_over_table_swaps() {
    let swaps: usize = if soak() { 1000 } else { 100 };
    let mesh =
        Mesh::builder("memory_swaps").service("echo").service("echo-v1").service("echo-v2").routes(&route("echo-v1")).start();
    let pid = mesh.envoy_pid();
    let started = process_start_time(pid);
    let ecds = mesh.out_dir().join("ecds.json");
    // Two tables that differ in where every request goes, both as `meshroute sync` writes them.
    let one = fs::read_to_string(&ecds).unwrap_or_else(|error| panic!("{}: {error}", ecds.display()));
    let two = one.replace("echo-v1", "echo-v2");
    assert_ne!(one, two);
    let stat = |name: &str| mesh.stats(&format!("^{}$", name.replace('.', "\\."))).get(name).copied().unwrap_or(0);
    let rss = || resident_kib(pid).unwrap_or_else(|| panic!("Envoy (pid {pid}) is gone"));

    let mut figures = Vec::new();
    let timer = Instant::now();
    let mut applied = stat(APPLIED);
    for swap in 1..=swaps {
        let (table, backend) = if swap % 2 == 1 { (&two, "echo-v2") } else { (&one, "echo-v1") };
        replace_file(&ecds, table.as_bytes());
        applied = wait_until(
            &format!("Envoy to apply swap {swap}"),
            DEADLINE,
            || {
                let now = stat(APPLIED);
                (now > applied).then_some(now)
            },
            || mesh.envoy_log_tail(),
        );
        if swap % 10 == 0 {
            mesh.get("echo", "/").expect_backend(backend);
        }
        if [10, 100, 250, 500, 1000].contains(&swap) {
            // Envoy frees retired plugin instances on its main thread; give it a moment.
            std::thread::sleep(Duration::from_millis(200));
            figures.push((swap, rss()));
        }
    }
    let elapsed = timer.elapsed();
    let after_10 = figures.first().map_or(0, |(_, kib)| *kib);
    let last = figures.last().map_or(0, |(_, kib)| *kib);
    let ratio = last as f64 / after_10.max(1) as f64;
    let shown: Vec<String> = figures.iter().map(|(swap, kib)| format!("after {swap}: {:.1} MiB", *kib as f64 / 1024.0)).collect();
    println!(
        "memory: Envoy VmRSS {}; after {swaps} / after 10 = {ratio:.3} ({swaps} swaps in {:.1} s, {:.1} ms each)",
        shown.join(", "),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / swaps as f64
    );
    assert_eq!(stat(REJECTED), 0, "{}", mesh.envoy_log_tail());
    assert_eq!(process_start_time(pid), started, "Envoy restarted");
    // The soak holds Envoy to the target. The short run only guards against a gross leak: a
    // VM or a table kept per swap (megabytes each) would grow it by far more than a quarter in
    // 100 swaps, while allocator noise stays within a few percent.
    let bound = if soak() { 1.10 } else { 1.25 };
    assert!(
        ratio <= bound,
        "Envoy grew by more than {:.0}% over {swaps} table swaps: {}",
        (bound - 1.0) * 100.0,
        shown.join(", ")
    );
}
