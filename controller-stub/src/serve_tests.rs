//! `serve` from a manifests directory to a real ADS client.

use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::util::pack_any;

use super::*;
use crate::xds::ads::tests::Client;
use crate::xds::LISTENER_TYPE;

#[test]
fn loopback_addresses_are_served_and_others_refused() {
    let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
    assert_eq!(xds_address("127.0.0.1:15010", false), Ok(addr("127.0.0.1:15010")));
    assert_eq!(xds_address("[::1]:15010", false), Ok(addr("[::1]:15010")));
    assert_eq!(xds_address("localhost:15011", false), Ok(addr("127.0.0.1:15011")));
    assert_eq!(xds_address("0.0.0.0:15010", false), Err(AddressError::NotLoopback(addr("0.0.0.0:15010"))));
    assert_eq!(xds_address("10.1.2.3:15010", false), Err(AddressError::NotLoopback(addr("10.1.2.3:15010"))));
    assert_eq!(xds_address("0.0.0.0:15010", true), Ok(addr("0.0.0.0:15010")));
    for bad in ["15010", "localhost", "localhost:x", "example.com:15010", ""] {
        assert_eq!(xds_address(bad, true), Err(AddressError::Invalid(bad.to_owned())), "{bad}");
    }
    let refused = xds_address("0.0.0.0:15010", false).unwrap_err().to_string();
    assert!(refused.contains("not a loopback address") && refused.contains("--xds-allow-remote"), "{refused}");
}

fn service(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default
spec:
  clusterIP: {ip}
  ports:
  - name: grpc
    port: 8080
"
    )
}

/// A Listener per Service, named like a gRPC target, tagged with the client's namespace and
/// the Service's ClusterIP: enough to see which build, and which namespace, a client was served.
fn listeners(manifests: &Manifests, _table: &TableDocument, audience: &Audience, _module: Option<&ModuleRef>) -> Resources {
    let namespace = &audience.namespace;
    let mut resources = Resources::default();
    for service in &manifests.services {
        let name = format!("{}.{}.svc.cluster.local:8080", service.meta.name, service.meta.namespace);
        let stat_prefix = format!("{namespace} {}", service.cluster_ips.join(","));
        let listener = Listener { name: name.clone(), stat_prefix, ..Default::default() };
        resources.by_type.entry(LISTENER_TYPE).or_default().insert(name, pack_any(listener));
    }
    resources
}

fn decoded(response: &envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse) -> Vec<Listener> {
    use prost::Message;
    response.resources.iter().map(|any| Listener::decode(any.value.as_slice()).unwrap()).collect()
}

fn names(response: &envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse) -> Vec<String> {
    decoded(response).into_iter().map(|listener| listener.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_good_build_is_pushed_as_a_new_version_and_a_broken_manifest_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("echo.yaml"), service("echo", "10.0.0.1")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::new(|_: &str| {});
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let dir = dir.path().to_path_buf();
        async move {
            serve(&dir, listener, Arc::new(listeners), Modules::default(), None, log, async {
                let _ = stopped.await;
            })
            .await
        }
    });

    let mut client = Client::connect(addr, "client-a", Some("team-a")).await;
    let first = client.subscribe(LISTENER_TYPE, &[]).await;
    assert_eq!(first.version_info, "1");
    assert_eq!(names(&first), ["echo.default.svc.cluster.local:8080"]);
    assert_eq!(decoded(&first)[0].stat_prefix, "team-a 10.0.0.1", "the client's namespace was asked for");
    client.ack(&first, &[]).await;

    // A new Service: version 2, pushed.
    std::fs::write(dir.path().join("other.yaml"), service("other", "10.0.0.2")).unwrap();
    let second = client.recv().await;
    assert_eq!(second.version_info, "2");
    assert_eq!(names(&second), ["echo.default.svc.cluster.local:8080", "other.default.svc.cluster.local:8080"]);
    client.ack(&second, &[]).await;

    // A broken edit of it (were it served, its Listener would change): its last good version
    // stands in, so what the client sees is unchanged and nothing is pushed.
    std::fs::write(dir.path().join("other.yaml"), service("other", "not-an-ip")).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.silent().await;

    // Deleting it removes its Listener.
    std::fs::remove_file(dir.path().join("other.yaml")).unwrap();
    let third = client.recv().await;
    assert_eq!(names(&third), ["echo.default.svc.cluster.local:8080"]);
    assert!(third.version_info.parse::<u64>().unwrap() > 2, "{}", third.version_info);

    stop.send(()).unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap(), Ok(()));
}

/// `serve --out OUT` writes each route's status to OUT/status/ as `sync` does, on every build.
#[test]
fn serve_writes_each_routes_status_like_sync() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifests = format!(
        "{}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: gone}}]
  rules:
  - backendRefs: [{{name: gone, port: 80}}]
",
        service("echo", "10.96.0.10")
    );
    std::fs::write(dir.path().join("m.yaml"), manifests).unwrap();
    let mut status = StatusFiles::new(out.path().join(STATUS_DIR));
    let resources: ResourcesFn =
        Arc::new(|_: &Manifests, _: &TableDocument, _: &Audience, _: Option<&ModuleRef>| Resources::default());
    let snapshot = cycle(dir.path(), &mut LastGood::default(), &resources, &mut Modules::default(), Some(&mut status), 1);
    assert!(snapshot.is_some());
    let text = std::fs::read_to_string(out.path().join("status/httproute_default_r.yaml")).unwrap();
    assert!(text.contains("reason: NoMatchingParent") && text.contains("status: \"False\""), "{text}");
}
