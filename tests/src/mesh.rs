//! One small mesh per test, run for real: echo backends, the test's manifests, `meshroute sync
//! --once`, and stock Envoy with the filter, all torn down when the [`Mesh`] is dropped.
//!
//! Every Service in a test is backed by echo servers that answer with the Service's own name, so
//! a request that passes through a Service untouched is told apart from one that was routed: an
//! HTTP echo backend behind its [`Port::Http`] ports, a gRPC one behind its [`Port::Grpc`] ports.
//! Services are in the `default` namespace unless declared with [`MeshBuilder::service_in`].
//! Each Service gets a ClusterIP in a 127.A.B.0/24 block of its own (Envoy listens on every
//! ClusterIP and port, as a sidecar would intercept them), so tests run in parallel; the block
//! is derived from the test's name and skipped when something already listens there.
//!
//! ```no_run
//! # use meshroute_e2e::mesh::Mesh;
//! let mesh = Mesh::builder("mesh_split")
//!     .service("echo")
//!     .service("echo-v1")
//!     .routes("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n...")
//!     .start();
//! mesh.get("echo", "/v1").expect_backend("echo-v1");
//! ```
//!
//! Every backend keeps a record of the requests it received, read with [`Mesh::received`] (and
//! [`Mesh::grpc_received`]): what reached a backend whose answer the client never sees, such as
//! a mirror. Copies a proxy sends on its own arrive when they arrive, so a test waits for them
//! with [`Mesh::expect_received`], which also makes sure no more than that many come:
//!
//! ```no_run
//! # use meshroute_e2e::mesh::Mesh;
//! # let mesh = Mesh::builder("mirror").service("echo").service("echo-v1").service("echo-mirror").start();
//! mesh.get("echo", "/a?b=c").expect_backend("echo-v1");
//! let copies = mesh.expect_received("echo-mirror", 1);
//! assert_eq!(copies[0].path, "/a?b=c");
//! ```
//!
//! A Service's HTTP backend may also be made to fail, be slow or be gone
//! ([`MeshBuilder::backend`], [`Backend`]).
//!
//! gRPC Services and calls work alike:
//!
//! ```no_run
//! # use meshroute_e2e::mesh::{Mesh, Port};
//! let mesh = Mesh::builder("grpc_split")
//!     .service_with("echo-service", &[Port::Http(80), Port::Grpc(8080)])
//!     .grpc_service("grpc-infra-backend-v1")
//!     .routes("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n...")
//!     .start();
//! mesh.grpc("echo-service", "Echo").metadata("version", "one").expect_backend("grpc-infra-backend-v1");
//! ```
//!
//! A mesh may have proxyless gRPC clients as its data plane instead of Envoy
//! ([`MeshBuilder::proxyless`]): then `meshroute serve` answers xDS for its manifests and no Envoy
//! runs. [`Mesh::rpc`] makes a gRPC call on whichever data plane the mesh has, with the same
//! expectations, so one test body runs against both ([`crate::proxyless`]).

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::future::Future;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use hyper::Method;
use serde::Deserialize;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tonic::{Code, Status};

use crate::client::{HttpClient, Reply, Request, Tally};
use crate::echo::{Behaviour, Received, SeenRequest, BACKEND_HEADER};
use crate::grpc::{self, EchoResponse, StreamReply};
use crate::proxyless::{DataPlane, ProxylessClient, XdsServer};
use crate::{echo, tools};

/// The request header through which the filter hands its choice of cluster to Envoy's router.
/// No client may set it and no backend may see it.
pub const SELECTION_HEADER: &str = "x-meshroute-cluster";

/// The request header in which the listener names the destination for the filter. No client
/// may set it and no backend may see it.
pub const DESTINATION_HEADER: &str = "x-meshroute-destination";

/// The namespace of generated Services unless a test names another
/// ([`MeshBuilder::service_in`]); test routes may omit theirs.
pub const NAMESPACE: &str = "default";

/// Bounds on waiting for the system under test; reaching one is a failure, never a measurement.
const SYNC_DEADLINE: Duration = Duration::from_secs(60);
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How long after the client got its answer a request a proxy sends on its own (a mirrored copy)
/// may take to reach its backend before a test gives up waiting for it. Copies arrive within
/// milliseconds; this only bounds a test that waits for one that never comes.
pub const RECEIVE_DEADLINE: Duration = Duration::from_secs(5);

/// How long a backend's record must stay unchanged to count as settled: no copy still on its
/// way. Envoy sends a copy as it forwards the original, so a copy still missing this long after
/// the last answer is not coming; a test that asserts that no copy arrives waits this long.
pub const SETTLE: Duration = Duration::from_millis(500);

/// The host of each 127.A.B.0/24 block on which nothing listens: the address of Services whose
/// backend is gone ([`Backend::Down`]), on port [`NOTHING_LISTENS_PORT`].
const NOTHING_LISTENS_HOST: u8 = 254;
const NOTHING_LISTENS_PORT: u16 = 9;

/// Requests in flight at once when spreading many requests.
const SPREAD_CONCURRENCY: usize = 8;

/// Blocks and admin ports taken by meshes alive in this process.
static CLAIMED_BLOCKS: Mutex<BTreeSet<(u8, u8)>> = Mutex::new(BTreeSet::new());
static CLAIMED_ADMIN_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
static WORK_DIRS: AtomicUsize = AtomicUsize::new(0);
static EXPLAINS: AtomicUsize = AtomicUsize::new(0);

/// What `meshroute explain` says about one request.
#[derive(Clone, Debug, Deserialize)]
pub struct Explanation {
    pub status: u16,
    /// The gRPC status of a gRPC call's answer: 0, 12 (UNIMPLEMENTED) or 14 (UNAVAILABLE).
    #[serde(default)]
    pub grpc_status: Option<u32>,
    /// `namespace/name` of the route that takes the request; none for a pass-through.
    pub route: Option<String>,
    pub rule: Option<usize>,
    /// The candidates the request is spread over, weights as configured.
    pub backends: Vec<ExplainedBackend>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ExplainedBackend {
    pub name: String,
    pub namespace: String,
    pub port: u16,
    pub weight: u32,
    /// Where a request sent to this backend is mirrored: the rule's RequestMirror filters, then
    /// the backendRef's own. None when explain says nothing about mirrors.
    #[serde(default)]
    pub mirrors: Option<Vec<ExplainedMirror>>,
}

/// A mirror a request is copied to, as `meshroute explain` names it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ExplainedMirror {
    pub name: String,
    pub namespace: String,
    pub port: u16,
    /// The share of requests copied, 0 to 100 (100 when the filter names none).
    pub percent: f64,
}

/// A Service port, and the protocol it declares and its backend speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Named `http-PORT`, which declares plain HTTP/1 (a GRPCRoute without a port does not
    /// attach to it); served by the HTTP echo backend.
    Http(u16),
    /// Named `grpc` (`grpc-PORT` when the Service has several), appProtocol `kubernetes.io/h2c`;
    /// served by the gRPC echo backend over cleartext HTTP/2.
    Grpc(u16),
    /// No name and no appProtocol (`ports: [{port: PORT}]`): declares no protocol at all. Served
    /// by the HTTP echo backend. Only as a Service's single port: Kubernetes requires every port
    /// of a Service with several to be named.
    HttpUndeclared(u16),
    /// No name and no appProtocol, as [`Port::HttpUndeclared`], but served by the gRPC echo
    /// backend over cleartext HTTP/2. Only as a Service's single port.
    GrpcUndeclared(u16),
}

impl Port {
    pub fn number(self) -> u16 {
        match self {
            Port::Http(port) | Port::Grpc(port) | Port::HttpUndeclared(port) | Port::GrpcUndeclared(port) => port,
        }
    }

    /// Served by the gRPC echo backend (else by the HTTP one).
    pub fn serves_grpc(self) -> bool {
        matches!(self, Port::Grpc(_) | Port::GrpcUndeclared(_))
    }

    /// Declares no protocol: no name, no appProtocol.
    pub fn is_undeclared(self) -> bool {
        matches!(self, Port::HttpUndeclared(_) | Port::GrpcUndeclared(_))
    }
}

/// A Service of the mesh under test.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<Port>,
    /// Where its HTTP echo backend listens, if it has [`Port::Http`] or [`Port::HttpUndeclared`]
    /// ports.
    pub http_endpoint: Option<SocketAddr>,
    /// Where its gRPC echo backend listens, if it has [`Port::Grpc`] or [`Port::GrpcUndeclared`]
    /// ports.
    pub grpc_endpoint: Option<SocketAddr>,
    /// How its HTTP backend answers.
    pub backend: Backend,
    /// The requests its HTTP echo backend received ([`Mesh::received`]).
    pub received: Received,
    /// The calls its gRPC echo backend received ([`Mesh::grpc_received`]).
    pub grpc_received: Received,
}

impl Service {
    fn port_numbers(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().map(|port| port.number())
    }
}

/// How a Service's backends answer ([`MeshBuilder::backend`]): by default as an echo backend
/// does, as each request asks. The other kinds are for backends whose answer must differ from
/// another's although the requests are the same (a mirror and the backend it mirrors); they
/// apply to the Service's HTTP backend, and [`Backend::Down`] and [`Backend::NoEndpoints`] to
/// its gRPC one too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The echo backend, answering as each request asks.
    Echo,
    /// An echo backend that answers every request with this status (with its report and
    /// `x-echo-backend` as usual).
    Failing(u16),
    /// An echo backend that waits this long before it answers any request.
    Slow(Duration),
    /// No backend process: the Service's EndpointSlice names an address on which nothing
    /// listens, so every connection to it is refused. Its record stays empty.
    Down,
    /// No ready endpoint: the Service's EndpointSlice lists its one address as not ready, so the
    /// Service has no endpoints at all. Its record stays empty.
    NoEndpoints,
}

/// How the mesh's Envoy routes: by the meshroute filter (the default), or natively from the
/// RouteConfiguration of `meshroute sync --mode native`. `MESHROUTE_E2E_MODE=native` makes
/// native the default, so any test file runs against Envoy's own router unchanged;
/// `MESHROUTE_E2E_MODE=ads` makes it the filter configured over ADS ([`Mode::Ads`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Filter,
    Native,
    /// The filter, with Envoy's listeners, clusters and filter configuration (its module
    /// fetched over HTTP) from `meshroute serve --wasm` ([`Mesh::xds`]) rather than files: the
    /// bootstrap is `meshroute sync --xds`'s.
    Ads,
}

impl Mode {
    fn from_env() -> Mode {
        match std::env::var("MESHROUTE_E2E_MODE").as_deref() {
            Ok("native") => Mode::Native,
            Ok("ads") => Mode::Ads,
            Ok("filter") | Ok("") | Err(_) => Mode::Filter,
            Ok(other) => panic!("MESHROUTE_E2E_MODE={other:?}: expected filter, native or ads"),
        }
    }
}

/// What a test asks for; [`MeshBuilder::start`] makes it real.
#[must_use]
pub struct MeshBuilder {
    name: String,
    /// Namespace, name and ports of each Service.
    services: Vec<(String, String, Vec<Port>)>,
    /// Namespace and name of each Service whose backends are not [`Backend::Echo`].
    backends: Vec<(String, String, Backend)>,
    routes: Vec<String>,
    mode: Mode,
    client_namespace: String,
    data_plane: DataPlane,
}

impl MeshBuilder {
    /// Routes proxyless gRPC clients instead of Envoy: [`MeshBuilder::start`] starts `meshroute
    /// serve` on the manifests ([`Mesh::xds`]) and neither `meshroute sync` nor Envoy. Calls made
    /// with [`Mesh::rpc`] then go through a proxyless client per target, whose bootstrap
    /// namespace is the mesh's client namespace ([`MeshBuilder::client_namespace`]).
    pub fn proxyless(self) -> Self {
        self.data_plane(DataPlane::Proxyless)
    }

    /// Envoy (the default) or proxyless gRPC clients; see [`MeshBuilder::proxyless`].
    pub fn data_plane(mut self, data_plane: DataPlane) -> Self {
        self.data_plane = data_plane;
        self
    }

    /// Routes with the filter or natively; see [`Mode`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The namespace of the client whose sidecar the mesh's Envoy is (`default` unless set):
    /// `meshroute sync` and `explain` are given `--namespace`, so that client's consumer routes
    /// replace the producer routes of the Services they attach to (GEP-1294).
    pub fn client_namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.client_namespace);
        self
    }

    /// A Service with one port, 80, backed by an echo server named like the Service.
    pub fn service(self, name: &str) -> Self {
        self.service_with_ports(name, &[80])
    }

    /// A Service with the given HTTP ports, all served by one echo server named like the Service.
    pub fn service_with_ports(self, name: &str, ports: &[u16]) -> Self {
        let ports: Vec<Port> = ports.iter().copied().map(Port::Http).collect();
        self.service_with(name, &ports)
    }

    /// A gRPC Service as the product page's backends are: one port, 8080, for gRPC, backed by a
    /// gRPC echo server named like the Service.
    pub fn grpc_service(self, name: &str) -> Self {
        self.service_with(name, &[Port::Grpc(8080)])
    }

    /// A Service with the given ports: its HTTP ports served by one HTTP echo server, its gRPC
    /// ports by one gRPC echo server, both named like the Service.
    pub fn service_with(self, name: &str, ports: &[Port]) -> Self {
        self.service_in(NAMESPACE, name, ports)
    }

    /// A Service in `namespace`, otherwise as [`MeshBuilder::service_with`]. Requests address it
    /// as `NAME.NAMESPACE` (or `NAME` alone when no other Service has that name); its backends
    /// answer with its bare name.
    pub fn service_in(mut self, namespace: &str, name: &str, ports: &[Port]) -> Self {
        assert!(!ports.is_empty(), "Service {namespace}/{name} needs at least one port");
        assert!(
            self.services
                .iter()
                .all(|(known_namespace, known, _)| (known_namespace.as_str(), known.as_str()) != (namespace, name)),
            "Service {namespace}/{name} declared twice"
        );
        assert!(
            ports.len() == 1 || !ports.iter().any(|port| port.is_undeclared()),
            "Service {namespace}/{name}: a port without a name must be the Service's only one: {ports:?}"
        );
        let mut numbers: Vec<u16> = ports.iter().map(|port| port.number()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), ports.len(), "Service {namespace}/{name} declares a port twice: {ports:?}");
        self.services.push((namespace.to_owned(), name.to_owned(), ports.to_vec()));
        self
    }

    /// Makes the backends of Service `service` (`NAME` or `NAME.NAMESPACE`, declared before)
    /// answer as `backend` says.
    #[track_caller]
    pub fn backend(mut self, service: &str, backend: Backend) -> Self {
        let (name, namespace) = service.split_once('.').unwrap_or((service, NAMESPACE));
        assert!(
            self.services
                .iter()
                .any(|(known_namespace, known, _)| (known_namespace.as_str(), known.as_str()) == (namespace, name)),
            "Service {namespace}/{name}: declare it before its backend"
        );
        if let Backend::Failing(code) = backend {
            assert!((100..=999).contains(&code), "Service {namespace}/{name}: {code} is not a status code");
        }
        self.backends.retain(|(known_namespace, known, _)| (known_namespace.as_str(), known.as_str()) != (namespace, name));
        self.backends.push((namespace.to_owned(), name.to_owned(), backend));
        self
    }

    /// Manifests (HTTPRoutes and anything else) written as they are into the manifests directory.
    pub fn routes(mut self, yaml: &str) -> Self {
        self.routes.push(yaml.to_owned());
        self
    }

    /// Starts the backends, publishes the manifests with `meshroute sync --once` and starts
    /// Envoy; returns once Envoy is live and listening on every ClusterIP and port. A proxyless
    /// mesh ([`MeshBuilder::proxyless`]) starts `meshroute serve` on the manifests instead and
    /// returns once it accepts connections.
    pub fn start(self) -> Mesh {
        let meshroute = existing(tools::meshroute_bin(), "cargo build --release -p meshroute");
        let envoy_plane = self.data_plane == DataPlane::Envoy;
        let wasm = envoy_plane
            .then(|| existing(tools::filter_wasm(), "cargo build --release -p meshroute-filter --target wasm32-wasip1"));
        let envoy = envoy_plane.then(|| existing(tools::envoy_bin(), "make setup (or set ENVOY_BIN)"));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("cannot start a tokio runtime: {error}"));

        let mut services = Vec::new();
        for (namespace, name, ports) in &self.services {
            let backend = self
                .backends
                .iter()
                .find(|(known_namespace, known, _)| (known_namespace, known) == (namespace, name))
                .map_or(Backend::Echo, |(_, _, backend)| *backend);
            let behaviour = match backend {
                Backend::Failing(code) => Behaviour { status: Some(code), ..Behaviour::default() },
                Backend::Slow(delay) => Behaviour { delay, ..Behaviour::default() },
                Backend::Echo | Backend::Down | Backend::NoEndpoints => Behaviour::default(),
            };
            // No process for a backend that is gone or has no endpoint; its address is set
            // once the block is known.
            let runs = !matches!(backend, Backend::Down | Backend::NoEndpoints);
            let (received, grpc_received) = (Received::new(), Received::new());
            let listen = |kind: &str| {
                let listener = runtime
                    .block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
                    .unwrap_or_else(|error| panic!("{kind} echo backend {name}: cannot listen: {error}"));
                let endpoint = listener.local_addr().unwrap_or_else(|error| panic!("{kind} echo backend {name}: {error}"));
                (listener, endpoint)
            };
            let http_endpoint = (runs && ports.iter().any(|port| !port.serves_grpc())).then(|| {
                let (listener, endpoint) = listen("HTTP");
                runtime.spawn(echo::serve_as(name.clone(), listener, behaviour, received.clone()));
                endpoint
            });
            let grpc_endpoint = (runs && ports.iter().any(|port| port.serves_grpc())).then(|| {
                let (listener, endpoint) = listen("gRPC");
                runtime.spawn(grpc::serve_recorded(name.clone(), listener, grpc_received.clone()));
                endpoint
            });
            services.push(Service {
                name: name.clone(),
                namespace: namespace.clone(),
                cluster_ip: Ipv4Addr::UNSPECIFIED,
                ports: ports.clone(),
                http_endpoint,
                grpc_endpoint,
                backend,
                received,
                grpc_received,
            });
        }

        assert!(
            services.len() < usize::from(NOTHING_LISTENS_HOST),
            "mesh {}: at most {} Services",
            self.name,
            NOTHING_LISTENS_HOST - 1
        );
        let block = claim_block(&self.name, &services);
        let nowhere =
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, block.0, block.1, NOTHING_LISTENS_HOST)), NOTHING_LISTENS_PORT);
        for (host, service) in (1u8..).zip(&mut services) {
            service.cluster_ip = Ipv4Addr::new(127, block.0, block.1, host);
            if matches!(service.backend, Backend::Down | Backend::NoEndpoints) {
                let (http, grpc) =
                    (service.ports.iter().any(|port| !port.serves_grpc()), service.ports.iter().any(|port| port.serves_grpc()));
                service.http_endpoint = http.then_some(nowhere);
                service.grpc_endpoint = grpc.then_some(nowhere);
            }
        }
        let admin_port = claim_admin_port();

        let dir = work_dir(&self.name);
        let mut mesh = Mesh {
            name: self.name,
            runtime,
            client: HttpClient::new(),
            services,
            block,
            admin_port,
            dir,
            envoy: None,
            ready: false,
            mode: self.mode,
            client_namespace: self.client_namespace,
            data_plane: self.data_plane,
            xds: None,
            proxyless_clients: Mutex::new(Vec::new()),
        };
        mesh.write_manifests(&self.routes);
        let (Some(wasm), Some(envoy)) = (wasm, envoy) else {
            mesh.xds = Some(mesh.serve_xds());
            return mesh;
        };
        if mesh.mode == Mode::Ads {
            mesh.xds = Some(mesh.serve_xds_for_envoy(&wasm));
        }
        // The admin port was free when it was chosen, but another process may take it before
        // Envoy binds it; then Envoy exits at once, and a new port is tried.
        for attempt in 1.. {
            mesh.sync(&meshroute, &wasm);
            match mesh.start_envoy(&envoy) {
                Ok(()) => break,
                Err(AdminPortTaken) if attempt < 3 => {
                    let taken = mesh.admin_port;
                    mesh.admin_port = claim_admin_port();
                    CLAIMED_ADMIN_PORTS.lock().unwrap_or_else(PoisonError::into_inner).remove(&taken);
                }
                Err(AdminPortTaken) => {
                    panic!("mesh {}: Envoy could not bind its admin port three times.\n{}", mesh.name, mesh.setup_context())
                }
            }
        }
        mesh
    }
}

/// A running mesh. Dropping it stops Envoy and the backends and removes its files.
pub struct Mesh {
    name: String,
    runtime: Runtime,
    client: HttpClient,
    services: Vec<Service>,
    block: (u8, u8),
    admin_port: u16,
    dir: PathBuf,
    envoy: Option<Child>,
    ready: bool,
    mode: Mode,
    client_namespace: String,
    data_plane: DataPlane,
    /// `meshroute serve` on the manifests, for a proxyless mesh.
    xds: Option<XdsServer>,
    /// The proxyless clients [`Mesh::rpc`] started, by target and bootstrap namespace.
    proxyless_clients: Mutex<Vec<(String, String, std::sync::Arc<ProxylessClient>)>>,
}

impl Mesh {
    /// Starts describing the mesh for the test `name` (used for its address block and files).
    pub fn builder(name: &str) -> MeshBuilder {
        MeshBuilder {
            name: name.to_owned(),
            services: Vec::new(),
            backends: Vec::new(),
            routes: Vec::new(),
            mode: Mode::from_env(),
            client_namespace: NAMESPACE.to_owned(),
            data_plane: DataPlane::Envoy,
        }
    }

    /// The Services of the Gateway API mesh conformance suite: `echo` (in the suite it selects
    /// every version; here it answers as itself), `echo-v1` and `echo-v2`, each with ports 80
    /// and 8080.
    pub fn conformance(name: &str) -> MeshBuilder {
        Self::builder(name)
            .service_with_ports("echo", &[80, 8080])
            .service_with_ports("echo-v1", &[80, 8080])
            .service_with_ports("echo-v2", &[80, 8080])
    }

    /// The Service called `name`: `NAME.NAMESPACE`, or `NAME` for the only Service of that name.
    #[track_caller]
    pub fn service(&self, name: &str) -> &Service {
        let found: Vec<&Service> = match name.split_once('.') {
            Some((name, namespace)) => {
                self.services.iter().filter(|service| service.name == name && service.namespace == namespace).collect()
            }
            None => self.services.iter().filter(|service| service.name == name).collect(),
        };
        match found[..] {
            [service] => service,
            _ => {
                let known: Vec<String> =
                    self.services.iter().map(|service| format!("{}.{}", service.name, service.namespace)).collect();
                let why = if found.is_empty() { "no" } else { "more than one" };
                panic!("{why} Service {name} in mesh {}; it has {known:?} (NAME.NAMESPACE)", self.name)
            }
        }
    }

    /// The ClusterIP and port of a Service, `NAME` (its first port) or `NAME:PORT`; `NAME` may be
    /// `NAME.NAMESPACE`.
    #[track_caller]
    pub fn address_of(&self, service: &str) -> String {
        self.get(service, "/").request.address.to_string()
    }

    /// `GET path` to a Service, `NAME` (its first port) or `NAME:PORT`; `NAME` may be
    /// `NAME.NAMESPACE`.
    #[track_caller]
    pub fn get(&self, service: &str, path: &str) -> Call<'_> {
        self.request("GET", service, path)
    }

    /// `METHOD path` to a Service, `NAME` (its first port) or `NAME:PORT`. The Host header is
    /// what a client in the mesh would send: `NAME`, or `NAME:PORT` for a port other than 80.
    #[track_caller]
    pub fn request(&self, method: &str, service: &str, path: &str) -> Call<'_> {
        let frontend = self.frontend(service, |target| target.ports[0].number());
        let Ok(method) = Method::from_bytes(method.as_bytes()) else { panic!("bad method {method:?}") };
        let (name, port) = (&frontend.name, frontend.address.port());
        let host = if port == 80 { name.clone() } else { format!("{name}:{port}") };
        Call {
            mesh: self,
            request: Request {
                method,
                service: frontend.to_string(),
                address: frontend.address,
                path: path.to_owned(),
                headers: vec![("host".to_owned(), host)],
                http2: false,
            },
        }
    }

    /// A gRPC call of `method` to a Service, `NAME` (its first gRPC port, else its first port)
    /// or `NAME:PORT`. `method` is a method of `echo_basic.grpcecho.GrpcEcho` (`Echo`) or a full
    /// `/SERVICE/METHOD`; the message is `hello` unless [`GrpcCall::message`] says otherwise.
    #[track_caller]
    pub fn grpc(&self, service: &str, method: &str) -> GrpcCall<'_> {
        let frontend = self.frontend(service, |target| {
            let grpc = target.ports.iter().find(|port| port.serves_grpc());
            grpc.unwrap_or(&target.ports[0]).number()
        });
        GrpcCall { mesh: self, frontend, method: grpc::method_path(method), message: "hello".to_owned(), metadata: Vec::new() }
    }

    /// The Service and port that `service` (`NAME` or `NAME:PORT`) names; `default_port` picks
    /// the port when none is given.
    #[track_caller]
    pub(crate) fn frontend(&self, service: &str, default_port: impl Fn(&Service) -> u16) -> Frontend {
        let (name, port) = match service.split_once(':') {
            Some((name, port)) => match port.parse() {
                Ok(port) => (name, Some(port)),
                Err(_) => panic!("bad port in {service:?}"),
            },
            None => (service, None),
        };
        let target = self.service(name);
        let port = port.unwrap_or_else(|| default_port(target));
        assert!(target.port_numbers().any(|known| known == port), "Service {name} has no port {port}; it has {:?}", target.ports);
        Frontend { name: name.to_owned(), address: SocketAddr::new(IpAddr::V4(target.cluster_ip), port) }
    }

    /// The requests the HTTP echo backend of Service `service` (`NAME` or `NAME.NAMESPACE`) has
    /// received so far, oldest first, however they came: routed by Envoy, mirrored by Envoy, or
    /// sent to the backend directly.
    #[track_caller]
    pub fn received(&self, service: &str) -> Vec<SeenRequest> {
        self.record(service, Protocol::Http).all()
    }

    /// The calls the gRPC echo backend of Service `service` has received so far, oldest first:
    /// each call's full method as its `path` and its metadata as its `headers`.
    #[track_caller]
    pub fn grpc_received(&self, service: &str) -> Vec<SeenRequest> {
        self.record(service, Protocol::Grpc).all()
    }

    /// Waits until the HTTP echo backend of `service` has received `count` requests in all (at
    /// most [`RECEIVE_DEADLINE`]), then until its record has settled ([`SETTLE`]), and asserts
    /// that it holds exactly `count`: none missing, none more. Returns them, oldest first. With
    /// `count` 0 this asserts that nothing arrives within [`SETTLE`].
    #[track_caller]
    pub fn expect_received(&self, service: &str, count: usize) -> Vec<SeenRequest> {
        self.expect_record(service, Protocol::Http, count)
    }

    /// [`Mesh::expect_received`] for the calls of the gRPC echo backend of `service`.
    #[track_caller]
    pub fn expect_grpc_received(&self, service: &str, count: usize) -> Vec<SeenRequest> {
        self.expect_record(service, Protocol::Grpc, count)
    }

    /// Waits until no request has reached the HTTP echo backend of `service` for [`SETTLE`] and
    /// returns all it received, oldest first: for counts known only within bounds (a sampled
    /// mirror). Fails if requests keep arriving past [`RECEIVE_DEADLINE`].
    #[track_caller]
    pub fn received_settled(&self, service: &str) -> Vec<SeenRequest> {
        let record = self.record(service, Protocol::Http);
        self.settle(service, Protocol::Http, record);
        record.all()
    }

    #[track_caller]
    fn record(&self, service: &str, protocol: Protocol) -> &Received {
        let target = self.service(service);
        let (has, record) = match protocol {
            Protocol::Http => (target.ports.iter().any(|port| !port.serves_grpc()), &target.received),
            Protocol::Grpc => (target.ports.iter().any(|port| port.serves_grpc()), &target.grpc_received),
        };
        assert!(has, "mesh {}: Service {service} has no {protocol:?} backend; its ports: {:?}", self.name, target.ports);
        record
    }

    #[track_caller]
    fn expect_record(&self, service: &str, protocol: Protocol, count: usize) -> Vec<SeenRequest> {
        let record = self.record(service, protocol);
        let started = Instant::now();
        while record.count() < count {
            if started.elapsed() > RECEIVE_DEADLINE {
                panic!(
                    "mesh {}: the {protocol:?} backend of {service} received {} requests within {RECEIVE_DEADLINE:?}, expected {count}:\n{}",
                    self.name,
                    record.count(),
                    describe_received(&record.all())
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.settle(service, protocol, record);
        let all = record.all();
        assert_eq!(
            all.len(),
            count,
            "mesh {}: the {protocol:?} backend of {service} received more requests than expected:\n{}",
            self.name,
            describe_received(&all)
        );
        all
    }

    /// Returns once `record` has not changed for [`SETTLE`].
    #[track_caller]
    fn settle(&self, service: &str, protocol: Protocol, record: &Received) {
        let started = Instant::now();
        let (mut last, mut since) = (record.count(), Instant::now());
        while since.elapsed() < SETTLE {
            thread::sleep(Duration::from_millis(10));
            let now = record.count();
            if now != last {
                (last, since) = (now, Instant::now());
            }
            assert!(
                started.elapsed() < RECEIVE_DEADLINE + SETTLE,
                "mesh {}: the {protocol:?} backend of {service} is still receiving requests after {:?} ({last} so far)",
                self.name,
                started.elapsed()
            );
        }
    }

    /// The last lines of Envoy's log.
    pub fn envoy_log_tail(&self) -> String {
        log_tail(&self.dir.join("envoy.log"), 60)
    }

    /// The manifests directory `meshroute sync` reads.
    pub fn manifests_dir(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    /// `meshroute check` (with `--strict` if asked) on the mesh's manifests: exit code and output.
    pub fn check(&self, strict: bool) -> (Option<i32>, String) {
        tools::meshroute_check(&self.manifests_dir(), strict)
    }

    /// The directory `meshroute sync` writes and Envoy watches.
    pub fn out_dir(&self) -> PathBuf {
        self.dir.join("envoy")
    }

    /// The mesh's own directory (manifests, Envoy's files, logs), removed with the mesh.
    pub fn work_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the filter or Envoy's own router routes.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Envoy or proxyless gRPC clients.
    pub fn data_plane(&self) -> DataPlane {
        self.data_plane
    }

    /// The namespace of the mesh's client ([`MeshBuilder::client_namespace`]).
    pub fn client_namespace(&self) -> &str {
        &self.client_namespace
    }

    /// The mesh's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `meshroute serve` on the manifests of a proxyless mesh.
    #[track_caller]
    pub fn xds(&self) -> &XdsServer {
        match &self.xds {
            Some(xds) => xds,
            None => panic!("mesh {}: not a proxyless mesh, no meshroute serve runs (MeshBuilder::proxyless)", self.name),
        }
    }

    /// The proxyless client for `target` with bootstrap namespace `namespace` that this mesh
    /// keeps, started on first use (the [`Mesh::rpc`] calls to one Service share it, as calls
    /// on one channel do).
    pub(crate) fn kept_proxyless_client(&self, target: &str, namespace: &str) -> std::sync::Arc<ProxylessClient> {
        let mut clients = self.proxyless_clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, client)) =
            clients.iter().find(|(known, known_namespace, _)| known == target && known_namespace == namespace)
        {
            return client.clone();
        }
        let client = std::sync::Arc::new(self.proxyless_client(target, namespace));
        clients.push((target.to_owned(), namespace.to_owned(), client.clone()));
        client
    }

    /// Envoy's admin port, on 127.0.0.1.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Envoy's process id.
    pub fn envoy_pid(&self) -> u32 {
        match &self.envoy {
            Some(envoy) => envoy.id(),
            None => panic!("mesh {}: Envoy is not running", self.name),
        }
    }

    /// The runtime the backends and clients run on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// `GET path` on Envoy's admin interface: the body of a 200 answer.
    #[track_caller]
    pub fn admin(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.admin_port);
        match self.runtime.block_on(self.client.get_text(&url)) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("mesh {}: admin {path} answered {status}: {body}", self.name),
            Err(error) => panic!("mesh {}: admin {path}: {error}", self.name),
        }
    }

    /// Envoy's counters and gauges whose names match the regular expression `filter`.
    #[track_caller]
    pub fn stats(&self, filter: &str) -> std::collections::BTreeMap<String, u64> {
        self.admin(&format!("/stats?filter={filter}"))
            .lines()
            .filter_map(|line| line.split_once(": "))
            .filter_map(|(name, value)| Some((name.to_owned(), value.trim().parse().ok()?)))
            .collect()
    }

    /// The series of the counter `family` in Envoy's Prometheus text (`/stats/prometheus`), each
    /// by its labels; series at 0 are left out, so that what a request has not reached and what
    /// does not exist read the same.
    #[track_caller]
    pub fn prometheus(&self, family: &str) -> std::collections::BTreeMap<std::collections::BTreeMap<String, String>, u64> {
        prometheus_series(&self.admin("/stats/prometheus"), family).into_iter().filter(|(_, value)| *value > 0).collect()
    }

    /// `meshroute explain` on the mesh's manifests with `args`, as the mesh's client.
    #[track_caller]
    fn explain(&self, args: &[String], what: &str) -> Explanation {
        let log = self.dir.join(format!("explain-{}.out", EXPLAINS.fetch_add(1, Ordering::Relaxed)));
        let mut command = Command::new(tools::meshroute_bin());
        command.arg("explain").arg(self.manifests_dir()).args(args).arg("--namespace").arg(&self.client_namespace);
        let status = run_bounded(&mut command, &log, SYNC_DEADLINE);
        let said = fs::read_to_string(&log).unwrap_or_default();
        match status {
            Ok(status) if status.success() => match serde_json::from_str(said.trim()) {
                Ok(explanation) => explanation,
                Err(error) => panic!("{what}: `{command:?}` printed no explanation ({error}):\n{said}"),
            },
            Ok(status) => panic!("{what}: `{command:?}` failed ({status}):\n{said}"),
            Err(error) => panic!("{what}: `{command:?}`: {error}\n{said}"),
        }
    }

    fn write_manifests(&self, routes: &[String]) {
        let dir = self.manifests_dir();
        create_dir(&dir);
        let services: String = self.services.iter().map(service_manifests).collect();
        write_file(&dir.join("services.yaml"), &services);
        for (i, yaml) in routes.iter().enumerate() {
            write_file(&dir.join(format!("routes-{i}.yaml")), yaml);
        }
    }

    fn sync(&self, meshroute: &Path, wasm: &Path) {
        let out = self.out_dir();
        let log = self.dir.join("sync.log");
        let mut command = Command::new(meshroute);
        command
            .arg("sync")
            .arg(self.manifests_dir())
            .arg("--out")
            .arg(&out)
            .arg("--once")
            .arg("--admin-port")
            .arg(self.admin_port.to_string())
            .arg("--namespace")
            .arg(&self.client_namespace)
            .current_dir(tools::workspace_root());
        match (self.mode, &self.xds) {
            (Mode::Native, _) => command.args(["--mode", "native", "--wasm"]).arg(wasm),
            (Mode::Ads, Some(xds)) => command.arg("--xds").arg(xds.address().to_string()),
            _ => command.arg("--wasm").arg(wasm),
        };
        let status = run_bounded(&mut command, &log, SYNC_DEADLINE);
        let says = fs::read_to_string(&log).unwrap_or_default();
        let failed = match status {
            Ok(status) if status.success() && out.join("envoy.yaml").is_file() => return,
            Ok(status) if status.success() => "exited 0 but wrote no envoy.yaml".to_owned(),
            Ok(status) => format!("failed ({status})"),
            Err(error) => error,
        };
        panic!(
            "mesh {}: `{command:?}` {failed}; it said:\n{says}\nmanifests:\n{}",
            self.name,
            read_manifests(&self.manifests_dir())
        );
    }

    fn start_envoy(&mut self, envoy: &Path) -> Result<(), AdminPortTaken> {
        let log_path = self.dir.join("envoy.log");
        let log = File::create(&log_path).unwrap_or_else(|error| panic!("{}: {error}", log_path.display()));
        let log_too = log.try_clone().unwrap_or_else(|error| panic!("{}: {error}", log_path.display()));
        let child = Command::new(envoy)
            .arg("-c")
            .arg(self.out_dir().join("envoy.yaml"))
            .args(["--concurrency", "1", "--disable-hot-restart"])
            .current_dir(tools::workspace_root())
            .stdin(Stdio::null())
            .stdout(log_too)
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run Envoy {}: {error}", envoy.display()));
        self.envoy = Some(child);
        self.wait_until_ready()?;
        self.ready = true;
        Ok(())
    }

    /// Polls until Envoy's admin says LIVE, no listener is warming, every ClusterIP:port has an
    /// active listener that accepts connections, and no extension config was rejected.
    fn wait_until_ready(&mut self) -> Result<(), AdminPortTaken> {
        let listeners: Vec<SocketAddr> = self
            .services
            .iter()
            .flat_map(|service| service.port_numbers().map(|port| SocketAddr::new(IpAddr::V4(service.cluster_ip), port)))
            .collect();
        let started = Instant::now();
        loop {
            if let Some(envoy) = self.envoy.as_mut() {
                if let Ok(Some(status)) = envoy.try_wait() {
                    let admin = format!("127.0.0.1:{}", self.admin_port);
                    if self.envoy_log_tail().lines().any(|line| line.contains(&admin) && line.contains("in use")) {
                        self.envoy = None;
                        return Err(AdminPortTaken);
                    }
                    panic!("mesh {}: Envoy exited ({status}) before it was ready.\n{}", self.name, self.setup_context());
                }
            }
            let last = match self.readiness(&listeners) {
                Ok(()) => return Ok(()),
                Err(Rejected(why)) => panic!("mesh {}: {why}\n{}", self.name, self.setup_context()),
                Err(NotYet(why)) => why,
            };
            if started.elapsed() > READY_DEADLINE {
                panic!("mesh {}: Envoy not ready after {READY_DEADLINE:?}: {last}\n{}", self.name, self.setup_context());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn readiness(&self, listeners: &[SocketAddr]) -> Result<(), Readiness> {
        let admin = format!("http://127.0.0.1:{}", self.admin_port);
        let (status, body) = self.runtime.block_on(self.client.get_text(&format!("{admin}/ready"))).map_err(NotYet)?;
        if status != 200 || body.trim() != "LIVE" {
            return Err(NotYet(format!("/ready answered {status} {}", body.trim())));
        }
        let url = format!("{admin}/stats?filter=(listener_manager.total_listeners_|config_fail|config_reload)");
        let (_, stats) = self.runtime.block_on(self.client.get_text(&url)).map_err(NotYet)?;
        let stat = |suffix: &str| -> Vec<(String, u64)> {
            stats
                .lines()
                .filter_map(|line| line.split_once(": "))
                .filter(|(name, _)| name.ends_with(suffix))
                .filter_map(|(name, value)| Some((name.to_owned(), value.trim().parse().ok()?)))
                .collect()
        };
        if let Some((name, failures)) = stat("config_fail").into_iter().find(|(_, n)| *n > 0) {
            return Err(Rejected(format!("Envoy rejected a configuration update ({name}: {failures})")));
        }
        let warming: u64 = stat("total_listeners_warming").iter().map(|(_, n)| n).sum();
        let active: u64 = stat("total_listeners_active").iter().map(|(_, n)| n).sum();
        // Native mode has a listener per ClusterIP and port; the filter's local mode one for all.
        let wanted = if self.mode == Mode::Native { listeners.len() as u64 } else { 1 };
        if warming > 0 || active < wanted {
            return Err(NotYet(format!("{active} listeners active and {warming} warming, want {wanted} active")));
        }
        for address in listeners {
            StdTcpStream::connect_timeout(address, Duration::from_secs(1))
                .map_err(|error| NotYet(format!("listener {address} does not accept connections: {error}")))?;
        }
        Ok(())
    }

    /// What a reader needs when setup fails: the manifests, what sync wrote, Envoy's log.
    fn setup_context(&self) -> String {
        let mut context = String::new();
        let _ = writeln!(context, "--- manifests ---\n{}", read_manifests(&self.manifests_dir()));
        let _ = writeln!(
            context,
            "--- meshroute sync said ---\n{}",
            fs::read_to_string(self.dir.join("sync.log")).unwrap_or_default()
        );
        for file in ["lds.json", "cds.json", "ecds.json"] {
            let text = fs::read_to_string(self.out_dir().join(file)).unwrap_or_else(|error| format!("({error})"));
            let shown: String = text.chars().take(6000).collect();
            let _ = writeln!(context, "--- {file} written by sync ---\n{shown}");
        }
        let _ = write!(context, "--- Envoy log (last lines) ---\n{}", self.envoy_log_tail());
        context
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // The clients first, then their control plane.
        self.proxyless_clients.lock().unwrap_or_else(PoisonError::into_inner).clear();
        if let Some(xds) = self.xds.take() {
            if thread::panicking() {
                eprintln!("--- mesh {}: meshroute serve said (last lines) ---\n{}", self.name, xds.log_tail(60));
            }
        }
        if let Some(mut envoy) = self.envoy.take() {
            let _ = envoy.kill();
            let _ = envoy.wait();
        }
        if thread::panicking() && self.ready {
            eprintln!("--- mesh {}: Envoy log (last lines) ---\n{}", self.name, self.envoy_log_tail());
        }
        if std::env::var_os("MESHROUTE_E2E_KEEP").is_some() {
            eprintln!("mesh {}: files kept in {}", self.name, self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
        CLAIMED_BLOCKS.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.block);
        CLAIMED_ADMIN_PORTS.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.admin_port);
    }
}

/// Which of a Service's backends a record is of.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    Http,
    Grpc,
}

/// Received requests for a failure message, one a line (the first 20, then how many more).
fn describe_received(requests: &[SeenRequest]) -> String {
    const SHOWN: usize = 20;
    let mut text: String = requests.iter().take(SHOWN).map(|request| format!("  {request}\n")).collect();
    if requests.len() > SHOWN {
        let _ = writeln!(text, "  ... and {} more", requests.len() - SHOWN);
    }
    if requests.is_empty() {
        text.push_str("  (none)\n");
    }
    text
}

/// Envoy exited because its admin address was in use.
struct AdminPortTaken;

enum Readiness {
    NotYet(String),
    Rejected(String),
}
use Readiness::{NotYet, Rejected};

/// A request about to be sent, with the expectations a test states about it.
#[must_use = "a call does nothing until it is sent"]
#[derive(Clone)]
pub struct Call<'m> {
    mesh: &'m Mesh,
    request: Request,
}

impl Call<'_> {
    /// Adds a request header; `host` replaces the default Host header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if name.eq_ignore_ascii_case("host") {
            self.request.headers.retain(|(known, _)| !known.eq_ignore_ascii_case("host"));
        }
        self.request.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends the request over cleartext HTTP/2 (prior knowledge) instead of HTTP/1.1.
    pub fn http2(mut self) -> Self {
        self.request.http2 = true;
        self
    }

    /// Sends the request and returns the reply, whatever it is.
    #[track_caller]
    pub fn send(self) -> Reply {
        let Call { mesh, request } = self;
        match mesh.runtime.block_on(mesh.client.send(&request)) {
            Ok(reply) => reply,
            Err(error) => panic!("{request}: no HTTP answer: {error}"),
        }
    }

    /// Sends the request and returns the reply with the time it took, from just before the
    /// request is handed to the client (a connection may still have to be opened) to the end of
    /// the answer's body: never shorter than what the proxy spent on the request.
    #[track_caller]
    pub fn send_timed(self) -> (Reply, Duration) {
        let Call { mesh, request } = self;
        let started = Instant::now();
        let result = mesh.runtime.block_on(mesh.client.send(&request));
        let elapsed = started.elapsed();
        match result {
            Ok(reply) => (reply, elapsed),
            Err(error) => panic!("{request}: no HTTP answer: {error}"),
        }
    }

    /// Sends the request and asserts that `backend` itself answered it with `status` (its
    /// `x-echo-backend` header and report are on the answer): the status is the backend's,
    /// passed on by the proxy, not one the proxy made up.
    #[track_caller]
    pub fn expect_backend_status(self, backend: &str, status: u16) -> Reply {
        let request = self.request.clone();
        let reply = self.send();
        let from = reply.echo.as_ref().map(|echo| echo.backend.as_str());
        assert!(
            reply.status == status && reply.backend.as_deref() == Some(backend) && from == Some(backend),
            "{request}: expected status {status} from backend {backend}, got {reply}"
        );
        reply
    }

    /// Sends the request and asserts that `backend` answered it, unchanged: status 200, the
    /// backend saw the method and path that were sent, and it did not see the selection header.
    #[track_caller]
    pub fn expect_backend(self, backend: &str) -> Reply {
        self.expect_one_of(&[backend])
    }

    /// Sends the request and asserts that one of `backends` answered it, unchanged, as
    /// [`Call::expect_backend`] does for one.
    #[track_caller]
    pub fn expect_one_of(self, backends: &[&str]) -> Reply {
        let path = self.request.path.clone();
        self.expect_answer(backends, &path)
    }

    /// Sends the request and asserts that `backend` answered it at `path` (with its query
    /// string) rather than at the path that was sent, as a route that rewrites the path makes it;
    /// otherwise unchanged, as [`Call::expect_backend`] checks.
    #[track_caller]
    pub fn expect_backend_at(self, backend: &str, path: &str) -> Reply {
        self.expect_answer(&[backend], path)
    }

    /// Sends the request and asserts that the proxy answered it itself with the redirect
    /// `status` and exactly `location` as its `Location` header: no backend answered.
    #[track_caller]
    pub fn expect_redirect(self, status: u16, location: &str) -> Reply {
        let request = self.request.clone();
        let reply = self.send();
        let got = reply.header("location");
        assert!(
            reply.backend.is_none() && reply.echo.is_none(),
            "{request}: expected a {status} redirect to {location} from the proxy, but a backend answered: {reply}"
        );
        assert_eq!(
            reply.status, status,
            "{request}: expected a {status} redirect to {location}, got {reply} with Location {got:?}"
        );
        assert_eq!(got, Some(location), "{request}: the Location of the {status} redirect");
        reply
    }

    /// One of `backends` answered with status 200, having seen `path`, the request's method
    /// and no selection header.
    #[track_caller]
    fn expect_answer(self, backends: &[&str], path: &str) -> Reply {
        let request = self.request.clone();
        let reply = self.send();
        let expected = backends.join(" or ");
        let echo = match (&reply.backend, &reply.echo) {
            (Some(backend), Some(echo))
                if reply.status == 200 && echo.backend == *backend && backends.contains(&backend.as_str()) =>
            {
                echo
            }
            _ => panic!("{request}: expected an answer from {expected}, got {reply}"),
        };
        assert_eq!(echo.path, path, "{request}: the path {} saw", echo.backend);
        assert_eq!(echo.method, request.method.as_str(), "{request}: {} saw another method", echo.backend);
        assert_eq!(
            reply.seen_header(SELECTION_HEADER),
            None,
            "{request}: {} received the selection header {SELECTION_HEADER}",
            echo.backend
        );
        reply
    }

    /// Sends the request and asserts the status; an error status must come from the proxy, not
    /// from a backend.
    #[track_caller]
    pub fn expect_status(self, status: u16) -> Reply {
        let request = self.request.clone();
        let reply = self.send();
        assert_eq!(reply.status, status, "{request}: expected status {status}, got {reply}");
        if status >= 400 {
            assert_eq!(reply.backend, None, "{request}: status {status} should come from the proxy, got {reply}");
        }
        reply
    }

    /// Asks `meshroute explain` (the filter's own matching code, run on the command line) how
    /// this request would be routed, given the mesh's manifests, for the mesh's client
    /// namespace.
    #[track_caller]
    pub fn explain(self) -> Explanation {
        let Call { mesh, request } = self;
        let mut args = vec![
            "--to".to_owned(),
            request.address.to_string(),
            "--method".to_owned(),
            request.method.to_string(),
            "--path".to_owned(),
            request.path.clone(),
        ];
        for (name, value) in &request.headers {
            args.extend(["-H".to_owned(), format!("{name}: {value}")]);
        }
        mesh.explain(&args, &request.to_string())
    }

    /// Sends the request `n` times ([`SPREAD_CONCURRENCY`] at once) and counts the outcomes.
    #[track_caller]
    pub fn spread(self, n: usize) -> Tally {
        let Call { mesh, request } = self;
        let (client, sent) = (mesh.client.clone(), request.clone());
        let outcomes = mesh.tally(n, move || {
            let (client, request) = (client.clone(), sent.clone());
            async move { Ok(client.send(&request).await?.outcome()) }
        });
        match outcomes {
            Ok(tally) if tally.total() == n => tally,
            Ok(tally) => panic!("{request}: sent {n} requests but counted {tally}"),
            Err(error) => panic!("{request}: no HTTP answer: {error}"),
        }
    }
}

impl Mesh {
    /// Runs `one` `n` times, [`SPREAD_CONCURRENCY`] at once, and counts the outcomes it names;
    /// the first error ends the count.
    fn tally<F, Fut>(&self, n: usize, one: F) -> Result<Tally, String>
    where
        F: Fn() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<String, String>> + Send,
    {
        self.runtime.block_on(async {
            let mut workers = JoinSet::new();
            for worker in 0..SPREAD_CONCURRENCY {
                let one = one.clone();
                let share = n / SPREAD_CONCURRENCY + usize::from(worker < n % SPREAD_CONCURRENCY);
                workers.spawn(async move {
                    let mut tally = Tally::default();
                    for _ in 0..share {
                        tally.add(one().await?);
                    }
                    Ok::<_, String>(tally)
                });
            }
            let mut total = Tally::default();
            while let Some(done) = workers.join_next().await {
                for (outcome, count) in done.map_err(|error| error.to_string())??.counts {
                    *total.counts.entry(outcome).or_default() += count;
                }
            }
            Ok(total)
        })
    }
}

/// A Service port as a test names it, and its ClusterIP address.
#[derive(Clone, Debug)]
pub(crate) struct Frontend {
    /// `NAME` or `NAME.NAMESPACE`, as the test named it.
    pub(crate) name: String,
    pub(crate) address: SocketAddr,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.address.port())
    }
}

/// A gRPC call about to be made, with the expectations a test states about it. Each call opens
/// its own HTTP/2 connection; [`GrpcCall::spread`] shares one among its calls.
#[must_use = "a call does nothing until it is made"]
#[derive(Clone)]
pub struct GrpcCall<'m> {
    mesh: &'m Mesh,
    frontend: Frontend,
    /// `/SERVICE/METHOD`.
    method: String,
    message: String,
    metadata: Vec<(String, String)>,
}

impl fmt::Display for GrpcCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gRPC {} to {} ({})", self.method, self.frontend, self.frontend.address)?;
        for (i, (name, value)) in self.metadata.iter().enumerate() {
            write!(f, "{} {name}: {value}", if i == 0 { " with" } else { "," })?;
        }
        Ok(())
    }
}

/// A gRPC outcome for counting, like [`Reply::outcome`]: the backend's name for an answer, else
/// `gRPC CODE`, with the backend that gave the status if one did.
fn grpc_outcome(result: &Result<tonic::Response<EchoResponse>, Status>) -> String {
    match result {
        Ok(response) => response.get_ref().backend.clone(),
        Err(status) => match grpc::header_text(status.metadata().as_ref(), BACKEND_HEADER) {
            Some(backend) => format!("gRPC {:?} from {backend}", status.code()),
            None => format!("gRPC {:?}", status.code()),
        },
    }
}

impl GrpcCall<'_> {
    /// Adds request metadata. HTTP/2 sends header names in lower case, so `name` should be too.
    pub fn metadata(mut self, name: &str, value: &str) -> Self {
        self.metadata.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The request message (`hello` by default).
    pub fn message(mut self, message: &str) -> Self {
        message.clone_into(&mut self.message);
        self
    }

    pub(crate) fn channel(&self) -> tonic::transport::Channel {
        let _runtime = self.mesh.runtime.enter();
        grpc::channel(&self.frontend.address.to_string()).unwrap_or_else(|error| panic!("{self}: {error}"))
    }

    /// Makes the unary call and returns the answer or the status, whatever it is.
    pub fn send(self) -> Result<tonic::Response<EchoResponse>, Status> {
        let channel = self.channel();
        self.mesh.runtime.block_on(grpc::unary(channel, &self.method, &self.message, &self.metadata))
    }

    /// Makes the unary call and names its outcome as [`GrpcCall::spread`] counts it: the
    /// answering backend's name, `gRPC CODE` for a status from the proxy, or `gRPC CODE from
    /// BACKEND` for a status a backend gave (a method it does not have).
    pub fn outcome(self) -> String {
        grpc_outcome(&self.send())
    }

    /// Asks `meshroute explain --grpc` how this call would be routed, as [`Call::explain`].
    #[track_caller]
    pub fn explain(self) -> Explanation {
        let mut args = vec!["--to".to_owned(), self.frontend.address.to_string(), "--grpc".to_owned(), self.method.clone()];
        for (name, value) in &self.metadata {
            args.extend(["-H".to_owned(), format!("{name}: {value}")]);
        }
        self.mesh.explain(&args, &self.to_string())
    }

    /// Makes the unary call and asserts that `backend` answered it, unchanged: the method it
    /// served, the message and the metadata are the ones sent, and it did not see the selection
    /// header.
    #[track_caller]
    pub fn expect_backend(self, backend: &str) -> EchoResponse {
        self.expect_one_of(&[backend])
    }

    /// Makes the unary call and asserts that one of `backends` answered it, unchanged, as
    /// [`GrpcCall::expect_backend`] does for one.
    #[track_caller]
    pub fn expect_one_of(self, backends: &[&str]) -> EchoResponse {
        let call = self.clone();
        let expected = backends.join(" or ");
        let response = match self.send() {
            Ok(response) => response,
            Err(status) => panic!("{call}: expected an answer from {expected}, got {}", describe_status(&status)),
        };
        let header = grpc::header_text(response.metadata().as_ref(), BACKEND_HEADER);
        let answer = response.into_inner();
        assert!(backends.contains(&answer.backend.as_str()), "{call}: expected an answer from {expected}, got {answer:?}");
        assert_eq!(header.as_deref(), Some(answer.backend.as_str()), "{call}: response header {BACKEND_HEADER}");
        call.assert_unchanged(&answer);
        assert_eq!(answer.message, call.message, "{call}: {} saw another message", answer.backend);
        answer
    }

    /// Makes the unary call and asserts that `backend` answered it, as [`GrpcCall::expect_backend`]
    /// does, except that the metadata the backend saw is left for the test to check (a route that
    /// modifies request headers changes it). Returns the whole response: the answer, and as its
    /// metadata the response headers and trailers the client received.
    #[track_caller]
    pub fn expect_backend_response(self, backend: &str) -> tonic::Response<EchoResponse> {
        let call = self.clone();
        let response = match self.send() {
            Ok(response) => response,
            Err(status) => panic!("{call}: expected an answer from {backend}, got {}", describe_status(&status)),
        };
        let header = grpc::header_text(response.metadata().as_ref(), BACKEND_HEADER);
        let answer = response.get_ref();
        assert_eq!(answer.backend, backend, "{call}: expected an answer from {backend}, got {answer:?}");
        assert_eq!(header.as_deref(), Some(backend), "{call}: response header {BACKEND_HEADER}");
        assert_eq!(answer.method, call.method, "{call}: {backend} served another method: {answer:?}");
        assert_eq!(answer.message, call.message, "{call}: {backend} saw another message");
        assert_eq!(
            answer.metadata.get(SELECTION_HEADER),
            None,
            "{call}: {backend} received the selection header {SELECTION_HEADER}"
        );
        response
    }

    /// Makes the unary call and asserts that it failed with `code`, given by the proxy: no
    /// backend answered.
    #[track_caller]
    pub fn expect_code(self, code: Code) -> Status {
        let call = self.clone();
        match self.send() {
            Ok(response) => panic!("{call}: expected gRPC status {code:?}, got an answer: {:?}", response.get_ref()),
            Err(status) => {
                assert_eq!(status.code(), code, "{call}: expected gRPC status {code:?}, got {}", describe_status(&status));
                let backend = grpc::header_text(status.metadata().as_ref(), BACKEND_HEADER);
                assert_eq!(backend, None, "{call}: status {code:?} should come from the proxy, got {}", describe_status(&status));
                status
            }
        }
    }

    /// Makes the unary call and asserts that `backend` answered it with status `code` (a
    /// method or service the backend does not have): the call was routed there.
    #[track_caller]
    pub fn expect_backend_status(self, backend: &str, code: Code) -> Status {
        let call = self.clone();
        match self.send() {
            Ok(response) => panic!("{call}: expected {code:?} from {backend}, got an answer: {:?}", response.get_ref()),
            Err(status) => {
                let from = grpc::header_text(status.metadata().as_ref(), BACKEND_HEADER);
                assert!(
                    status.code() == code && from.as_deref() == Some(backend),
                    "{call}: expected {code:?} from {backend}, got {}",
                    describe_status(&status)
                );
                status
            }
        }
    }

    /// Makes the unary call `n` times ([`SPREAD_CONCURRENCY`] at once, over one connection) and
    /// counts the outcomes: backend names, or `gRPC CODE` for statuses.
    #[track_caller]
    pub fn spread(self, n: usize) -> Tally {
        let channel = self.channel();
        let (method, message, metadata) = (self.method.clone(), self.message.clone(), self.metadata.clone());
        let outcomes = self.mesh.tally(n, move || {
            let (channel, method, message, metadata) = (channel.clone(), method.clone(), message.clone(), metadata.clone());
            async move { Ok(grpc_outcome(&grpc::unary(channel, &method, &message, &metadata).await)) }
        });
        match outcomes {
            Ok(tally) if tally.total() == n => tally,
            Ok(tally) => panic!("{self}: made {n} calls but counted {tally}"),
            Err(error) => panic!("{self}: {error}"),
        }
    }

    /// Makes a bidirectional streaming call (the call's method should be `EchoStream`) that
    /// sends `messages` one at a time, each after the answer to the previous one, and asserts
    /// that `backend` answered each in order, unchanged, and ended with its trailers.
    #[track_caller]
    pub fn expect_stream(self, backend: &str, messages: &[&str]) -> StreamReply {
        let channel = self.channel();
        let exchange = grpc::ping_pong(channel, &self.method, messages, &self.metadata);
        let reply = match self.mesh.runtime.block_on(exchange) {
            Ok(reply) => reply,
            Err(status) => panic!("{self}: expected a stream from {backend}, got {}", describe_status(&status)),
        };
        self.assert_stream(backend, messages, &reply);
        reply
    }

    /// Makes a bidirectional streaming call that sends all `messages` and ends its request with
    /// `trailers`, and asserts that `backend` answered each message in order and saw the
    /// trailers.
    #[track_caller]
    pub fn expect_stream_with_trailers(self, backend: &str, messages: &[&str], trailers: &[(&str, &str)]) -> StreamReply {
        assert!(self.metadata.is_empty(), "{self}: a call with request trailers sends no metadata");
        let channel = self.channel();
        let exchange = grpc::stream_with_trailers(channel, &self.method, messages, trailers);
        let reply = match self.mesh.runtime.block_on(exchange) {
            Ok(reply) => reply,
            Err(status) => panic!("{self}: expected a stream from {backend}, got {}", describe_status(&status)),
        };
        self.assert_stream(backend, messages, &reply);
        for (name, value) in trailers {
            let reported = format!("{}{name}", grpc::REQUEST_TRAILER_PREFIX);
            assert_eq!(
                reply.trailers.get(&reported).map(String::as_str),
                Some(*value),
                "{self}: {backend} should have seen the request trailer {name}: {value}; its trailers: {:?}",
                reply.trailers
            );
        }
        reply
    }

    #[track_caller]
    fn assert_stream(&self, backend: &str, messages: &[&str], reply: &StreamReply) {
        assert_eq!(reply.backend.as_deref(), Some(backend), "{self}: response header {BACKEND_HEADER}");
        let got: Vec<(&str, &str, u32)> =
            reply.answers.iter().map(|answer| (answer.backend.as_str(), answer.message.as_str(), answer.sequence)).collect();
        let expected: Vec<(&str, &str, u32)> = (0..).zip(messages).map(|(i, message)| (backend, *message, i)).collect();
        assert_eq!(got, expected, "{self}: every message answered by {backend}, in order (backend, message, sequence)");
        for answer in &reply.answers {
            self.assert_unchanged(answer);
        }
        assert_eq!(
            reply.trailers.get(grpc::MESSAGES_TRAILER),
            Some(&messages.len().to_string()),
            "{self}: {backend}'s trailers should count {} messages: {:?}",
            messages.len(),
            reply.trailers
        );
    }

    /// The backend served the method that was called, saw the metadata that was sent, and did
    /// not see the selection header.
    #[track_caller]
    fn assert_unchanged(&self, answer: &EchoResponse) {
        assert_eq!(answer.method, self.method, "{self}: {} served another method: {answer:?}", answer.backend);
        for (name, value) in &self.metadata {
            assert_eq!(
                answer.metadata.get(name).map(String::as_str),
                Some(value.as_str()),
                "{self}: {} should have seen the metadata {name}: {value}: {answer:?}",
                answer.backend
            );
        }
        assert_eq!(
            answer.metadata.get(SELECTION_HEADER),
            None,
            "{self}: {} received the selection header {SELECTION_HEADER}",
            answer.backend
        );
    }
}

/// `14 (Unavailable): message, from backend NAME`.
fn describe_status(status: &Status) -> String {
    let mut text = format!("status {} ({:?})", status.code() as i32, status.code());
    if !status.message().is_empty() {
        let _ = write!(text, ": {}", status.message());
    }
    match grpc::header_text(status.metadata().as_ref(), BACKEND_HEADER) {
        Some(backend) => {
            let _ = write!(text, ", from backend {backend}");
        }
        None => text.push_str(", from no backend"),
    }
    text
}

/// The Service and its EndpointSlice: every port of the Service goes, by port name, to the port
/// of the echo backend of its kind (the Service's `targetPort` is not what Envoy should dial; the
/// slice's port is). gRPC ports declare appProtocol `kubernetes.io/h2c`; undeclared ports have
/// neither a name nor an appProtocol, in the Service and in the slice.
fn service_manifests(service: &Service) -> String {
    let grpc_ports = service.ports.iter().filter(|port| matches!(port, Port::Grpc(_))).count();
    let port_name = |port: &Port| match port {
        Port::Http(number) => Some(format!("http-{number}")),
        Port::Grpc(_) if grpc_ports == 1 => Some("grpc".to_owned()),
        Port::Grpc(number) => Some(format!("grpc-{number}")),
        Port::HttpUndeclared(_) | Port::GrpcUndeclared(_) => None,
    };
    let mut yaml = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  type: ClusterIP\n  clusterIP: {ip}\n  ports:\n",
        name = service.name,
        namespace = service.namespace,
        ip = service.cluster_ip,
    );
    for port in &service.ports {
        let number = port.number();
        match port_name(port) {
            Some(name) => {
                let _ = write!(yaml, "  - name: {name}\n    protocol: TCP\n    port: {number}\n    targetPort: 8080\n");
            }
            None => {
                let _ = write!(yaml, "  - protocol: TCP\n    port: {number}\n    targetPort: 8080\n");
            }
        }
        if let Port::Grpc(_) = port {
            yaml.push_str("    appProtocol: kubernetes.io/h2c\n");
        }
    }
    let _ = write!(
        yaml,
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-echo\n  namespace: {namespace}\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n",
        name = service.name,
        namespace = service.namespace,
    );
    let mut address = None;
    for port in &service.ports {
        let endpoint = if port.serves_grpc() { service.grpc_endpoint } else { service.http_endpoint };
        let Some(endpoint) = endpoint else { panic!("Service {}: no backend for {port:?}", service.name) };
        address = Some(endpoint.ip());
        match port_name(port) {
            Some(name) => {
                let _ = write!(yaml, "- name: {name}\n  protocol: TCP\n  port: {}\n", endpoint.port());
            }
            None => {
                let _ = write!(yaml, "- protocol: TCP\n  port: {}\n", endpoint.port());
            }
        }
        if let Port::Grpc(_) = port {
            yaml.push_str("  appProtocol: kubernetes.io/h2c\n");
        }
    }
    let Some(address) = address else { panic!("Service {} has no ports", service.name) };
    let ready = service.backend != Backend::NoEndpoints;
    let _ = write!(yaml, "endpoints:\n- addresses: [\"{address}\"]\n  conditions:\n    ready: {ready}\n");
    yaml
}

/// A 127.A.B.0/24 block for the test `name`: derived from the name, so a test keeps its block
/// from run to run, and moved on while another mesh of this process has it or anything already
/// listens on one of the Services' ClusterIP:port there (Envoy's listeners share ports with
/// SO_REUSEPORT, so two meshes on one address would silently split each other's traffic).
fn claim_block(name: &str, services: &[Service]) -> (u8, u8) {
    const FIRST_A: u64 = 10;
    const A_VALUES: u64 = 240;
    const B_VALUES: u64 = 254;
    let start = fnv1a(name.as_bytes()) % (A_VALUES * B_VALUES);
    let mut claimed = CLAIMED_BLOCKS.lock().unwrap_or_else(PoisonError::into_inner);
    for attempt in 0..64 {
        let index = (start + attempt) % (A_VALUES * B_VALUES);
        let block = ((FIRST_A + index / B_VALUES) as u8, (1 + index % B_VALUES) as u8);
        if claimed.contains(&block) {
            continue;
        }
        let free = (1u8..).zip(services).all(|(host, service)| {
            service.port_numbers().all(|port| {
                let address = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, block.0, block.1, host)), port);
                match StdTcpListener::bind(address) {
                    Ok(_) => true,
                    Err(error) if error.kind() == ErrorKind::AddrInUse => false,
                    Err(error) => panic!(
                        "cannot listen on {address}: {error}. The tests give Services ClusterIPs in \
                         127.0.0.0/8 and need to listen on their ports (Linux routes all of \
                         127.0.0.0/8 to loopback; ports below 1024 need root or \
                         net.ipv4.ip_unprivileged_port_start=0)"
                    ),
                }
            })
        });
        if free {
            claimed.insert(block);
            return block;
        }
    }
    panic!("mesh {name}: no free 127.x.y.0/24 block found near its own; are old Envoys still running?")
}

/// A port for Envoy's admin interface that nothing listens on now.
fn claim_admin_port() -> u16 {
    let mut claimed = CLAIMED_ADMIN_PORTS.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..100 {
        let port = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap_or_else(|error| panic!("cannot find a free port for Envoy's admin: {error}"));
        if claimed.insert(port) {
            return port;
        }
    }
    panic!("cannot find a free port for Envoy's admin")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

fn work_dir(name: &str) -> PathBuf {
    let sequence = WORK_DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("meshroute-e2e-{name}-{}-{sequence}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    create_dir(&dir);
    dir
}

fn existing(path: PathBuf, build_hint: &str) -> PathBuf {
    assert!(path.is_file(), "{} does not exist; build it first: {build_hint}", path.display());
    path
}

fn create_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
}

fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

fn read_manifests(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = fs::read_dir(dir).into_iter().flatten().flatten().map(|entry| entry.path()).collect();
    files.sort();
    files
        .iter()
        .map(|file| format!("# {}\n{}", file.display(), fs::read_to_string(file).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|error| format!("({}: {error})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `command` with its output in `log`, killing it if it outlives `deadline`.
fn run_bounded(command: &mut Command, log: &Path, deadline: Duration) -> Result<ExitStatus, String> {
    let out = File::create(log).map_err(|error| format!("{}: {error}", log.display()))?;
    let err = out.try_clone().map_err(|error| format!("{}: {error}", log.display()))?;
    let mut child =
        command.stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(|error| format!("could not start: {error}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if started.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {deadline:?}"));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("cannot wait for it: {error}")),
        }
    }
}

/// The series of `family` in Prometheus text exposition format: `family{a="x",b="y"} 3` lines
/// (label values escaped as the format escapes them), by their labels.
pub fn prometheus_series(
    text: &str,
    family: &str,
) -> std::collections::BTreeMap<std::collections::BTreeMap<String, String>, u64> {
    let mut series = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(family) else { continue };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.rsplit_once("} ") {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        let Ok(value) = value.trim().parse::<u64>() else { continue };
        series.insert(prometheus_labels(labels), value);
    }
    series
}

fn prometheus_labels(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut labels = std::collections::BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(name.trim_start_matches(',').to_owned(), value);
        rest = &after[end..];
    }
    labels
}
