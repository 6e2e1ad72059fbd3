//! The generated files for hand-built manifests, read back as YAML the way Envoy reads them.

use std::path::{Path, PathBuf};

use meshroute_filter::document::TableDocument;
use yaml_rust2::{Yaml, YamlLoader};

use super::*;
use crate::model::{Endpoint, EndpointPort, EndpointSlice, Meta, Service, ServicePort, Source, TargetPort};

fn meta(namespace: &str, name: &str) -> Meta {
    Meta {
        last_good: None,
        namespace: namespace.into(),
        name: name.into(),
        creation_timestamp: None,
        generation: 0,
        source: Source { file: PathBuf::from("m.yaml"), line: 1 },
    }
}

fn port(name: Option<&str>, port: u16, target: Option<TargetPort>) -> ServicePort {
    ServicePort { name: name.map(Into::into), port, target_port: target, app_protocol: None }
}

fn service(name: &str, ips: &[&str], ports: Vec<ServicePort>) -> Service {
    Service { meta: meta("default", name), cluster_ips: ips.iter().map(|ip| ip.to_string()).collect(), ports }
}

fn slice(service: &str, ports: &[(Option<&str>, u16)], endpoints: &[(&str, bool)]) -> EndpointSlice {
    EndpointSlice {
        meta: meta("default", &format!("{service}-abc")),
        service_name: service.into(),
        ports: ports.iter().map(|(name, port)| EndpointPort { name: name.map(Into::into), port: *port }).collect(),
        endpoints: endpoints
            .iter()
            .map(|(address, ready)| Endpoint { addresses: vec![address.to_string()], ready: *ready })
            .collect(),
    }
}

fn options() -> Options {
    Options {
        out_dir: PathBuf::from("/srv/mesh out"),
        admin_port: 9911,
        module_file: "meshroute_filter-0123456789abcdef.wasm".into(),
    }
}

fn demo() -> Manifests {
    Manifests {
        services: vec![
            service("echo-service", &["127.0.10.1"], vec![port(None, 80, Some(TargetPort::Number(8080)))]),
            service("echo-v1", &["127.0.10.2"], vec![port(Some("http"), 80, Some(TargetPort::Name("web".into())))]),
            service("echo-v2", &["127.0.10.3"], vec![port(None, 80, None)]),
        ],
        endpoint_slices: vec![
            slice("echo-v1", &[(Some("http"), 18081)], &[("127.0.0.1", true), ("127.0.0.2", false)]),
            slice("echo-v2", &[(None, 18082)], &[("127.0.0.1", true)]),
        ],
        ..Manifests::default()
    }
}

fn load(text: &str) -> Yaml {
    YamlLoader::load_from_str(text).unwrap().remove(0)
}

fn rendered(manifests: &Manifests) -> EnvoyFiles {
    render(manifests, &TableDocument::default(), &RouteTable::compile(&TableDocument::default()).unwrap(), &options()).unwrap()
}

fn cluster<'a>(cds: &'a Yaml, name: &str) -> &'a Yaml {
    cds["resources"].as_vec().unwrap().iter().find(|c| c["name"].as_str() == Some(name)).unwrap()
}

fn endpoints(cluster: &Yaml) -> Vec<(String, i64)> {
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| {
            let a = &e["endpoint"]["address"]["socket_address"];
            (a["address"].as_str().unwrap().to_owned(), a["port_value"].as_i64().unwrap())
        })
        .collect()
}

#[test]
fn one_cluster_per_service_port_named_as_istio_names_it() {
    let mut manifests = demo();
    manifests.services.push(service("multi", &["127.0.10.9"], vec![port(Some("a"), 80, None), port(Some("b"), 81, None)]));
    let cds = load(&rendered(&manifests).clusters);
    let names: Vec<&str> = cds["resources"].as_vec().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "outbound|80||echo-service.default.svc.cluster.local",
            "outbound|80||echo-v1.default.svc.cluster.local",
            "outbound|80||echo-v2.default.svc.cluster.local",
            "outbound|80||multi.default.svc.cluster.local",
            "outbound|81||multi.default.svc.cluster.local",
        ]
    );
    for c in cds["resources"].as_vec().unwrap() {
        assert_eq!(c["@type"].as_str(), Some("type.googleapis.com/envoy.config.cluster.v3.Cluster"));
        assert_eq!(c["connect_timeout"].as_str(), Some("2s"));
        assert_eq!(c["load_assignment"]["cluster_name"], c["name"]);
    }
}

#[test]
fn named_service_port_takes_the_slice_port_of_the_same_name_and_only_ready_endpoints() {
    let cds = load(&rendered(&demo()).clusters);
    let v1 = cluster(&cds, "outbound|80||echo-v1.default.svc.cluster.local");
    assert_eq!(v1["type"].as_str(), Some("STATIC"));
    assert_eq!(endpoints(v1), [("127.0.0.1".to_owned(), 18081)], "127.0.0.2 is not ready");
}

#[test]
fn unnamed_service_port_takes_the_single_slice_port() {
    let cds = load(&rendered(&demo()).clusters);
    assert_eq!(endpoints(cluster(&cds, "outbound|80||echo-v2.default.svc.cluster.local")), [("127.0.0.1".to_owned(), 18082)]);
}

#[test]
fn service_without_endpoint_slices_resolves_its_fqdn() {
    let cds = load(&rendered(&demo()).clusters);
    let c = cluster(&cds, "outbound|80||echo-service.default.svc.cluster.local");
    assert_eq!(c["type"].as_str(), Some("STRICT_DNS"));
    assert_eq!(endpoints(c), [("echo-service.default.svc.cluster.local".to_owned(), 80)]);
}

#[test]
fn slice_port_mapping_follows_kube_proxy() {
    use clusters::endpoint_port;
    let named = slice("s", &[(Some("http"), 8080), (Some("grpc"), 9090)], &[]);
    assert_eq!(endpoint_port(&named, &port(Some("grpc"), 90, None)), Some(9090));
    // No slice port of that name: a numeric targetPort, else the port itself.
    assert_eq!(endpoint_port(&named, &port(Some("admin"), 91, Some(TargetPort::Number(7000)))), Some(7000));
    assert_eq!(endpoint_port(&named, &port(Some("admin"), 91, None)), Some(91));
    // A named targetPort that no slice port carries has no endpoints.
    assert_eq!(endpoint_port(&named, &port(Some("admin"), 91, Some(TargetPort::Name("admin".into())))), None);
    let unnamed = slice("s", &[(None, 5000)], &[]);
    assert_eq!(endpoint_port(&unnamed, &port(None, 80, Some(TargetPort::Number(1)))), Some(5000));
    let single_named = slice("s", &[(Some("web"), 5001)], &[]);
    assert_eq!(endpoint_port(&single_named, &port(None, 80, None)), Some(5001));
}

#[test]
fn endpoints_from_several_slices_are_merged_sorted_and_deduplicated() {
    let mut manifests = demo();
    manifests.endpoint_slices.push(slice("echo-v2", &[(None, 18082)], &[("127.0.0.3", true), ("127.0.0.1", true)]));
    let cds = load(&rendered(&manifests).clusters);
    let got = endpoints(cluster(&cds, "outbound|80||echo-v2.default.svc.cluster.local"));
    assert_eq!(got, [("127.0.0.1".to_owned(), 18082), ("127.0.0.3".to_owned(), 18082)]);
}

#[test]
fn slices_of_another_namespace_do_not_count() {
    let mut manifests = demo();
    let mut other = slice("echo-service", &[(None, 1)], &[("127.0.0.9", true)]);
    other.meta.namespace = "other".into();
    manifests.endpoint_slices.push(other);
    let cds = load(&rendered(&manifests).clusters);
    assert_eq!(cluster(&cds, "outbound|80||echo-service.default.svc.cluster.local")["type"].as_str(), Some("STRICT_DNS"));
}

/// The cluster's HTTP version follows the port's declared protocol (crate::protocol): HTTP/2 for
/// h2c and gRPC ports, HTTP/1.1 for ports declared HTTP/1, the client's own for undeclared ones.
#[test]
fn upstream_http_version_follows_the_declared_protocol() {
    let mut manifests = demo();
    manifests.services[1].ports[0].app_protocol = Some("kubernetes.io/h2c".into());
    let cds = load(&rendered(&manifests).clusters);
    let options = |name: &str| {
        cluster(&cds, name)["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].clone()
    };
    let h2c = options("outbound|80||echo-v1.default.svc.cluster.local");
    assert_eq!(h2c["@type"].as_str(), Some("type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"));
    assert!(!h2c["explicit_http_config"]["http2_protocol_options"].is_badvalue());
    // echo-v2's port has neither name nor appProtocol.
    let undeclared = options("outbound|80||echo-v2.default.svc.cluster.local");
    assert!(!undeclared["use_downstream_protocol_config"]["http2_protocol_options"].is_badvalue());
    assert!(!undeclared["use_downstream_protocol_config"]["http_protocol_options"].is_badvalue());

    manifests.services[2].ports[0].name = Some("http".into());
    let cds = load(&rendered(&manifests).clusters);
    let http1 = cluster(&cds, "outbound|80||echo-v2.default.svc.cluster.local");
    assert!(http1["typed_extension_protocol_options"].is_badvalue(), "a port named http gets Envoy's default, HTTP/1.1");
}

/// Every address the one local listener binds: `address`, then `additional_addresses`.
fn bound(listener: &Yaml) -> Vec<(String, i64)> {
    let socket = |a: &Yaml| {
        let a = &a["socket_address"];
        (a["address"].as_str().unwrap().to_owned(), a["port_value"].as_i64().unwrap())
    };
    let mut all = vec![socket(&listener["address"])];
    all.extend(listener["additional_addresses"].as_vec().unwrap().iter().map(|a| socket(&a["address"])));
    all
}

#[test]
fn one_listener_binds_every_cluster_ip_and_port_with_the_filter_then_the_router() {
    let mut manifests = demo();
    manifests.services.push(service("dual", &["127.0.10.7", "::1"], vec![port(None, 80, None), port(None, 81, None)]));
    manifests.services.push(service("headless", &[], vec![port(None, 80, None)]));
    manifests.services.push(service("headless-none", &["None"], vec![port(None, 80, None)]));
    let lds = load(&rendered(&manifests).listeners);
    let listeners = lds["resources"].as_vec().unwrap();
    assert_eq!(listeners.len(), 1, "one listener holds the filter's table once");
    let expected: Vec<(String, i64)> = [
        ("127.0.10.1", 80),
        ("127.0.10.2", 80),
        ("127.0.10.3", 80),
        ("127.0.10.7", 80),
        ("127.0.10.7", 81),
        ("::1", 80),
        ("::1", 81),
    ]
    .iter()
    .map(|(a, p)| (a.to_string(), *p))
    .collect();
    assert_eq!(bound(&listeners[0]), expected);
    assert_eq!(listeners[0]["name"].as_str(), Some("meshroute"));

    let hcm = &listeners[0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["codec_type"].as_str(), Some("AUTO"));
    assert_eq!(hcm["normalize_path"].as_bool(), Some(true));
    assert_eq!(hcm["merge_slashes"].as_bool(), Some(true));
    // The destination, written over any client's copy before the filter reads it.
    let mutation = &hcm["early_header_mutation_extensions"][0]["typed_config"]["mutations"][0]["append"];
    assert_eq!(mutation["header"]["key"].as_str(), Some(meshroute_filter::DESTINATION_HEADER));
    assert_eq!(mutation["header"]["value"].as_str(), Some("%DOWNSTREAM_LOCAL_ADDRESS%"));
    assert_eq!(mutation["append_action"].as_str(), Some("OVERWRITE_IF_EXISTS_OR_ADD"));
    let filters = hcm["http_filters"].as_vec().unwrap();
    assert_eq!(filters.len(), 2);
    assert_eq!(filters[0]["name"].as_str(), Some("meshroute"));
    let discovery = &filters[0]["config_discovery"];
    assert_eq!(discovery["config_source"]["path_config_source"]["path"].as_str(), Some("/srv/mesh out/ecds.json"));
    // Watched by its path, so that replacing it reloads it alone.
    assert!(discovery["config_source"]["path_config_source"]["watched_directory"].is_badvalue());
    assert_eq!(discovery["type_urls"][0].as_str(), Some("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"));
    assert_eq!(filters[1]["name"].as_str(), Some("envoy.filters.http.router"));
}

#[test]
fn routes_follow_the_selection_header_else_answer_404_for_an_address_the_table_does_not_know() {
    let lds = load(&rendered(&demo()).listeners);
    let route_config = &lds["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"];
    let removed: Vec<&str> =
        route_config["request_headers_to_remove"].as_vec().unwrap().iter().filter_map(|h| h.as_str()).collect();
    assert_eq!(removed, [meshroute_filter::SELECTION_HEADER, "x-meshroute-mirror", meshroute_filter::DESTINATION_HEADER]);
    // A listener read before the cds.json of the same publication must not be refused.
    assert_eq!(route_config["validate_clusters"].as_bool(), Some(false));
    let host = &route_config["virtual_hosts"][0];
    assert_eq!(host["domains"][0].as_str(), Some("*"));
    let routes = host["routes"].as_vec().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0]["match"]["headers"][0]["name"].as_str(), Some("x-meshroute-cluster"));
    assert_eq!(routes[0]["match"]["headers"][0]["present_match"].as_bool(), Some(true));
    assert_eq!(routes[0]["route"]["cluster_header"].as_str(), Some("x-meshroute-cluster"));
    // Ports without routes are the filter's too: their clusters are in the table.
    assert_eq!(routes[1]["match"]["prefix"].as_str(), Some("/"));
    assert_eq!(routes[1]["direct_response"]["status"].as_i64(), Some(404));
}

#[test]
fn a_cluster_ip_and_port_taken_twice_gets_one_listener_and_a_warning() {
    let mut manifests = demo();
    manifests.services.push(service("copy", &["127.0.10.1"], vec![port(None, 80, None), port(None, 81, None)]));
    let files = rendered(&manifests);
    let lds = load(&files.listeners);
    let addresses: Vec<String> = bound(&lds["resources"][0]).iter().map(|(ip, port)| format!("{ip}:{port}")).collect();
    assert_eq!(addresses, ["127.0.10.1:80", "127.0.10.2:80", "127.0.10.3:80", "127.0.10.1:81"]);
    assert_eq!(files.warnings.len(), 1);
    assert!(
        files.warnings[0].contains("default/copy") && files.warnings[0].contains("default/echo-service"),
        "{:?}",
        files.warnings
    );
}

#[test]
fn ecds_carries_the_module_and_the_table_with_fail_reload() {
    let files = rendered(&demo());
    let ecds = load(&files.ecds);
    let resource = &ecds["resources"][0];
    assert_eq!(resource["@type"].as_str(), Some("type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"));
    assert_eq!(resource["name"].as_str(), Some("meshroute"));
    let wasm = &resource["typed_config"];
    assert_eq!(wasm["@type"].as_str(), Some("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"));
    let config = &wasm["config"];
    assert_eq!(config["root_id"].as_str(), Some("meshroute"));
    assert_eq!(config["failure_policy"].as_str(), Some("FAIL_RELOAD"));
    assert_eq!(config["vm_config"]["runtime"].as_str(), Some("envoy.wasm.runtime.v8"));
    assert_eq!(
        config["vm_config"]["code"]["local"]["filename"].as_str(),
        Some("/srv/mesh out/meshroute_filter-0123456789abcdef.wasm")
    );
    assert_eq!(config["configuration"]["@type"].as_str(), Some("type.googleapis.com/google.protobuf.StringValue"));
    let table_text = config["configuration"]["value"].as_str().unwrap();
    let decoded: TableDocument = serde_json::from_str(table_text).unwrap();
    // The listeners written beside it name each request's destination.
    assert_eq!(decoded, TableDocument { destination_header: true, ..TableDocument::default() });
}

#[test]
fn bootstrap_points_envoy_at_the_files_with_admin_on_loopback() {
    let boot = load(&rendered(&demo()).bootstrap);
    assert!(!boot["node"]["id"].as_str().unwrap().is_empty());
    assert!(!boot["node"]["cluster"].as_str().unwrap().is_empty());
    assert_eq!(boot["admin"]["address"]["socket_address"]["address"].as_str(), Some("127.0.0.1"));
    assert_eq!(boot["admin"]["address"]["socket_address"]["port_value"].as_i64(), Some(9911));
    for (key, file) in [("lds_config", "lds.json"), ("cds_config", "cds.json")] {
        let source = &boot["dynamic_resources"][key]["path_config_source"];
        assert_eq!(source["path"].as_str().map(Path::new), Some(Path::new("/srv/mesh out").join(file).as_path()));
        assert!(source["watched_directory"].is_badvalue(), "each file is watched by its path");
    }
}

#[test]
fn template_placeholders_are_all_known_and_quoted() {
    let values = bootstrap::BootstrapValues {
        node_id: "n",
        node_cluster: "c",
        admin_port: 1,
        lds_path: "/a \"quoted\" : path",
        cds_path: "/c",
    };
    let text = bootstrap::render_template("# {{nothing}} here\npath: {{lds_path}}\nport: {{ admin_port }}\n", &values).unwrap();
    assert_eq!(text, "# {{nothing}} here\npath: \"/a \\\"quoted\\\" : path\"\nport: 1\n");
    assert_eq!(load(&text)["path"].as_str(), Some("/a \"quoted\" : path"));
    assert_eq!(bootstrap::render_template("x: {{nope}}\n", &values), Err(bootstrap::TemplateError::Unknown("nope".into())));
    assert_eq!(bootstrap::render_template("x: {{lds_path\n", &values), Err(bootstrap::TemplateError::Unterminated));
    let rendered = bootstrap::render(&values).unwrap();
    let body: String = rendered.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert!(!body.contains("{{"), "every placeholder of the shipped template is filled");
}

#[test]
fn output_directory_must_be_absolute() {
    let options = Options { out_dir: PathBuf::from("out"), ..options() };
    assert!(matches!(
        render(&demo(), &TableDocument::default(), &RouteTable::compile(&TableDocument::default()).unwrap(), &options),
        Err(RenderError::RelativePath(_))
    ));
}

#[test]
fn module_names_carry_their_content_hash() {
    // sha256("") = e3b0c44298fc1c14...
    assert_eq!(module_file_name(b""), "meshroute_filter-e3b0c44298fc1c14.wasm");
    assert_ne!(module_file_name(b"a"), module_file_name(b"b"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(rendered(&demo()), rendered(&demo()));
}

#[test]
fn files_are_written_so_that_nothing_is_referenced_before_it_exists() {
    let files = rendered(&demo());
    let order: Vec<&str> = files.in_write_order().iter().map(|(name, _)| *name).collect();
    // Listeners name clusters and the ECDS file, and so do the sidecar's routes; the bootstrap
    // names the listeners and clusters.
    assert_eq!(order, [CLUSTERS_FILE, ECDS_FILE, LISTENERS_FILE, SIDECAR_ROUTES_FILE, BOOTSTRAP_FILE]);
}

/// Every bootstrap that runs the filter gives its counters their tags back: its
/// `stats_config.stats_tags` are exactly [`meshroute_filter::metrics::stats_tags`].
#[test]
fn every_bootstrap_extracts_the_filters_stat_tags() {
    let expected: Vec<(String, String)> =
        meshroute_filter::metrics::stats_tags().into_iter().map(|(tag, regex)| (tag.to_owned(), regex)).collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy-config");
    for file in ["local-bootstrap.yaml", "local-ads-bootstrap.yaml", "sidecar-bootstrap.yaml", "sidecar-ads-bootstrap.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        // The block alone: the templates' `{{placeholders}}` are not YAML.
        let start = text.find("\nstats_config:").unwrap_or_else(|| panic!("{file} has no stats_config"));
        let block: String = text[start + 1..]
            .lines()
            .enumerate()
            .take_while(|(i, line)| *i == 0 || line.starts_with(' ') || line.starts_with('-'))
            .map(|(_, line)| format!("{line}\n"))
            .collect();
        let doc = &YamlLoader::load_from_str(&block).unwrap()[0];
        let found: Vec<(String, String)> = doc["stats_config"]["stats_tags"]
            .as_vec()
            .unwrap_or_else(|| panic!("{file}: stats_tags is not a list"))
            .iter()
            .map(|t| (t["tag_name"].as_str().unwrap().to_owned(), t["regex"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(found, expected, "{file}");
    }
}
