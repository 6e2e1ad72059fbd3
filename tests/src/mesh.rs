//! One small mesh per test, run for real: echo backends, the test's manifests, `meshroute sync
//! --once`, and stock Envoy with the filter, all torn down when the [`Mesh`] is dropped.
//!
//! Every Service in a test is backed by an echo server that answers with the Service's own name,
//! so a request that passes through a Service untouched is told apart from one that was routed.
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

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, File};
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

use crate::client::{HttpClient, Reply, Request, Tally};
use crate::{echo, tools};

/// The request header through which the filter hands its choice of cluster to Envoy's router.
/// No client may set it and no backend may see it.
pub const SELECTION_HEADER: &str = "x-meshroute-cluster";

/// The namespace of every generated Service; test routes may omit theirs.
pub const NAMESPACE: &str = "default";

/// Bounds on waiting for the system under test; reaching one is a failure, never a measurement.
const SYNC_DEADLINE: Duration = Duration::from_secs(60);
const READY_DEADLINE: Duration = Duration::from_secs(30);

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
}

/// A Service of the mesh under test.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<u16>,
    /// Where its echo backend listens.
    pub endpoint: SocketAddr,
}

/// What a test asks for; [`MeshBuilder::start`] makes it real.
#[must_use]
pub struct MeshBuilder {
    name: String,
    services: Vec<(String, Vec<u16>)>,
    routes: Vec<String>,
}

impl MeshBuilder {
    /// A Service with one port, 80, backed by an echo server named like the Service.
    pub fn service(self, name: &str) -> Self {
        self.service_with_ports(name, &[80])
    }

    /// A Service with the given ports, all served by one echo server named like the Service.
    pub fn service_with_ports(mut self, name: &str, ports: &[u16]) -> Self {
        assert!(!ports.is_empty(), "Service {name} needs at least one port");
        assert!(self.services.iter().all(|(known, _)| known != name), "Service {name} declared twice");
        self.services.push((name.to_owned(), ports.to_vec()));
        self
    }

    /// Manifests (HTTPRoutes and anything else) written as they are into the manifests directory.
    pub fn routes(mut self, yaml: &str) -> Self {
        self.routes.push(yaml.to_owned());
        self
    }

    /// Starts the backends, publishes the manifests with `meshroute sync --once` and starts
    /// Envoy; returns once Envoy is live and listening on every ClusterIP and port.
    pub fn start(self) -> Mesh {
        let meshroute = existing(tools::meshroute_bin(), "cargo build --release -p meshroute");
        let wasm = existing(tools::filter_wasm(), "cargo build --release -p meshroute-filter --target wasm32-wasip1");
        let envoy = existing(tools::envoy_bin(), "make setup (or set ENVOY_BIN)");

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("cannot start a tokio runtime: {error}"));

        let mut services = Vec::new();
        for (name, ports) in &self.services {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
                .unwrap_or_else(|error| panic!("echo backend {name}: cannot listen: {error}"));
            let endpoint = listener.local_addr().unwrap_or_else(|error| panic!("echo backend {name}: {error}"));
            runtime.spawn(echo::serve(name.clone(), listener));
            services.push(Service {
                name: name.clone(),
                cluster_ip: Ipv4Addr::UNSPECIFIED,
                ports: ports.clone(),
                endpoint,
            });
        }

        let block = claim_block(&self.name, &services);
        for (host, service) in (1u8..).zip(&mut services) {
            service.cluster_ip = Ipv4Addr::new(127, block.0, block.1, host);
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
        };
        mesh.write_manifests(&self.routes);
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
                Err(AdminPortTaken) => panic!(
                    "mesh {}: Envoy could not bind its admin port three times.\n{}",
                    mesh.name,
                    mesh.setup_context()
                ),
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
}

impl Mesh {
    /// Starts describing the mesh for the test `name` (used for its address block and files).
    pub fn builder(name: &str) -> MeshBuilder {
        MeshBuilder { name: name.to_owned(), services: Vec::new(), routes: Vec::new() }
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

    /// The Service called `name`.
    #[track_caller]
    pub fn service(&self, name: &str) -> &Service {
        match self.services.iter().find(|service| service.name == name) {
            Some(service) => service,
            None => {
                let known: Vec<&str> = self.services.iter().map(|service| service.name.as_str()).collect();
                panic!("no Service {name} in mesh {}; it has {known:?}", self.name)
            }
        }
    }

    /// The ClusterIP and port of a Service, `NAME` (its first port) or `NAME:PORT`.
    #[track_caller]
    pub fn address_of(&self, service: &str) -> String {
        self.get(service, "/").request.address.to_string()
    }

    /// `GET path` to a Service, `NAME` (its first port) or `NAME:PORT`.
    #[track_caller]
    pub fn get(&self, service: &str, path: &str) -> Call<'_> {
        self.request("GET", service, path)
    }

    /// `METHOD path` to a Service, `NAME` (its first port) or `NAME:PORT`. The Host header is
    /// what a client in the mesh would send: `NAME`, or `NAME:PORT` for a port other than 80.
    #[track_caller]
    pub fn request(&self, method: &str, service: &str, path: &str) -> Call<'_> {
        let (name, port) = match service.split_once(':') {
            Some((name, port)) => match port.parse() {
                Ok(port) => (name, Some(port)),
                Err(_) => panic!("bad port in {service:?}"),
            },
            None => (service, None),
        };
        let target = self.service(name);
        let port = port.unwrap_or(target.ports[0]);
        assert!(target.ports.contains(&port), "Service {name} has no port {port}; it has {:?}", target.ports);
        let Ok(method) = Method::from_bytes(method.as_bytes()) else { panic!("bad method {method:?}") };
        let host = if port == 80 { name.to_owned() } else { format!("{name}:{port}") };
        Call {
            mesh: self,
            request: Request {
                method,
                service: format!("{name}:{port}"),
                address: SocketAddr::new(IpAddr::V4(target.cluster_ip), port),
                path: path.to_owned(),
                headers: vec![("host".to_owned(), host)],
                http2: false,
            },
        }
    }

    /// The last lines of Envoy's log.
    pub fn envoy_log_tail(&self) -> String {
        log_tail(&self.dir.join("envoy.log"), 60)
    }

    fn manifests_dir(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    fn out_dir(&self) -> PathBuf {
        self.dir.join("envoy")
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
            .arg("--wasm")
            .arg(wasm)
            .arg("--admin-port")
            .arg(self.admin_port.to_string())
            .current_dir(tools::workspace_root());
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
            .flat_map(|service| service.ports.iter().map(|port| SocketAddr::new(IpAddr::V4(service.cluster_ip), *port)))
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
                    panic!(
                        "mesh {}: Envoy exited ({status}) before it was ready.\n{}",
                        self.name,
                        self.setup_context()
                    );
                }
            }
            let last = match self.readiness(&listeners) {
                Ok(()) => return Ok(()),
                Err(Rejected(why)) => panic!("mesh {}: {why}\n{}", self.name, self.setup_context()),
                Err(NotYet(why)) => why,
            };
            if started.elapsed() > READY_DEADLINE {
                panic!(
                    "mesh {}: Envoy not ready after {READY_DEADLINE:?}: {last}\n{}",
                    self.name,
                    self.setup_context()
                );
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
        if warming > 0 || active < listeners.len() as u64 {
            return Err(NotYet(format!(
                "{active} listeners active and {warming} warming, want {} active (one per ClusterIP and port)",
                listeners.len()
            )));
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
        for file in ["lds.yaml", "cds.yaml", "ecds.yaml"] {
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
        assert_eq!(echo.path, request.path, "{request}: {} saw another path", echo.backend);
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
    /// this request would be routed, given the mesh's manifests.
    #[track_caller]
    pub fn explain(self) -> Explanation {
        let Call { mesh, request } = self;
        let log = mesh.dir.join(format!("explain-{}.out", EXPLAINS.fetch_add(1, Ordering::Relaxed)));
        let mut command = Command::new(tools::meshroute_bin());
        command
            .arg("explain")
            .arg(mesh.manifests_dir())
            .arg("--to")
            .arg(request.address.to_string())
            .arg("--method")
            .arg(request.method.as_str())
            .arg("--path")
            .arg(&request.path);
        for (name, value) in &request.headers {
            command.arg("-H").arg(format!("{name}: {value}"));
        }
        let status = run_bounded(&mut command, &log, SYNC_DEADLINE);
        let said = fs::read_to_string(&log).unwrap_or_default();
        match status {
            Ok(status) if status.success() => match serde_json::from_str(said.trim()) {
                Ok(explanation) => explanation,
                Err(error) => panic!("{request}: `{command:?}` printed no explanation ({error}):\n{said}"),
            },
            Ok(status) => panic!("{request}: `{command:?}` failed ({status}):\n{said}"),
            Err(error) => panic!("{request}: `{command:?}`: {error}\n{said}"),
        }
    }

    /// Sends the request `n` times ([`SPREAD_CONCURRENCY`] at once) and counts the outcomes.
    #[track_caller]
    pub fn spread(self, n: usize) -> Tally {
        let Call { mesh, request } = self;
        let outcomes = mesh.runtime.block_on(async {
            let mut workers = JoinSet::new();
            for worker in 0..SPREAD_CONCURRENCY {
                let (client, request) = (mesh.client.clone(), request.clone());
                let share = n / SPREAD_CONCURRENCY + usize::from(worker < n % SPREAD_CONCURRENCY);
                workers.spawn(async move {
                    let mut tally = Tally::default();
                    for _ in 0..share {
                        tally.add(client.send(&request).await?.outcome());
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
            Ok::<_, String>(total)
        });
        match outcomes {
            Ok(tally) if tally.total() == n => tally,
            Ok(tally) => panic!("{request}: sent {n} requests but counted {tally}"),
            Err(error) => panic!("{request}: no HTTP answer: {error}"),
        }
    }
}

/// The Service and its EndpointSlice: every port of the Service goes, by port name, to the echo
/// backend's port (the Service's `targetPort` is not what Envoy should dial; the slice's port is).
fn service_manifests(service: &Service) -> String {
    let mut yaml = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\nspec:\n  type: ClusterIP\n  clusterIP: {ip}\n  ports:\n",
        name = service.name,
        ip = service.cluster_ip,
    );
    for port in &service.ports {
        let _ = write!(yaml, "  - name: http-{port}\n    protocol: TCP\n    port: {port}\n    targetPort: 8080\n");
    }
    let _ = write!(
        yaml,
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-echo\n  namespace: {NAMESPACE}\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n",
        name = service.name,
    );
    for port in &service.ports {
        let _ = write!(yaml, "- name: http-{port}\n  protocol: TCP\n  port: {}\n", service.endpoint.port());
    }
    let _ = write!(yaml, "endpoints:\n- addresses: [\"{}\"]\n  conditions:\n    ready: true\n", service.endpoint.ip());
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
            service.ports.iter().all(|port| {
                let address = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, block.0, block.1, host)), *port);
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
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|error| format!("could not start: {error}"))?;
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
