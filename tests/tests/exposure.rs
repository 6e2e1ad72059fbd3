//! Nothing listens where it should not: every address `meshroute sync` writes (listeners and
//! Envoy's admin) and every socket the running Envoy listens on is on loopback or a Service's
//! ClusterIP, never all interfaces; and no file `sync` writes is writable by others.

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;

use meshroute_e2e::live::listening_sockets;
use meshroute_e2e::mesh::Mesh;

/// The values of every `address:` key in a YAML file as `meshroute sync` writes it.
/// Every `address:` value of a YAML file (the bootstrap) or `"address":` string of a JSON one
/// (the resource files).
fn addresses_in(text: &str) -> Vec<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let mut found = Vec::new();
        collect_addresses(&json, &mut found);
        return found;
    }
    text.lines()
        .filter_map(|line| line.trim_start().trim_start_matches("- ").strip_prefix("address:"))
        .map(|value| value.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .filter(|value| !value.is_empty())
        .collect()
}

fn collect_addresses(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, field) in fields {
                match field.as_str() {
                    Some(address) if key == "address" => found.push(address.to_owned()),
                    _ => collect_addresses(field, found),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| collect_addresses(item, found)),
        _ => {}
    }
}

fn allowed(address: &str, cluster_ips: &BTreeSet<Ipv4Addr>) -> bool {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || cluster_ips.contains(&ip),
        Ok(IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[test]
fn envoy_listens_only_on_loopback_and_service_addresses() {
    let mesh = Mesh::builder("exposure").service("echo").service_with_ports("echo-v1", &[80, 8080]).start();
    let cluster_ips: BTreeSet<Ipv4Addr> = ["echo", "echo-v1"].iter().map(|name| mesh.service(name).cluster_ip).collect();
    let out = mesh.out_dir();
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap_or_else(|error| panic!("{name}: {error}"));

    // What sync writes.
    let listeners = addresses_in(&read("lds.json"));
    assert_eq!(listeners.len(), 3, "one listener per ClusterIP and port: {listeners:?}");
    let admin = addresses_in(&read("envoy.yaml"));
    assert!(!admin.is_empty(), "the bootstrap names the admin address");
    for address in listeners.iter().chain(&admin) {
        assert!(
            allowed(address, &cluster_ips),
            "sync wrote the address {address}, outside loopback and the ClusterIPs {cluster_ips:?}"
        );
    }

    // What Envoy listens on.
    let sockets = listening_sockets(mesh.envoy_pid());
    println!("Envoy listens on {sockets:?}");
    for (address, port) in &sockets {
        assert!(allowed(address, &cluster_ips), "Envoy listens on {address}:{port}");
    }
    assert!(sockets.contains(&("127.0.0.1".to_owned(), mesh.admin_port())), "the admin interface: {sockets:?}");
    for name in ["echo:80", "echo-v1:80", "echo-v1:8080"] {
        let address = mesh.address_of(name);
        assert!(sockets.iter().any(|(ip, port)| format!("{ip}:{port}") == address), "{name} ({address}): {sockets:?}");
    }
    assert_eq!(sockets.len(), 4, "the admin interface and one listener per ClusterIP and port: {sockets:?}");

    // No file sync writes (nor its directory) is writable by others.
    let mut checked = Vec::new();
    for entry in fs::read_dir(&out).unwrap_or_else(|error| panic!("{}: {error}", out.display())).flatten() {
        let mode = entry.metadata().map(|meta| meta.permissions().mode()).unwrap_or_else(|error| panic!("{error}"));
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(mode & 0o002, 0, "{name} is world-writable ({:o})", mode & 0o777);
        checked.push(format!("{name} {:o}", mode & 0o777));
    }
    let dir_mode = fs::metadata(&out).map(|meta| meta.permissions().mode()).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(dir_mode & 0o002, 0, "{} is world-writable", out.display());
    assert!(checked.len() >= 5, "the module and four YAML files: {checked:?}");
    println!("files sync wrote: {checked:?}");
}
