//! A state-of-the-world ADS server (`StreamAggregatedResources`), the control plane of proxyless
//! gRPC clients (gRFC A27) and of Envoy.
//!
//! The rules followed are the xDS protocol's ("xDS REST and gRPC protocol" in Envoy's API docs:
//! *ACK/NACK and resource type instance version*, *When to send an update*, *Resource
//! warming*, *How the client specifies what resources to return*):
//!
//! - Each response carries the snapshot's `version_info` and a fresh `nonce`. A request that
//!   quotes the last nonce of its type is that response's ACK, or its NACK when it has
//!   `error_detail`; one that quotes an older nonce is stale and ignored whole, since the client
//!   will answer the newer response with its then current subscription.
//! - An ACK or NACK gets a response only when its `resource_names` differ from those the
//!   answered response covered (a subscription change); the new names get the current version.
//! - A NACKed version is not sent again: a type is pushed on a new snapshot only when what the
//!   client would receive differs from what it was last sent. The client keeps its last good
//!   version (A27), and the NACK is logged with the client's node id.
//! - LDS and CDS with no names (or `*`) are wildcard subscriptions: every resource of the type.
//!   Other types get only the names asked for. Each SotW response holds every subscribed
//!   resource that exists, so a resource that no longer exists is dropped from the next one
//!   (for LDS and CDS that removes it on the client).
//! - On a change, types are pushed CDS, EDS, LDS, RDS: clusters and their endpoints exist
//!   before the routes that name them (make-before-break, *Eventual consistency
//!   considerations*).
//!
//! The client's namespace, which selects its resources, is the node metadata key `NAMESPACE`
//! as Istio's proxyless bootstrap sets it; gRPC sends its node in the first request only (A27).
//! Whether the client is Envoy or a proxyless gRPC client ([`DataPlane`]) selects their shape:
//! the node metadata key `MESHROUTE_DATA_PLANE` (`envoy` in the bootstrap `sync --xds` writes),
//! else the node's `user_agent_name`, which Envoy sets to `envoy` and gRPC to `gRPC <language>`
//! (`config.core.v3.Node`: "Free-form string that identifies the entity requesting config.
//! E.g. "envoy" or "grpc"").
//! Delta xDS (`DeltaAggregatedResources`) answers UNIMPLEMENTED: gRPC speaks SotW.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::Any;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Resources, CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE};

/// The node metadata key naming the client's namespace (Istio's proxyless gRPC bootstrap).
pub const NAMESPACE_KEY: &str = "NAMESPACE";
/// The namespace of a client whose node does not name one.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The node metadata key naming the client's data plane, `envoy` or `grpc`.
pub const DATA_PLANE_KEY: &str = "MESHROUTE_DATA_PLANE";

/// What kind of client a stream serves: each gets the resources in its own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataPlane {
    /// A proxyless gRPC client (gRFC A27): API listeners, RDS, EDS.
    Grpc,
    /// Envoy: listeners on the Service addresses, clusters, the filter by ECDS.
    Envoy,
}

/// Whom a set of resources is for: clients with the same data plane and namespace get the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Audience {
    pub data_plane: DataPlane,
    pub namespace: String,
}

impl Audience {
    #[cfg(test)]
    pub fn grpc(namespace: &str) -> Audience {
        Audience { data_plane: DataPlane::Grpc, namespace: namespace.to_owned() }
    }

    /// From the node of a stream's first request.
    fn of(node: Option<&Node>) -> Audience {
        let data_plane = match metadata_string(node, DATA_PLANE_KEY) {
            Some("envoy") => DataPlane::Envoy,
            Some(_) => DataPlane::Grpc,
            None if node.is_some_and(|node| node.user_agent_name == "envoy") => DataPlane::Envoy,
            None => DataPlane::Grpc,
        };
        let namespace = metadata_string(node, NAMESPACE_KEY).unwrap_or(DEFAULT_NAMESPACE).to_owned();
        Audience { data_plane, namespace }
    }
}
/// Type URLs one stream may subscribe to; requests for more are ignored, so that a client
/// cannot grow the server's memory without bound.
const MAX_TYPES: usize = 16;
/// Responses queued for one client before the stream waits for it to read.
const QUEUE: usize = 16;

/// Where log lines go: stderr in `serve`, a buffer in tests.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything the server serves at one version: each audience's [`Resources`], computed the
/// first time a client of that audience asks and shared by every stream after that; and the
/// files served over plain HTTP `GET` on the same port (the filter module Envoy fetches).
pub struct Snapshot {
    version: u64,
    source: Box<dyn Fn(&Audience) -> Resources + Send + Sync>,
    by_audience: Mutex<HashMap<Audience, Arc<Resources>>>,
    files: BTreeMap<String, bytes::Bytes>,
}

impl Snapshot {
    /// `source` gives an audience's resources; it is called at most once per audience.
    pub fn new(version: u64, source: impl Fn(&Audience) -> Resources + Send + Sync + 'static) -> Self {
        Snapshot { version, source: Box::new(source), by_audience: Mutex::default(), files: BTreeMap::new() }
    }

    /// Also serves `GET path` with `contents`.
    pub fn with_file(mut self, path: String, contents: bytes::Bytes) -> Self {
        self.files.insert(path, contents);
        self
    }

    /// The file served at `path`, if any.
    pub fn file(&self, path: &str) -> Option<bytes::Bytes> {
        self.files.get(path).cloned()
    }

    /// Nothing for anyone, e.g. before the manifests could be read.
    pub fn empty(version: u64) -> Self {
        Snapshot::new(version, |_| Resources::default())
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn resources(&self, audience: &Audience) -> Arc<Resources> {
        // A poisoned lock only means another stream's source call panicked; the map is intact.
        let mut by_audience = self.by_audience.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(resources) = by_audience.get(audience) {
            return resources.clone();
        }
        let resources = Arc::new((self.source)(audience));
        by_audience.insert(audience.clone(), resources.clone());
        resources
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("version", &self.version).finish_non_exhaustive()
    }
}

/// The ADS service. Every stream follows `snapshots`: each new value is pushed to every open
/// stream, as a new version, where it changes what that client is subscribed to.
#[derive(Clone)]
pub struct AdsServer {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    log: Log,
    /// Set when the server stops: every stream then ends with UNAVAILABLE, as a graceful
    /// shutdown waits for open streams, and ADS streams never end on their own.
    stopping: Arc<watch::Sender<bool>>,
}

impl AdsServer {
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, log: Log) -> Self {
        AdsServer { snapshots, log, stopping: Arc::new(watch::Sender::new(false)) }
    }

    /// Serves ADS on `listener` until `shutdown` completes, then ends every stream (clients
    /// reconnect, to this server's successor, and keep their resources meanwhile: A27).
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), tonic::transport::Error> {
        let stopping = self.stopping.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.send_replace(true);
        };
        let files = WithFiles { snapshots: self.snapshots.clone(), inner: AggregatedDiscoveryServiceServer::new(self) };
        tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(
                files,
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
    }
}

/// The ADS service, and `GET` of the snapshot's files on the same port (HTTP/2, as Envoy's
/// xDS cluster speaks it): Envoy fetches the filter module through the cluster it already has
/// for xDS, so the module needs no address, cluster or exposure rule of its own.
#[derive(Clone)]
struct WithFiles<S> {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    inner: S,
}

type HttpResponse = http::Response<tonic::body::Body>;

impl<S> tower_service::Service<http::Request<tonic::body::Body>> for WithFiles<S>
where
    S: tower_service::Service<http::Request<tonic::body::Body>, Response = HttpResponse, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.method() != http::Method::GET {
            return Box::pin(self.inner.call(request));
        }
        let file = self.snapshots.borrow().file(request.uri().path());
        let response = match file {
            Some(contents) => http::Response::builder()
                .header(http::header::CONTENT_TYPE, "application/wasm")
                .body(tonic::body::Body::new(http_body_util::Full::new(contents))),
            None => http::Response::builder().status(http::StatusCode::NOT_FOUND).body(tonic::body::Body::empty()),
        };
        // Neither builder can fail: a fixed status and header.
        let response = response.unwrap_or_else(|_| http::Response::new(tonic::body::Body::empty()));
        Box::pin(std::future::ready(Ok(response)))
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request.remote_addr();
        let (responses, queue) = mpsc::channel(QUEUE);
        let stream = run_stream(
            request.into_inner(),
            self.snapshots.clone(),
            self.stopping.subscribe(),
            responses,
            self.log.clone(),
            peer,
        );
        tokio::spawn(stream);
        Ok(Response::new(ReceiverStream::new(queue)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented("meshroute serves state-of-the-world ADS (StreamAggregatedResources) only"))
    }
}

/// One client's stream, from its first request until either side ends it.
async fn run_stream(
    mut requests: Streaming<DiscoveryRequest>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    mut stopping: watch::Receiver<bool>,
    responses: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    log: Log,
    peer: Option<SocketAddr>,
) {
    let mut client: Option<Client> = None;
    // Whether new snapshots may still come; when their sender is gone, the last one stays.
    let mut updating = true;
    let ended = loop {
        let outgoing = tokio::select! {
            request = requests.message() => match request {
                Ok(Some(request)) => {
                    let client = client.get_or_insert_with(|| {
                        let client = Client::new(request.node.as_ref());
                        let from = peer.map(|peer| format!(" from {peer}")).unwrap_or_default();
                        let envoy = if client.audience.data_plane == DataPlane::Envoy { ", Envoy" } else { "" };
                        log(&format!("node {} connected{from} (namespace {}{envoy})", client.node_id, client.audience.namespace));
                        client
                    });
                    let snapshot = snapshots.borrow_and_update().clone();
                    client.on_request(request, &snapshot, &log).into_iter().collect()
                }
                Ok(None) => break None,
                Err(status) => break Some(status.message().to_owned()),
            },
            changed = snapshots.changed(), if updating => match (changed, &mut client) {
                (Err(_), _) => {
                    updating = false;
                    Vec::new()
                }
                (Ok(()), Some(client)) => client.on_snapshot(&snapshots.borrow_and_update().clone()),
                (Ok(()), None) => Vec::new(),
            },
            () = responses.closed() => break None,
            // The guard `wait_for` returns must not be held across the send.
            () = async { drop(stopping.wait_for(|stopping| *stopping).await) } => {
                let _ = responses.send(Err(Status::unavailable("the xDS server is shutting down"))).await;
                break Some("the server is shutting down".to_owned());
            }
        };
        let mut gone = false;
        for response in outgoing {
            if responses.send(Ok(response)).await.is_err() {
                gone = true;
                break;
            }
        }
        if gone {
            break None;
        }
    };
    if let Some(client) = client {
        match ended {
            Some(reason) => log(&format!("node {} disconnected: {reason}", client.node_id)),
            None => log(&format!("node {} disconnected", client.node_id)),
        }
    }
}

/// The resource names a client asked for, of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subscription {
    /// Every resource of the type (LDS and CDS only).
    Wildcard,
    Names(BTreeSet<String>),
}

impl Subscription {
    fn of(type_url: &str, names: &[String]) -> Self {
        let wildcard_type = type_url == LISTENER_TYPE || type_url == CLUSTER_TYPE;
        if wildcard_type && (names.is_empty() || names.iter().any(|name| name == "*")) {
            Subscription::Wildcard
        } else {
            Subscription::Names(names.iter().filter(|name| *name != "*").cloned().collect())
        }
    }

    /// The subscribed resources of `type_url` that exist in `resources`, by name.
    fn select<'r>(&'r self, resources: &'r Resources, type_url: &str) -> Box<dyn Iterator<Item = (&'r String, &'r Any)> + 'r> {
        let Some(of_type) = resources.by_type.get(type_url) else { return Box::new(std::iter::empty()) };
        match self {
            Subscription::Wildcard => Box::new(of_type.iter()),
            Subscription::Names(names) => Box::new(names.iter().filter_map(|name| of_type.get_key_value(name))),
        }
    }
}

/// The last response of one type on a stream.
struct Sent {
    nonce: String,
    version: u64,
    subscription: Subscription,
    /// What it was taken from; compared with each new snapshot to see whether the client's view
    /// would change. Shared with the snapshot, not copied.
    resources: Arc<Resources>,
}

/// One connected client: who it is and, per type URL, what it was last sent.
struct Client {
    node_id: String,
    audience: Audience,
    sent: BTreeMap<String, Sent>,
    /// The version of each type the client last ACKed, for the NACK log.
    acked: BTreeMap<String, u64>,
    responses: u64,
}

impl Client {
    fn new(node: Option<&Node>) -> Self {
        let node_id = node.map(|node| node.id.as_str()).filter(|id| !id.is_empty()).unwrap_or("(no id)").to_owned();
        Client { node_id, audience: Audience::of(node), sent: BTreeMap::new(), acked: BTreeMap::new(), responses: 0 }
    }

    /// The response a request calls for, if any.
    fn on_request(&mut self, request: DiscoveryRequest, snapshot: &Snapshot, log: &Log) -> Option<DiscoveryResponse> {
        let type_url = request.type_url;
        if type_url.is_empty() {
            log(&format!("node {}: a request without type_url, ignored", self.node_id));
            return None;
        }
        let subscription = Subscription::of(&type_url, &request.resource_names);
        match self.sent.get(&type_url) {
            None if self.sent.len() >= MAX_TYPES => {
                log(&format!("node {}: more than {MAX_TYPES} resource types; {type_url} ignored", self.node_id));
                return None;
            }
            // The first request of this type (an empty nonce is a new subscription even after
            // a response, as after the client's own restart of the type).
            None => {}
            Some(_) if request.response_nonce.is_empty() => {}
            Some(sent) if request.response_nonce != sent.nonce => return None,
            Some(sent) => {
                match request.error_detail {
                    Some(error) => {
                        let kept = match self.acked.get(&type_url) {
                            Some(version) => format!("it keeps version {version}"),
                            None => "it has no version of it yet".to_owned(),
                        };
                        log(&format!(
                            "NACK from node {}: {} ({} version {}; {kept})",
                            self.node_id,
                            error.message,
                            short_type(&type_url),
                            sent.version
                        ));
                    }
                    None => {
                        self.acked.insert(type_url.clone(), sent.version);
                    }
                }
                if subscription == sent.subscription {
                    return None;
                }
            }
        }
        Some(self.respond(type_url, subscription, snapshot))
    }

    /// The responses a new snapshot calls for: each subscribed type whose resources, as this
    /// client would see them, changed; in push order.
    fn on_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
        let resources = snapshot.resources(&self.audience);
        let mut changed: Vec<(String, Subscription)> = self
            .sent
            .iter()
            .filter(|(type_url, sent)| {
                !sent.subscription.select(&sent.resources, type_url).eq(sent.subscription.select(&resources, type_url))
            })
            .map(|(type_url, sent)| (type_url.clone(), sent.subscription.clone()))
            .collect();
        changed.sort_by(|(a, _), (b, _)| push_order(a).cmp(&push_order(b)));
        changed.into_iter().map(|(type_url, subscription)| self.respond(type_url, subscription, snapshot)).collect()
    }

    fn respond(&mut self, type_url: String, subscription: Subscription, snapshot: &Snapshot) -> DiscoveryResponse {
        let resources = snapshot.resources(&self.audience);
        self.responses += 1;
        let nonce = self.responses.to_string();
        let response = DiscoveryResponse {
            version_info: snapshot.version().to_string(),
            resources: subscription.select(&resources, &type_url).map(|(_, resource)| resource.clone()).collect(),
            type_url: type_url.clone(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        self.sent.insert(type_url, Sent { nonce, version: snapshot.version(), subscription, resources });
        response
    }
}

/// The node's metadata `key`, if it is a non-empty string.
fn metadata_string<'n>(node: Option<&'n Node>, key: &str) -> Option<&'n str> {
    node.and_then(|node| node.metadata.as_ref()).and_then(|metadata| metadata.fields.get(key)).and_then(|value| {
        match &value.kind {
            Some(Kind::StringValue(text)) if !text.is_empty() => Some(text.as_str()),
            _ => None,
        }
    })
}

/// CDS, EDS, ECDS, LDS, RDS, then any other type by URL: make-before-break (a new route table
/// may name a new cluster; a new listener's filter configuration is there when it asks).
fn push_order(type_url: &str) -> (usize, &str) {
    let known = [CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE];
    (known.iter().position(|known| *known == type_url).unwrap_or(known.len()), type_url)
}

/// `Listener` for the Listener type URL, and so on; for logs.
fn short_type(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

#[cfg(test)]
#[path = "ads_tests.rs"]
pub(crate) mod tests;
