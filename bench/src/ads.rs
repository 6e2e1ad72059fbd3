//! `meshroute-bench ads`: many simulated proxyless gRPC clients on `meshroute serve`, for
//! bench/xds_bench.py.
//!
//! Each client opens one state-of-the-world ADS stream and subscribes as a gRPC client does
//! (gRFC A27): LDS for the one listener it dials, then RDS for the route configuration that
//! listener names, CDS for the clusters those routes name, EDS for those clusters; it ACKs every
//! response, and when a pushed response changes what the next type should cover (new routes
//! naming other clusters), it changes that subscription, as gRPC would. Nothing is validated
//! beyond what the next subscription needs: the point is the server's cost.
//!
//! Standard output, one JSON line each:
//! - `{"event": "ready", ...}` once every client has its endpoints (its first EDS response);
//! - for each `await VERSION COUNT` line read on standard input: `{"event": "version", ...}`
//!   once COUNT clients have received a response of that version and none arrived for 300 ms
//!   after (so the follow-up CDS and EDS of a client are in), or after 60 s: how many clients
//!   and responses, and the wall-clock time of the first and the last.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{route, route_action, RouteConfiguration};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager, HttpConnectionManager,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{value, Any, Struct, Value};
use prost::Message;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};

const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

const USAGE: &str = "usage: meshroute-bench ads --xds IP:PORT --listeners FILE --clients N [--connections C] [--namespace NS]";

struct Options {
    xds: String,
    listeners: Vec<String>,
    clients: usize,
    connections: usize,
    namespace: String,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let (mut xds, mut listeners, mut clients, mut connections, mut namespace) = (None, None, None, None, "default".to_owned());
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || value.parse::<usize>().map_err(|_| format!("{flag} {value}: not a number"));
        match flag.as_str() {
            "--xds" => xds = Some(value.clone()),
            "--listeners" => {
                let text = std::fs::read_to_string(value).map_err(|e| format!("{value}: {e}"))?;
                listeners = Some(text.lines().filter(|line| !line.is_empty()).map(str::to_owned).collect::<Vec<_>>());
            }
            "--clients" => clients = Some(number()?),
            "--connections" => connections = Some(number()?.max(1)),
            "--namespace" => namespace = value.clone(),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    let listeners = listeners.filter(|names| !names.is_empty()).ok_or("--listeners FILE with at least one name is needed")?;
    let clients = clients.ok_or("--clients is needed")?;
    Ok(Options {
        xds: xds.ok_or("--xds is needed")?,
        listeners,
        clients,
        connections: connections.unwrap_or(clients).min(clients.max(1)),
        namespace,
    })
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    // One thread: the load takes at most one of the machine's cores, leaving the rest to serve.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, drive(options))
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// What every client saw, shared by the client tasks (one thread).
#[derive(Default)]
struct Seen {
    ready: usize,
    errors: Vec<String>,
    /// Per version: the clients that received a response of it, how many responses, first and
    /// last arrival (wall clock) and the instant of the last.
    versions: HashMap<String, VersionSeen>,
}

struct VersionSeen {
    clients: HashSet<usize>,
    responses: usize,
    first: f64,
    last: f64,
    last_instant: Instant,
}

async fn drive(options: Options) -> Result<(), String> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let started = Instant::now();
    let start_unix = unix_now();
    let mut channels: Vec<Channel> = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let endpoint = Endpoint::from_shared(format!("http://{}", options.xds)).map_err(|e| e.to_string())?;
        channels.push(endpoint.tcp_nodelay(true).connect().await.map_err(|e| format!("connect to {}: {e}", options.xds))?);
    }
    let connected = started.elapsed().as_secs_f64();
    for id in 0..options.clients {
        let channel = channels[id % channels.len()].clone();
        let listener = options.listeners[id % options.listeners.len()].clone();
        let node = node(&format!("bench-client-{id}"), &options.namespace);
        let seen = seen.clone();
        tokio::task::spawn_local(async move {
            if let Err(error) = client(id, channel, node, listener, seen.clone()).await {
                seen.borrow_mut().errors.push(format!("client {id}: {error}"));
            }
        });
    }
    loop {
        let (ready, errors) = {
            let seen = seen.borrow();
            (seen.ready, seen.errors.len())
        };
        if ready + errors >= options.clients {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (ready, errors) = {
        let seen = seen.borrow();
        (seen.ready, seen.errors.clone())
    };
    let streams_per_connection = options.clients.div_ceil(options.connections);
    println!(
        "{}",
        serde_json::json!({
            "event": "ready", "clients": options.clients, "ready": ready, "connections": options.connections,
            "streams_per_connection": streams_per_connection, "connect_seconds": connected,
            "seconds": started.elapsed().as_secs_f64(), "started_at": start_unix, "ready_at": unix_now(),
            "errors": errors.iter().take(5).collect::<Vec<_>>(), "error_count": errors.len(),
        })
    );
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["await", version, count] = words.as_slice() else { continue };
        let count: usize = count.parse().map_err(|_| format!("await {version} {count}: not a number"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let quiet = Duration::from_millis(300);
        loop {
            let done = {
                let seen = seen.borrow();
                match seen.versions.get(*version) {
                    Some(v) => v.clients.len() >= count && v.last_instant.elapsed() >= quiet,
                    None => false,
                }
            };
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let seen = seen.borrow();
        let line = match seen.versions.get(*version) {
            Some(v) => serde_json::json!({
                "event": "version", "version": version, "clients": v.clients.len(), "responses": v.responses,
                "first_at": v.first, "last_at": v.last, "error_count": seen.errors.len(),
            }),
            None => {
                serde_json::json!({"event": "version", "version": version, "clients": 0, "responses": 0, "error_count": seen.errors.len()})
            }
        };
        println!("{line}");
    }
    Ok(())
}

fn node(id: &str, namespace: &str) -> Node {
    let metadata = Struct {
        fields: [("NAMESPACE".to_owned(), Value { kind: Some(value::Kind::StringValue(namespace.to_owned())) })].into(),
    };
    Node { id: id.to_owned(), metadata: Some(metadata), user_agent_name: "meshroute-bench".to_owned(), ..Default::default() }
}

/// What one type is subscribed to on a stream, and its last response.
#[derive(Default)]
struct TypeState {
    names: BTreeSet<String>,
    version: String,
    nonce: String,
    subscribed: bool,
}

async fn client(id: usize, channel: Channel, node: Node, listener: String, seen: Rc<RefCell<Seen>>) -> Result<(), String> {
    let mut ads = AggregatedDiscoveryServiceClient::new(channel);
    let (requests, queue) = mpsc::unbounded_channel();
    let mut node = Some(node);
    let mut states: HashMap<&'static str, TypeState> = HashMap::new();
    let mut send = |states: &mut HashMap<&'static str, TypeState>, type_url: &'static str, names: BTreeSet<String>| {
        let state = states.entry(type_url).or_default();
        state.names = names;
        state.subscribed = true;
        let request = DiscoveryRequest {
            node: node.take(),
            type_url: type_url.to_owned(),
            resource_names: state.names.iter().cloned().collect(),
            version_info: state.version.clone(),
            response_nonce: state.nonce.clone(),
            ..Default::default()
        };
        let _ = requests.send(request);
    };
    send(&mut states, LDS, [listener].into());
    let mut responses = ads
        .stream_aggregated_resources(UnboundedReceiverStream::new(queue))
        .await
        .map_err(|status| status.to_string())?
        .into_inner();
    let mut ready = false;
    loop {
        let response: DiscoveryResponse = match responses.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return Err("the stream ended".to_owned()),
            Err(status) => return Err(status.to_string()),
        };
        {
            let mut seen = seen.borrow_mut();
            let now = unix_now();
            let v = seen.versions.entry(response.version_info.clone()).or_insert_with(|| VersionSeen {
                clients: HashSet::new(),
                responses: 0,
                first: now,
                last: now,
                last_instant: Instant::now(),
            });
            v.clients.insert(id);
            v.responses += 1;
            v.last = now;
            v.last_instant = Instant::now();
        }
        let Some(type_url) = [LDS, RDS, CDS, EDS].into_iter().find(|known| *known == response.type_url) else { continue };
        let next = match type_url {
            LDS => Some((RDS, route_configs(&response.resources))),
            RDS => Some((CDS, clusters_of_routes(&response.resources))),
            CDS => Some((EDS, eds_names(&response.resources))),
            _ => None,
        };
        // The ACK, with the names the response covered.
        let names = {
            let state = states.entry(type_url).or_default();
            state.version = response.version_info.clone();
            state.nonce = response.nonce.clone();
            state.names.clone()
        };
        send(&mut states, type_url, names);
        if let Some((next_type, next_names)) = next {
            let state = states.entry(next_type).or_default();
            if !state.subscribed || state.names != next_names {
                send(&mut states, next_type, next_names);
            }
        }
        if type_url == EDS && !ready {
            ready = true;
            seen.borrow_mut().ready += 1;
        }
    }
}

fn decoded<T: Message + Default>(resources: &[Any]) -> impl Iterator<Item = T> + '_ {
    resources.iter().filter_map(|any| T::decode(any.value.as_slice()).ok())
}

fn route_configs(listeners: &[Any]) -> BTreeSet<String> {
    decoded::<Listener>(listeners)
        .filter_map(|listener| listener.api_listener.and_then(|api| api.api_listener))
        .filter_map(|any| HttpConnectionManager::decode(any.value.as_slice()).ok())
        .filter_map(|manager| match manager.route_specifier {
            Some(http_connection_manager::RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
            _ => None,
        })
        .collect()
}

fn clusters_of_routes(configs: &[Any]) -> BTreeSet<String> {
    let mut clusters = BTreeSet::new();
    for config in decoded::<RouteConfiguration>(configs) {
        for route in config.virtual_hosts.iter().flat_map(|host| &host.routes) {
            let Some(route::Action::Route(action)) = &route.action else { continue };
            match &action.cluster_specifier {
                Some(route_action::ClusterSpecifier::Cluster(name)) => {
                    clusters.insert(name.clone());
                }
                Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
                    clusters.extend(weighted.clusters.iter().map(|cluster| cluster.name.clone()));
                }
                _ => {}
            }
        }
    }
    clusters
}

fn eds_names(clusters: &[Any]) -> BTreeSet<String> {
    decoded::<Cluster>(clusters)
        .map(|cluster| {
            let service = cluster.eds_cluster_config.map(|eds| eds.service_name).unwrap_or_default();
            if service.is_empty() {
                cluster.name
            } else {
                service
            }
        })
        .collect()
}
