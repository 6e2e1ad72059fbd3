//! The messages served to Envoy say what `sync`'s files say, field by field.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use prost::Message;
use serde_json::{json, Value};

use super::*;
use crate::envoy::{ecds, mirrors};
use crate::pipeline;

const MANIFESTS: &str = "
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}, {name: grpc, port: 8080}, {name: other, port: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-v1, namespace: default}
spec:
  clusterIP: 10.96.0.11
  ports: [{name: http, port: 80, targetPort: 8081}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-v1-1, namespace: default, labels: {kubernetes.io/service-name: echo-v1}}
addressType: IPv4
ports: [{name: http, port: 8081}]
endpoints: [{addresses: [10.0.0.1, 10.0.0.2]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{group: '', kind: Service, name: echo, port: 80}]
  rules:
  - backendRefs: [{name: echo-v1, port: 80}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: echo, port: 80}, percent: 25}
";

fn build() -> pipeline::Build {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), MANIFESTS).unwrap();
    pipeline::build(dir.path(), "default").unwrap_or_else(|errors| panic!("{errors:?}"))
}

fn decoded<M: Message + Default>(resources: &Resources, type_url: &str, name: &str) -> M {
    let any = resources.by_type.get(type_url).and_then(|of_type| of_type.get(name)).unwrap_or_else(|| panic!("no {name}"));
    M::decode(any.value.as_slice()).unwrap()
}

fn duration_text(duration: &Duration) -> String {
    assert_eq!(duration.nanos % 1_000_000, 0);
    match (duration.seconds, duration.nanos / 1_000_000) {
        (seconds, 0) => format!("{seconds}s"),
        (0, ms) => format!("{}s", format!("0.{ms:03}").trim_end_matches('0')),
        (seconds, ms) => format!("{seconds}.{ms:03}s"),
    }
}

#[test]
fn clusters_say_what_the_cds_file_says() {
    let build = build();
    let module = ModuleRef::of(b"module");
    let served = resources(&build.manifests, &build.table, Some(&module));
    let file = clusters::clusters(&build.manifests);
    let files = file["resources"].as_array().unwrap();
    assert_eq!(served.by_type[CLUSTER_TYPE].len(), files.len());
    for expected in files {
        let name = expected["name"].as_str().unwrap();
        let cluster: Cluster = decoded(&served, CLUSTER_TYPE, name);
        let kind = match cluster.cluster_discovery_type {
            Some(cluster::ClusterDiscoveryType::Type(kind)) => cluster::DiscoveryType::try_from(kind).unwrap().as_str_name(),
            other => panic!("{other:?}"),
        };
        assert_eq!(json!(kind), expected["type"], "{name}");
        assert_eq!(json!(duration_text(&cluster.connect_timeout.unwrap())), expected["connect_timeout"]);
        let assignment = cluster.load_assignment.unwrap();
        assert_eq!(json!(assignment.cluster_name), expected["load_assignment"]["cluster_name"]);
        let addresses: Vec<Value> = assignment.endpoints[0]
            .lb_endpoints
            .iter()
            .map(|lb| match &lb.host_identifier {
                Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) => match &endpoint.address.as_ref().unwrap().address {
                    Some(address::Address::SocketAddress(at)) => match at.port_specifier {
                        Some(socket_address::PortSpecifier::PortValue(port)) => {
                            json!({"endpoint": {"address": {"socket_address": {"address": at.address, "port_value": port}}}})
                        }
                        _ => panic!(),
                    },
                    _ => panic!(),
                },
                _ => panic!(),
            })
            .collect();
        assert_eq!(Value::Array(addresses), expected["load_assignment"]["endpoints"][0]["lb_endpoints"], "{name}");
        let options = cluster.typed_extension_protocol_options.get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
        let expected_options =
            &expected["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        match options.map(|any| HttpProtocolOptions::decode(any.value.as_slice()).unwrap().upstream_protocol_options) {
            None => assert!(expected_options.is_null(), "{name}"),
            Some(Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(_))) => {
                assert_eq!(expected_options["explicit_http_config"], json!({"http2_protocol_options": {}}), "{name}")
            }
            Some(Some(http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(config))) => {
                assert!(config.http_protocol_options.is_some() && config.http2_protocol_options.is_some());
                assert!(expected_options["use_downstream_protocol_config"].is_object(), "{name}");
            }
            Some(other) => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn listeners_say_what_the_lds_file_says_with_the_filter_over_ads() {
    let build = build();
    let served = resources(&build.manifests, &build.table, None);
    let compiled = RouteTable::compile(&build.table).unwrap();
    let source = listeners::EcdsSource { path: "/x/ecds.json" };
    let (file, _) = listeners::listeners(&build.manifests, &source, compiled.mirror_sets());
    let files = file["resources"].as_array().unwrap();
    assert_eq!(served.by_type[LISTENER_TYPE].len(), files.len());
    for expected in files {
        let name = expected["name"].as_str().unwrap();
        let listener: Listener = decoded(&served, LISTENER_TYPE, name);
        let socket = |address: Option<Address>| match address.and_then(|a| a.address) {
            Some(address::Address::SocketAddress(at)) => {
                let Some(socket_address::PortSpecifier::PortValue(port)) = at.port_specifier else { panic!() };
                json!({"address": at.address, "port_value": port})
            }
            other => panic!("{other:?}"),
        };
        let port = |v: &Value| json!({"address": v["address"], "port_value": v["port_value"]});
        assert_eq!(socket(listener.address), port(&expected["address"]["socket_address"]));
        let additional: Vec<Value> = listener.additional_addresses.into_iter().map(|a| socket(a.address)).collect();
        let expected_additional: Vec<Value> =
            expected["additional_addresses"].as_array().unwrap().iter().map(|a| port(&a["address"]["socket_address"])).collect();
        assert_eq!(additional, expected_additional);
        let Some(NetworkConfigType::TypedConfig(any)) = listener.filter_chains[0].filters[0].config_type.clone() else {
            panic!()
        };
        let manager = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        let expected_manager = &expected["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(json!(manager.stat_prefix), expected_manager["stat_prefix"]);
        assert!(manager.merge_slashes && manager.normalize_path.unwrap().value);
        let [early] = &manager.early_header_mutation_extensions[..] else { panic!() };
        let expected_early = &expected_manager["early_header_mutation_extensions"][0];
        assert_eq!(json!(early.name), expected_early["name"]);
        let early = EarlyHeaderMutation::decode(early.typed_config.as_ref().unwrap().value.as_slice()).unwrap();
        let Some(header_mutation::Action::Append(append)) = &early.mutations[0].action else { panic!() };
        let expected_append = &expected_early["typed_config"]["mutations"][0]["append"];
        let header = append.header.as_ref().unwrap();
        assert_eq!(json!({"key": header.key, "value": header.value}), expected_append["header"]);
        assert_eq!(append.append_action(), header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd);
        let filters: Vec<&str> = manager.http_filters.iter().map(|f| f.name.as_str()).collect();
        let expected_filters: Vec<&str> =
            expected_manager["http_filters"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(filters, expected_filters);
        let Some(http_filter::ConfigType::ConfigDiscovery(discovery)) = &manager.http_filters[0].config_type else { panic!() };
        assert_eq!(discovery.type_urls, [WASM_TYPE_URL]);
        assert_eq!(discovery.config_source, Some(ads()));
        let Some(RouteSpecifier::RouteConfig(routes)) = manager.route_specifier else { panic!() };
        assert_route_config(&routes, &expected_manager["route_config"]);
    }
    // The manifests' mirror (25%) took part.
    assert_eq!(compiled.mirror_sets().len(), 1);
    assert_eq!(
        mirrors::policy(&compiled.mirror_sets()[0].mirrors[0])["runtime_fraction"]["default_value"]["numerator"],
        json!(250_000)
    );
    // The sidecar's routes, by RDS.
    let sidecar: RouteConfiguration = decoded(&served, ROUTE_TYPE, SIDECAR_ROUTES);
    assert_route_config(&sidecar, &listeners::route_config(Some(SIDECAR_PASSTHROUGH_CLUSTER), compiled.mirror_sets()));
}

fn assert_route_config(served: &RouteConfiguration, expected: &Value) {
    assert_eq!(json!(served.name), expected["name"]);
    assert_eq!(served.validate_clusters, Some(BoolValue { value: false }));
    assert_eq!(json!(served.request_headers_to_remove), expected["request_headers_to_remove"]);
    let routes = &served.virtual_hosts[0].routes;
    let expected_routes = expected["virtual_hosts"][0]["routes"].as_array().unwrap();
    assert_eq!(routes.len(), expected_routes.len());
    for (route, expected) in routes.iter().zip(expected_routes) {
        assert_eq!(json!(route.name), expected["name"]);
        if let Some(route::Action::DirectResponse(direct)) = &route.action {
            assert_eq!(json!(direct.status), expected["direct_response"]["status"]);
            continue;
        }
        let Some(route::Action::Route(action)) = &route.action else { panic!() };
        match &action.cluster_specifier {
            Some(route_action::ClusterSpecifier::ClusterHeader(header)) => {
                assert_eq!(json!(header), expected["route"]["cluster_header"])
            }
            Some(route_action::ClusterSpecifier::Cluster(cluster)) => assert_eq!(json!(cluster), expected["route"]["cluster"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(action.timeout, Some(seconds(0)));
        let headers: Vec<&str> = route.r#match.as_ref().unwrap().headers.iter().map(|h| h.name.as_str()).collect();
        let expected_headers: Vec<&str> = expected["match"]["headers"]
            .as_array()
            .map(|all| all.iter().map(|h| h["name"].as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(headers, expected_headers);
        let mirrors: Vec<Value> = action
            .request_mirror_policies
            .iter()
            .map(|policy| {
                let mut value = json!({"cluster": policy.cluster, "disable_shadow_host_suffix_append": policy.disable_shadow_host_suffix_append});
                if let Some(fraction) = &policy.runtime_fraction {
                    let numerator = fraction.default_value.as_ref().unwrap().numerator;
                    value["runtime_fraction"] = json!({"default_value": {"numerator": numerator, "denominator": "MILLION"}});
                }
                value
            })
            .collect();
        assert_eq!(
            Value::Array(mirrors),
            expected["route"]["request_mirror_policies"].clone().as_array().cloned().map_or(json!([]), Value::Array)
        );
    }
}

#[test]
fn the_filter_configuration_is_the_ecds_file_s_with_its_code_from_serve() {
    let build = build();
    let module = ModuleRef::of(b"module bytes");
    assert_eq!(module.sha256.len(), 64);
    let served = resources(&build.manifests, &build.table, Some(&module));
    let config: TypedExtensionConfig = decoded(&served, EXTENSION_CONFIG_TYPE, FILTER_NAME);
    let table_json = listeners::table_json(&build.table).unwrap();
    assert!(table_json.contains(r#""destination_header":true"#));
    let expected = ecds::extension_configs("/x/module.wasm", &table_json)["resources"][0].clone();
    assert_eq!(json!(config.name), expected["name"]);
    let any = config.typed_config.unwrap();
    assert_eq!(json!(any.type_url), expected["typed_config"]["@type"]);
    let plugin = Wasm::decode(any.value.as_slice()).unwrap().config.unwrap();
    let expected = &expected["typed_config"]["config"];
    assert_eq!(json!(plugin.name), expected["name"]);
    assert_eq!(json!(plugin.root_id), expected["root_id"]);
    let policy = envoy_types::pb::envoy::extensions::wasm::v3::FailurePolicy::try_from(plugin.failure_policy).unwrap();
    assert_eq!(json!(policy.as_str_name()), expected["failure_policy"]);
    let backoff = plugin.reload_config.unwrap().backoff.unwrap();
    assert_eq!(json!(duration_text(&backoff.base_interval.unwrap())), expected["reload_config"]["backoff"]["base_interval"]);
    assert_eq!(json!(duration_text(&backoff.max_interval.unwrap())), expected["reload_config"]["backoff"]["max_interval"]);
    let configuration = plugin.configuration.unwrap();
    assert_eq!(json!(configuration.type_url), expected["configuration"]["@type"]);
    assert_eq!(StringValue::decode(configuration.value.as_slice()).unwrap().value, table_json);
    let Some(plugin_config::Vm::VmConfig(vm)) = plugin.vm else { panic!() };
    assert_eq!(json!(vm.vm_id), expected["vm_config"]["vm_id"]);
    assert_eq!(json!(vm.runtime), expected["vm_config"]["runtime"]);
    let Some(async_data_source::Specifier::Remote(remote)) = vm.code.unwrap().specifier else { panic!("remote code") };
    assert_eq!(remote.sha256, module.sha256);
    let uri = remote.http_uri.unwrap();
    assert_eq!(uri.uri, format!("http://{XDS_CLUSTER}/modules/{}", module.file_name));
    assert_eq!(uri.http_upstream_type, Some(http_uri::HttpUpstreamType::Cluster(XDS_CLUSTER.to_owned())));
}

#[test]
fn without_a_module_there_is_no_filter_configuration() {
    let build = build();
    let served = resources(&build.manifests, &build.table, None);
    assert!(!served.by_type.contains_key(EXTENSION_CONFIG_TYPE));
    assert!(served.by_type.contains_key(LISTENER_TYPE) && served.by_type.contains_key(CLUSTER_TYPE));
}
