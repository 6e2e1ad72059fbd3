//! The ADS server against a real tonic ADS client over a loopback socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{value, Struct, Value};
use envoy_types::util::pack_any;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::*;

const LDS: &str = LISTENER_TYPE;
const RDS: &str = ROUTE_TYPE;
const CDS: &str = CLUSTER_TYPE;
const EDS: &str = ENDPOINT_TYPE;

/// A client's view of a namespace: two Services, `echo` and `other`, each with a Listener, a
/// RouteConfiguration, a Cluster and its endpoints. `tag` stands for the content of one
/// version; the names hold the namespace so that tests can tell namespaces apart.
fn world(namespace: &str, tag: &str) -> Resources {
    world_of(namespace, tag, &["echo", "other"])
}

fn world_of(namespace: &str, tag: &str, services: &[&str]) -> Resources {
    let mut resources = Resources::default();
    for service in services {
        let mut add = |type_url: &'static str, name: String, any: Any| {
            resources.by_type.entry(type_url).or_default().insert(name, any);
        };
        add(LDS, listener_name(service, namespace), listener(service, namespace, tag));
        add(RDS, route_name(service), route(service, tag));
        add(CDS, cluster_name(service, namespace), cluster(service, namespace, tag));
        add(EDS, cluster_name(service, namespace), endpoints(service, namespace, tag));
    }
    resources
}

fn listener_name(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local:8080")
}
fn route_name(service: &str) -> String {
    format!("{service}/routes")
}
fn cluster_name(service: &str, namespace: &str) -> String {
    format!("outbound|8080||{service}.{namespace}.svc.cluster.local")
}
fn listener(service: &str, namespace: &str, tag: &str) -> Any {
    pack_any(Listener { name: listener_name(service, namespace), stat_prefix: tag.to_owned(), ..Default::default() })
}
fn route(service: &str, tag: &str) -> Any {
    let virtual_host = VirtualHost { name: tag.to_owned(), ..Default::default() };
    pack_any(RouteConfiguration { name: route_name(service), virtual_hosts: vec![virtual_host], ..Default::default() })
}
fn cluster(service: &str, namespace: &str, tag: &str) -> Any {
    pack_any(Cluster { name: cluster_name(service, namespace), alt_stat_name: tag.to_owned(), ..Default::default() })
}
fn endpoints(service: &str, namespace: &str, tag: &str) -> Any {
    let locality =
        LocalityLbEndpoints { locality: Some(Locality { zone: tag.to_owned(), ..Default::default() }), ..Default::default() };
    pack_any(ClusterLoadAssignment {
        cluster_name: cluster_name(service, namespace),
        endpoints: vec![locality],
        ..Default::default()
    })
}

/// A server on a loopback port, its snapshot channel, and what it logged.
struct Server {
    addr: SocketAddr,
    snapshots: watch::Sender<Arc<Snapshot>>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(snapshot: Snapshot) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (snapshots, receiver) = watch::channel(Arc::new(snapshot));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let log: Log = Arc::new(move |line: &str| sink.lock().unwrap().push(line.to_owned()));
        tokio::spawn(AdsServer::new(receiver, log).serve(listener, std::future::pending()));
        Server { addr, snapshots, logs }
    }

    /// Serves `tag` in every namespace, as version `version`.
    fn publish(&self, version: u64, tag: &'static str) {
        self.snapshots.send_replace(Arc::new(Snapshot::new(version, move |audience| world(&audience.namespace, tag))));
    }

    /// Waits up to 5 s for a log line containing `text`.
    async fn logged(&self, text: &str) -> String {
        for _ in 0..500 {
            if let Some(line) = self.logs.lock().unwrap().iter().find(|line| line.contains(text)) {
                return line.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no log line with {text:?} in {:?}", self.logs.lock().unwrap());
    }
}

fn tagged(tag: &'static str) -> Snapshot {
    Snapshot::new(1, move |audience| world(&audience.namespace, tag))
}

/// A proxyless client's side of one ADS stream.
pub(crate) struct Client {
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
    /// Sent with the first request only, as gRPC does (A27).
    node: Option<Node>,
}

impl Client {
    pub(crate) async fn connect(server: SocketAddr, id: &str, namespace: Option<&str>) -> Client {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{server}")).await.unwrap();
        let (requests, queue) = mpsc::channel(16);
        let responses = client.stream_aggregated_resources(ReceiverStream::new(queue)).await.unwrap().into_inner();
        let metadata = namespace.map(|namespace| Struct {
            fields: [(NAMESPACE_KEY.to_owned(), Value { kind: Some(value::Kind::StringValue(namespace.to_owned())) })].into(),
        });
        Client { requests, responses, node: Some(Node { id: id.to_owned(), metadata, ..Default::default() }) }
    }

    pub(crate) async fn send(
        &mut self,
        type_url: &str,
        names: &[&str],
        answered: Option<&DiscoveryResponse>,
        error: Option<&str>,
    ) {
        let (version_info, response_nonce) = match answered {
            Some(response) if error.is_none() => (response.version_info.clone(), response.nonce.clone()),
            Some(response) => (String::new(), response.nonce.clone()),
            None => (String::new(), String::new()),
        };
        let error_detail = error.map(|message| envoy_types::pb::google::rpc::Status {
            code: tonic::Code::InvalidArgument as i32,
            message: message.to_owned(),
            details: Vec::new(),
        });
        let request = DiscoveryRequest {
            node: self.node.take(),
            type_url: type_url.to_owned(),
            resource_names: names.iter().map(|name| name.to_string()).collect(),
            version_info,
            response_nonce,
            error_detail,
            ..Default::default()
        };
        self.requests.send(request).await.unwrap();
    }

    /// The first request of a type, and its response.
    pub(crate) async fn subscribe(&mut self, type_url: &str, names: &[&str]) -> DiscoveryResponse {
        self.send(type_url, names, None, None).await;
        let response = self.recv().await;
        assert_eq!(response.type_url, type_url);
        response
    }

    pub(crate) async fn ack(&mut self, response: &DiscoveryResponse, names: &[&str]) {
        self.send(&response.type_url, names, Some(response), None).await;
    }

    pub(crate) async fn nack(&mut self, response: &DiscoveryResponse, names: &[&str], error: &str) {
        self.send(&response.type_url, names, Some(response), Some(error)).await;
    }

    pub(crate) async fn recv(&mut self) -> DiscoveryResponse {
        match tokio::time::timeout(Duration::from_secs(5), self.responses.message()).await {
            Ok(Ok(Some(response))) => response,
            other => panic!("expected a response within 5 s, got {other:?}"),
        }
    }

    /// Nothing arrives for 300 ms.
    pub(crate) async fn silent(&mut self) {
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(300), self.responses.message()).await {
            panic!("expected no response, got {message:?}");
        }
    }

    /// Subscribes to all four types as gRPC does (LDS, RDS, CDS, EDS, by name), ACKing each.
    async fn subscribe_all(&mut self, namespace: &str) -> Vec<DiscoveryResponse> {
        let subscriptions = [
            (LDS, listener_name("echo", namespace)),
            (RDS, route_name("echo")),
            (CDS, cluster_name("echo", namespace)),
            (EDS, cluster_name("echo", namespace)),
        ];
        let mut responses = Vec::new();
        for (type_url, name) in &subscriptions {
            let response = self.subscribe(type_url, &[name]).await;
            self.ack(&response, &[name]).await;
            responses.push(response);
        }
        responses
    }
}

#[tokio::test]
async fn the_initial_subscription_gets_the_current_resources() {
    let server = Server::start(tagged("one")).await;
    let mut client = Client::connect(server.addr, "client-a", Some("default")).await;
    let listeners = client.subscribe(LDS, &[]).await;
    assert_eq!(listeners.version_info, "1");
    assert!(!listeners.nonce.is_empty());
    assert_eq!(listeners.resources, [listener("echo", "default", "one"), listener("other", "default", "one")]);
    let routes = client.subscribe(RDS, &["echo/routes"]).await;
    assert_eq!(routes.resources, [route("echo", "one")]);
    let clusters = client.subscribe(CDS, &[]).await;
    assert_eq!(clusters.resources, [cluster("echo", "default", "one"), cluster("other", "default", "one")]);
    let name = cluster_name("other", "default");
    let endpoints_ = client.subscribe(EDS, &[&name]).await;
    assert_eq!(endpoints_.resources, [endpoints("other", "default", "one")]);
    let nonces = [&listeners.nonce, &routes.nonce, &clusters.nonce, &endpoints_.nonce];
    assert!(nonces.iter().enumerate().all(|(i, n)| !nonces[..i].contains(n)), "fresh nonces: {nonces:?}");
    server.logged("node client-a connected from 127.0.0.1:").await;
}

#[tokio::test]
async fn an_ack_gets_nothing_more() {
    let server = Server::start(tagged("one")).await;
    let mut client = Client::connect(server.addr, "client-a", None).await;
    client.subscribe_all("default").await;
    client.silent().await;
}

#[tokio::test]
async fn a_new_snapshot_is_pushed_cds_eds_lds_rds_with_a_new_version() {
    let server = Server::start(tagged("one")).await;
    let mut client = Client::connect(server.addr, "client-a", None).await;
    let first = client.subscribe_all("default").await;
    server.publish(2, "two");
    let mut pushed = Vec::new();
    for _ in 0..4 {
        pushed.push(client.recv().await);
    }
    let types: Vec<&str> = pushed.iter().map(|r| r.type_url.as_str()).collect();
    assert_eq!(types, [CDS, EDS, LDS, RDS]);
    assert!(pushed.iter().all(|r| r.version_info == "2"));
    assert!(pushed.iter().all(|r| first.iter().all(|f| f.nonce != r.nonce)));
    assert_eq!(pushed[0].resources, [cluster("echo", "default", "two")]);
    assert_eq!(pushed[1].resources, [endpoints("echo", "default", "two")]);
    assert_eq!(pushed[2].resources, [listener("echo", "default", "two")]);
    assert_eq!(pushed[3].resources, [route("echo", "two")]);
    // ACKed, nothing more; a snapshot that changes nothing this client sees sends nothing.
    for response in &pushed {
        let name = match response.type_url.as_str() {
            LDS => listener_name("echo", "default"),
            RDS => route_name("echo"),
            _ => cluster_name("echo", "default"),
        };
        client.ack(response, &[&name]).await;
    }
    server.publish(3, "two");
    client.silent().await;
}

#[tokio::test]
async fn a_nack_is_logged_and_the_same_version_is_not_sent_again() {
    let server = Server::start(tagged("one")).await;
    let mut client = Client::connect(server.addr, "client-a", None).await;
    let listeners = client.subscribe(LDS, &[]).await;
    client.ack(&listeners, &[]).await;
    // The ACK is read before the push (were it read after, its nonce would be stale).
    client.silent().await;
    server.publish(2, "bad");
    let bad = client.recv().await;
    assert_eq!(bad.version_info, "2");
    client.nack(&bad, &[], "Listener echo.default.svc.cluster.local:8080: expected at least one HTTP filter").await;
    let line = server.logged("NACK from node client-a:").await;
    assert_eq!(
        line,
        "NACK from node client-a: Listener echo.default.svc.cluster.local:8080: expected at least one HTTP filter \
         (Listener version 2; it keeps version 1)"
    );
    client.silent().await;
    // A new version with the same content the client refused: not sent again.
    server.publish(3, "bad");
    client.silent().await;
    // A fix is.
    server.publish(4, "fixed");
    let fixed = client.recv().await;
    assert_eq!(fixed.version_info, "4");
    assert_eq!(fixed.resources, [listener("echo", "default", "fixed"), listener("other", "default", "fixed")]);
}

#[tokio::test]
async fn named_subscriptions_get_only_those_names_and_a_change_of_names_is_answered() {
    let server = Server::start(tagged("one")).await;
    let mut client = Client::connect(server.addr, "client-a", None).await;
    let routes = client.subscribe(RDS, &["echo/routes", "missing/routes"]).await;
    assert_eq!(routes.resources, [route("echo", "one")]);
    let echo = cluster_name("echo", "default");
    let other = cluster_name("other", "default");
    let eds = client.subscribe(EDS, &[&echo]).await;
    assert_eq!(eds.resources, [endpoints("echo", "default", "one")]);
    // The ACK widens the subscription (A74: a new cluster); it gets the current version.
    server.publish(2, "two");
    let (pushed_eds, pushed_rds) = (client.recv().await, client.recv().await);
    assert_eq!((pushed_eds.type_url.as_str(), pushed_rds.type_url.as_str()), (EDS, RDS));
    client.ack(&pushed_eds, &[&echo, &other]).await;
    let widened = client.recv().await;
    assert_eq!(widened.version_info, "2");
    assert_eq!(widened.resources, [endpoints("echo", "default", "two"), endpoints("other", "default", "two")]);
    client.ack(&widened, &[&echo, &other]).await;
    client.ack(&pushed_rds, &["echo/routes", "missing/routes"]).await;
    client.silent().await;
}

#[tokio::test]
async fn a_stale_nonce_is_ignored_and_the_newer_ack_answered() {
    let server = Server::start(tagged("one")).await;
    let mut client = Client::connect(server.addr, "client-a", None).await;
    let old = client.subscribe(RDS, &["echo/routes"]).await;
    server.publish(2, "two");
    let new = client.recv().await;
    // The answer to the old response comes after the push: ignored, names and all.
    client.ack(&old, &["echo/routes", "other/routes"]).await;
    client.silent().await;
    // The client answers the newer response with the same names: they differ from what that
    // response covered, so they are answered.
    client.ack(&new, &["echo/routes", "other/routes"]).await;
    let widened = client.recv().await;
    assert_eq!(widened.resources, [route("echo", "two"), route("other", "two")]);
}

#[tokio::test]
async fn wildcard_lds_and_cds_get_everything_and_lose_what_no_longer_exists() {
    let server = Server::start(tagged("one")).await;
    let mut client = Client::connect(server.addr, "envoy", None).await;
    let clusters = client.subscribe(CDS, &[]).await;
    client.ack(&clusters, &[]).await;
    let listeners = client.subscribe(LDS, &["*"]).await;
    assert_eq!(listeners.resources.len(), 2);
    client.ack(&listeners, &["*"]).await;
    server.snapshots.send_replace(Arc::new(Snapshot::new(2, |audience| world_of(&audience.namespace, "one", &["echo"]))));
    let (clusters, listeners) = (client.recv().await, client.recv().await);
    assert_eq!(clusters.resources, [cluster("echo", "default", "one")]);
    assert_eq!(listeners.resources, [listener("echo", "default", "one")]);
    // RDS and EDS are never wildcard: no names, nothing.
    let routes = client.subscribe(RDS, &[]).await;
    assert!(routes.resources.is_empty());
}

#[tokio::test]
async fn the_node_namespace_selects_the_resources() {
    let server = Server::start(tagged("one")).await;
    let mut team_a = Client::connect(server.addr, "client-a", Some("team-a")).await;
    let mut unnamed = Client::connect(server.addr, "client-b", None).await;
    let a = team_a.subscribe(LDS, &[]).await;
    assert_eq!(a.resources, [listener("echo", "team-a", "one"), listener("other", "team-a", "one")]);
    let b = unnamed.subscribe(LDS, &[]).await;
    assert_eq!(b.resources, [listener("echo", "default", "one"), listener("other", "default", "one")]);
    server.logged("node client-a connected from 127.0.0.1:").await;
    assert!(server.logged("node client-a connected").await.ends_with("(namespace team-a)"));
    assert!(server.logged("node client-b connected").await.ends_with("(namespace default)"));
}

#[tokio::test]
async fn two_clients_get_each_push_and_a_late_client_gets_the_current_state() {
    let server = Server::start(tagged("one")).await;
    let mut a = Client::connect(server.addr, "client-a", None).await;
    let mut b = Client::connect(server.addr, "client-b", Some("team-b")).await;
    a.subscribe_all("default").await;
    b.subscribe_all("team-b").await;
    server.publish(2, "two");
    for (client, namespace) in [(&mut a, "default"), (&mut b, "team-b")] {
        let clusters = client.recv().await;
        assert_eq!((clusters.version_info.as_str(), clusters.resources.clone()), ("2", vec![cluster("echo", namespace, "two")]));
        for _ in 0..3 {
            assert_eq!(client.recv().await.version_info, "2");
        }
    }
    let mut late = Client::connect(server.addr, "client-c", None).await;
    let responses = late.subscribe_all("default").await;
    assert!(responses.iter().all(|r| r.version_info == "2"));
    assert_eq!(responses[2].resources, [cluster("echo", "default", "two")]);
    drop(a);
    server.logged("node client-a disconnected").await;
}

#[tokio::test]
async fn a_malformed_request_is_logged_and_the_stream_goes_on() {
    let server = Server::start(tagged("one")).await;
    let mut client = Client::connect(server.addr, "client-a", None).await;
    client.send("", &["x"], None, None).await;
    server.logged("node client-a: a request without type_url, ignored").await;
    let listeners = client.subscribe(LDS, &[]).await;
    assert_eq!(listeners.resources.len(), 2);
}

#[tokio::test]
async fn delta_xds_is_unimplemented() {
    let server = Server::start(tagged("one")).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", server.addr)).await.unwrap();
    let requests = tokio_stream::iter([DeltaDiscoveryRequest::default()]);
    let status = client.delta_aggregated_resources(requests).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn shutdown_ends_the_open_streams_with_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_snapshots, receiver) = watch::channel(Arc::new(tagged("one")));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(AdsServer::new(receiver, Arc::new(|_: &str| {})).serve(listener, async {
        let _ = stopped.await;
    }));
    let mut client = Client::connect(addr, "client-a", None).await;
    client.subscribe(LDS, &[]).await;
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), client.responses.message()).await.unwrap();
    assert_eq!(ended.unwrap_err().code(), tonic::Code::Unavailable);
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn the_last_snapshot_stays_served_when_no_more_come() {
    let server = Server::start(tagged("one")).await;
    let Server { addr, snapshots, logs, .. } = server;
    drop(snapshots);
    let mut client = Client::connect(addr, "client-a", None).await;
    let listeners = client.subscribe(LDS, &[]).await;
    assert_eq!(listeners.resources.len(), 2);
    client.ack(&listeners, &[]).await;
    client.silent().await;
    assert!(!logs.lock().unwrap().iter().any(|line| line.contains("disconnected")));
}

#[test]
fn a_snapshot_computes_each_namespace_once() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let snapshot = Snapshot::new(7, move |audience| {
        seen.lock().unwrap().push(audience.namespace.clone());
        world(&audience.namespace, "one")
    });
    let first = snapshot.resources(&Audience::grpc("team-a"));
    let again = snapshot.resources(&Audience::grpc("team-a"));
    snapshot.resources(&Audience::grpc("team-b"));
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(*calls.lock().unwrap(), ["team-a", "team-b"]);
}

#[test]
fn envoy_is_told_from_grpc_by_node_metadata_else_user_agent() {
    use envoy_types::pb::google::protobuf::{value::Kind, Struct, Value};
    let node = |agent: &str, metadata: &[(&str, &str)]| Node {
        user_agent_name: agent.to_owned(),
        metadata: Some(Struct {
            fields: metadata
                .iter()
                .map(|(key, value)| ((*key).to_owned(), Value { kind: Some(Kind::StringValue((*value).to_owned())) }))
                .collect(),
        }),
        ..Default::default()
    };
    let of = |node: &Node| Audience::of(Some(node));
    assert_eq!(of(&node("envoy", &[])).data_plane, DataPlane::Envoy);
    assert_eq!(of(&node("gRPC Python", &[("NAMESPACE", "a")])), Audience::grpc("a"));
    let envoy = of(&node("", &[(DATA_PLANE_KEY, "envoy"), ("NAMESPACE", "team-a")]));
    assert_eq!((envoy.data_plane, envoy.namespace.as_str()), (DataPlane::Envoy, "team-a"));
    assert_eq!(of(&node("envoy", &[(DATA_PLANE_KEY, "grpc")])).data_plane, DataPlane::Grpc, "the metadata wins");
    assert_eq!(Audience::of(None), Audience::grpc(DEFAULT_NAMESPACE));
}
