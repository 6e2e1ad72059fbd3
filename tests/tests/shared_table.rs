//! The filter on many listeners with the table held once, as in Istio (one outbound listener per
//! port): each listener's filter is configured `{"table":"shared"}` and routes by the table its
//! VM holds, which one holder's configuration brings. Here the mesh's own listener is the holder,
//! and one Service's address moves to a listener of its own whose filter holds no table.

use std::fs;

use serde_json::{json, Value};

use meshroute_e2e::live::{replace_file, wait_until, DEADLINE};
use meshroute_e2e::mesh::{Mesh, Mode};

/// The filter's configuration for a listener that holds no table: the form users write.
const SHARED_TABLE_CONFIG: &str = r#"{"table":"shared"}"#;
const APPLIED: &str = "extension_config_discovery.http_filter.meshroute.update_success";
const SHARED_LISTENER: &str = "echo_shared";

fn route(backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: shared\n  namespace: default\nspec:\n  parentRefs:\n  - group: \"\"\n    kind: Service\n    name: echo\n    port: 80\n  rules:\n  - backendRefs:\n    - name: {backend}\n      port: 80\n"
    )
}

fn read_json(path: &std::path::Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn a_listener_whose_filter_holds_no_table_routes_by_the_table_its_vm_holds_and_follows_its_changes() {
    let mesh = Mesh::builder("shared_table")
        .mode(Mode::Filter)
        // echo last: its address is one of the listener's additional addresses.
        .service("echo-v1")
        .service("echo-v2")
        .service("echo")
        .routes(&route("echo-v1"))
        .start();
    // Each request on a connection of its own, so that none stays on a listener that drains.
    let get = || mesh.get("echo", "/").header("connection", "close");
    get().expect_backend("echo-v1");
    let stat = |name: &str| mesh.stats(&format!("^{}$", name.replace('.', "\\."))).get(name).copied().unwrap_or(0);

    // echo's address leaves the mesh's listener for one of its own, whose filter has the shared
    // configuration (same module, same VM) instead of the table.
    let echo = mesh.address_of("echo");
    let (ip, port) = echo.rsplit_once(':').unwrap_or_else(|| panic!("{echo}"));
    let ecds = read_json(&mesh.out_dir().join("ecds.json"));
    let mut wasm = ecds["resources"][0]["typed_config"].clone();
    assert_eq!(wasm["@type"], "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "{ecds}");
    wasm["config"]["configuration"]["value"] = json!(SHARED_TABLE_CONFIG);
    let lds_path = mesh.out_dir().join("lds.json");
    let mut lds = read_json(&lds_path);
    let mut holder = lds["resources"][0].clone();
    let socket = |at: &Value| (at["socket_address"]["address"].clone(), at["socket_address"]["port_value"].to_string());
    let is_echo = |at: &Value| socket(at) == (json!(ip), port.to_owned());
    assert!(!is_echo(&holder["address"]), "the test moves an additional address: {holder}");
    let additional = holder["additional_addresses"].as_array_mut().unwrap_or_else(|| panic!("{lds}"));
    let before = additional.len();
    additional.retain(|at| !is_echo(&at["address"]));
    assert_eq!(additional.len() + 1, before, "echo's address is one of the listener's: {lds}");
    let mut shared = holder.clone();
    shared["name"] = json!(SHARED_LISTENER);
    shared["address"] = json!({ "socket_address": { "address": ip, "port_value": port.parse::<u16>().unwrap_or(80) } });
    shared.as_object_mut().map(|listener| listener.remove("additional_addresses"));
    let hcm = &mut shared["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["stat_prefix"] = json!(SHARED_LISTENER);
    assert_eq!(hcm["http_filters"][0]["name"], "meshroute", "{hcm}");
    hcm["http_filters"][0] = json!({ "name": "meshroute", "typed_config": wasm });
    lds["resources"] = json!([holder, shared]);
    replace_file(&lds_path, lds.to_string().as_bytes());
    wait_until(
        "the shared listener to take echo's address",
        DEADLINE,
        || (stat("listener_manager.total_listeners_active") == 2).then_some(()),
        || mesh.envoy_log_tail(),
    );

    // Through the shared listener, by the holder's table.
    let answered = format!("http.{SHARED_LISTENER}.downstream_rq_2xx");
    for _ in 0..5 {
        get().expect_backend("echo-v1");
    }
    assert_eq!(stat(&answered), 5, "the requests went through the shared listener\n{}", mesh.envoy_log_tail());

    // Only the holder's configuration changes: the shared listener routes by the new table.
    let applied = stat(APPLIED);
    let ecds_path = mesh.out_dir().join("ecds.json");
    let table = fs::read_to_string(&ecds_path).unwrap_or_default();
    replace_file(&ecds_path, table.replace("echo-v1", "echo-v2").as_bytes());
    wait_until("Envoy to apply the new table", DEADLINE, || (stat(APPLIED) > applied).then_some(()), || mesh.envoy_log_tail());
    for _ in 0..5 {
        get().expect_backend("echo-v2");
    }
    assert_eq!(stat(&answered), 10, "{}", mesh.envoy_log_tail());
}
