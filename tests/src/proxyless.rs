//! Proxyless gRPC clients routed by `meshroute serve`, and gRPC calls that run alike on either
//! data plane.
//!
//! A [`ProxylessClient`] is the real thing: Python grpcio (pinned, installed by `make setup`)
//! running `tests/proxyless/client.py`, with `GRPC_XDS_BOOTSTRAP` naming a bootstrap file and one
//! channel to an `xds:///NAME.NS.svc.cluster.local:PORT` target kept for the client's life, so
//! grpcio's own xDS resolver takes listeners, routes, clusters and endpoints from the control
//! plane, and connects to the backends' endpoints directly. The process is killed when the
//! client is dropped.
//!
//! An [`XdsServer`] is `meshroute serve DIR --xds 127.0.0.1:PORT` on a free port; its bootstrap for
//! a client comes from `meshroute grpc-bootstrap --xds ADDR --namespace NS`.
//!
//! [`Mesh::rpc`] makes a unary call to a Service on the mesh's data plane ([`DataPlane`]):
//! through Envoy at the Service's ClusterIP, as [`Mesh::grpc`] does, or through a proxyless
//! client dialling the Service's name. Both give an [`Outcome`], and the expectations
//! ([`Rpc::expect_backend`], [`Rpc::expect_code`], [`Rpc::spread`], ...) are written once over
//! it, so one test body states the same expectations for both data planes:
//!
//! ```no_run
//! # use meshroute_e2e::mesh::{Mesh, Port};
//! # use meshroute_e2e::proxyless::DataPlane;
//! # use tonic::Code;
//! fn product_page(plane: DataPlane) {
//!     let mesh = Mesh::builder(&format!("product_page_{plane}"))
//!         .data_plane(plane)
//!         .grpc_service("echo-service")
//!         .grpc_service("grpc-infra-backend-v1")
//!         .routes("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n...")
//!         .start();
//!     mesh.rpc("echo-service", "Echo").expect_backend("grpc-infra-backend-v1");
//!     mesh.rpc("echo-service", "EchoThree").expect_code(Code::Unimplemented);
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::json;
use tonic::{Code, Status};

use crate::client::Tally;
use crate::echo::{ATTEMPTS_HEADER, BACKEND_HEADER};
use crate::grpc::{self, EchoResponse};
use crate::mesh::{GrpcCall, Mesh, SELECTION_HEADER};
use crate::tools;

/// Bound on a client or `meshroute serve` getting ready; reaching it is a failure.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Bound on one probe of a proxyless client (however many calls it makes); reaching it means
/// the client hung, not that anything was slow.
const PROBE_DEADLINE: Duration = Duration::from_secs(120);

/// Calls in flight at once when spreading many calls, as [`GrpcCall::spread`] has them.
const SPREAD_CONCURRENCY: usize = 8;

static CLIENT_DIRS: AtomicUsize = AtomicUsize::new(0);
static SERVE_LOGS: AtomicUsize = AtomicUsize::new(0);

/// Runs each named case `fn(DataPlane)` of the calling test file as two tests, `CASE::envoy`
/// and `CASE::proxyless`: the same expectations through Envoy and through proxyless clients.
#[macro_export]
macro_rules! on_both_data_planes {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn envoy() {
                super::$case($crate::proxyless::DataPlane::Envoy)
            }

            #[test]
            fn proxyless() {
                super::$case($crate::proxyless::DataPlane::Proxyless)
            }
        }
    )*};
}

/// What routes a mesh's gRPC calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPlane {
    /// Envoy with the meshroute filter (or natively, [`crate::mesh::Mode`]), configured by
    /// `meshroute sync`; clients call a Service's ClusterIP.
    Envoy,
    /// Proxyless gRPC clients dialling `xds:///NAME.NS.svc.cluster.local:PORT`, configured over
    /// xDS by `meshroute serve`; no proxy between client and backend.
    Proxyless,
}

impl DataPlane {
    pub const ALL: [DataPlane; 2] = [DataPlane::Envoy, DataPlane::Proxyless];
}

impl fmt::Display for DataPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataPlane::Envoy => "envoy",
            DataPlane::Proxyless => "proxyless",
        })
    }
}

/// What one unary call came to, on either data plane.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// `Ok` for an answer.
    pub code: Code,
    /// The echo backend's answer, for `Ok`.
    pub answer: Option<EchoResponse>,
    /// The status message, for an error.
    pub details: String,
    /// The `x-echo-backend` response header or trailer: the backend that answered or gave the
    /// status; none when no backend did (the proxy or the client's routing gave the status).
    pub header_backend: Option<String>,
    /// The `x-echo-attempts` response metadata: how many tries of the call's
    /// `x-echo-attempt-key` the backend that answered had seen ([`crate::echo`]); none without a
    /// key or a backend's answer.
    pub attempts: Option<u64>,
    /// When the call started.
    pub started: SystemTime,
    /// How long it took, connecting (and for a proxyless client's first call, fetching its
    /// configuration) included.
    pub elapsed: Duration,
}

/// The `x-echo-attempts` count in response metadata, if any.
fn attempts_in(metadata: &hyper::header::HeaderMap) -> Option<u64> {
    grpc::header_text(metadata, ATTEMPTS_HEADER).and_then(|count| count.parse().ok())
}

impl Outcome {
    fn from_result(result: &Result<tonic::Response<EchoResponse>, Status>, started: SystemTime, elapsed: Duration) -> Outcome {
        match result {
            Ok(response) => Outcome {
                code: Code::Ok,
                answer: Some(response.get_ref().clone()),
                details: String::new(),
                header_backend: grpc::header_text(response.metadata().as_ref(), BACKEND_HEADER),
                attempts: attempts_in(response.metadata().as_ref()),
                started,
                elapsed,
            },
            Err(status) => Outcome {
                code: status.code(),
                answer: None,
                details: status.message().to_owned(),
                header_backend: grpc::header_text(status.metadata().as_ref(), BACKEND_HEADER),
                attempts: attempts_in(status.metadata().as_ref()),
                started,
                elapsed,
            },
        }
    }

    /// The backend that answered, for an answer.
    pub fn backend(&self) -> Option<&str> {
        self.answer.as_ref().filter(|_| self.code == Code::Ok).map(|answer| answer.backend.as_str())
    }

    /// The outcome as [`GrpcCall::spread`] counts it: the answering backend's name, `gRPC CODE`
    /// for a status no backend gave, `gRPC CODE from BACKEND` for one a backend gave.
    pub fn label(&self) -> String {
        match (self.backend(), &self.header_backend) {
            (Some(backend), _) => backend.to_owned(),
            (None, Some(backend)) => format!("gRPC {:?} from {backend}", self.code),
            (None, None) => format!("gRPC {:?}", self.code),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.answer {
            Some(answer) if self.code == Code::Ok => write!(
                f,
                "an answer from {} (method {}, message {:?}, header {BACKEND_HEADER}: {:?})",
                answer.backend, answer.method, answer.message, self.header_backend
            )?,
            _ => {
                write!(f, "status {} ({:?})", self.code as i32, self.code)?;
                if !self.details.is_empty() {
                    write!(f, ": {}", self.details)?;
                }
                match &self.header_backend {
                    Some(backend) => write!(f, ", from backend {backend}")?,
                    None => write!(f, ", from no backend")?,
                }
            }
        }
        if let Some(attempts) = self.attempts {
            write!(f, ", {ATTEMPTS_HEADER}: {attempts}")?;
        }
        write!(f, " after {} ms", self.elapsed.as_millis())
    }
}

/// One call as the client reports it.
#[derive(Deserialize)]
struct WireResult {
    code: String,
    #[serde(default)]
    backend: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    sequence: u32,
    #[serde(default)]
    details: String,
    #[serde(default)]
    header_backend: Option<String>,
    #[serde(default)]
    attempts: Option<String>,
    started: f64,
    elapsed_s: f64,
}

impl WireResult {
    fn outcome(self) -> Outcome {
        let started = UNIX_EPOCH + Duration::try_from_secs_f64(self.started).unwrap_or_default();
        let elapsed = Duration::try_from_secs_f64(self.elapsed_s).unwrap_or_default();
        let (code, details) = match code_named(&self.code) {
            Some(code) => (code, self.details),
            None => (Code::Unknown, format!("the test client failed ({}): {}", self.code, self.details)),
        };
        let answer = (code == Code::Ok).then_some(EchoResponse {
            backend: self.backend,
            method: self.method,
            message: self.message,
            metadata: self.metadata,
            sequence: self.sequence,
        });
        let attempts = self.attempts.and_then(|count| count.parse().ok());
        Outcome { code, answer, details, header_backend: self.header_backend, attempts, started, elapsed }
    }
}

/// One line the client printed.
#[derive(Deserialize)]
struct WireAnswer {
    #[serde(default)]
    results: Option<Vec<WireResult>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    ready: Option<bool>,
    #[serde(default)]
    started: Option<bool>,
}

/// The code grpcio names `name` (`grpc.StatusCode.NAME`).
fn code_named(name: &str) -> Option<Code> {
    Some(match name {
        "OK" => Code::Ok,
        "CANCELLED" => Code::Cancelled,
        "UNKNOWN" => Code::Unknown,
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "DEADLINE_EXCEEDED" => Code::DeadlineExceeded,
        "NOT_FOUND" => Code::NotFound,
        "ALREADY_EXISTS" => Code::AlreadyExists,
        "PERMISSION_DENIED" => Code::PermissionDenied,
        "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
        "FAILED_PRECONDITION" => Code::FailedPrecondition,
        "ABORTED" => Code::Aborted,
        "OUT_OF_RANGE" => Code::OutOfRange,
        "UNIMPLEMENTED" => Code::Unimplemented,
        "INTERNAL" => Code::Internal,
        "UNAVAILABLE" => Code::Unavailable,
        "DATA_LOSS" => Code::DataLoss,
        "UNAUTHENTICATED" => Code::Unauthenticated,
        _ => return None,
    })
}

/// The client's stdin and the lines it printed, used by one probe at a time.
struct Pipes {
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

/// A proxyless gRPC client process (grpcio) with one channel to its target; killed when dropped.
pub struct ProxylessClient {
    target: String,
    /// The bootstrap's `node.metadata.NAMESPACE`, if it has one.
    namespace: Option<String>,
    child: Mutex<Child>,
    pipes: Mutex<Pipes>,
    /// The bootstrap file and the client's stderr, removed with the client.
    dir: PathBuf,
}

impl ProxylessClient {
    /// Starts a client whose `GRPC_XDS_BOOTSTRAP` file holds `bootstrap` and whose channel goes
    /// to `target` (`xds:///NAME:PORT`); returns once the channel exists (it connects, and
    /// fetches its configuration, on the first call).
    #[track_caller]
    pub fn start(bootstrap: &str, target: &str) -> ProxylessClient {
        Self::spawn(Some(bootstrap), target)
    }

    /// Starts a client with no xDS bootstrap at all, for a plain `HOST:PORT` target.
    #[track_caller]
    pub fn without_xds(target: &str) -> ProxylessClient {
        Self::spawn(None, target)
    }

    #[track_caller]
    fn spawn(bootstrap: Option<&str>, target: &str) -> ProxylessClient {
        let python = tools::python_bin();
        assert!(
            python.is_file(),
            "{} does not exist: `make setup` installs the proxyless client's grpcio into .venv (or set MESHROUTE_PYTHON)",
            python.display()
        );
        let sequence = CLIENT_DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("meshroute-proxyless-{}-{sequence}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        let log = File::create(dir.join("client.log")).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));

        let mut command = Command::new(&python);
        command.arg(tools::proxyless_client_script()).arg(target);
        command.env_remove("GRPC_XDS_BOOTSTRAP").env_remove("GRPC_XDS_BOOTSTRAP_CONFIG");
        let mut namespace = None;
        if let Some(bootstrap) = bootstrap {
            let parsed: serde_json::Value = serde_json::from_str(bootstrap)
                .unwrap_or_else(|error| panic!("the bootstrap for a client of {target} is not JSON ({error}):\n{bootstrap}"));
            namespace = parsed.pointer("/node/metadata/NAMESPACE").and_then(|value| value.as_str()).map(str::to_owned);
            let path = dir.join("bootstrap.json");
            fs::write(&path, bootstrap).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
            command.env("GRPC_XDS_BOOTSTRAP", &path);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", python.display()));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take();
        thread::spawn(move || {
            for line in stdout.into_iter().flat_map(|stdout| BufReader::new(stdout).lines()) {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        let client = ProxylessClient {
            target: target.to_owned(),
            namespace,
            child: Mutex::new(child),
            pipes: Mutex::new(Pipes { stdin, lines }),
            dir,
        };
        let ready = client.read_answer(START_DEADLINE, "start");
        assert_eq!(ready.ready, Some(true), "{client}: expected its ready line first\n{}", client.log());
        client
    }

    /// The target its channel dials.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Its bootstrap's namespace (`node.metadata.NAMESPACE`), if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The client's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(PoisonError::into_inner).id()
    }

    /// What the client (and grpcio) wrote on stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("client.log")).unwrap_or_default()
    }

    /// A unary call of `method` (`Echo` or a full `/SERVICE/METHOD`) on the client's channel.
    pub fn rpc(&self, method: &str) -> Rpc<'_> {
        Rpc::new(Via::Proxyless(Client::Borrowed(self)), method)
    }

    /// Makes one unary call and returns its outcome, whatever it is.
    #[track_caller]
    pub fn call(&self, method: &str, message: &str, metadata: &[(String, String)]) -> Outcome {
        let mut outcomes = self.calls(method, message, metadata, 1, 1);
        match outcomes.pop() {
            Some(outcome) if outcomes.is_empty() => outcome,
            _ => panic!("{self}: one call gave {} outcomes", outcomes.len() + 1),
        }
    }

    /// Makes `n` unary calls, `concurrency` at once, on the client's one channel; their outcomes
    /// in the order they started.
    #[track_caller]
    pub fn calls(
        &self,
        method: &str,
        message: &str,
        metadata: &[(String, String)],
        n: usize,
        concurrency: usize,
    ) -> Vec<Outcome> {
        let probe = json!({
            "method": grpc::method_path(method),
            "message": message,
            "metadata": metadata,
            "count": n,
            "concurrency": concurrency,
            "timeout_s": grpc::CALL_DEADLINE.as_secs_f64(),
        });
        let answer = self.probe(&probe);
        let outcomes: Vec<Outcome> = answer.results.unwrap_or_default().into_iter().map(WireResult::outcome).collect();
        assert_eq!(outcomes.len(), n, "{self}: asked for {n} calls, got {} outcomes", outcomes.len());
        outcomes
    }

    /// Starts making the call over and over in the background, one at a time, a new one every
    /// `interval`, until [`ProxylessClient::steady_stop`].
    #[track_caller]
    pub fn steady_start(&self, method: &str, message: &str, metadata: &[(String, String)], interval: Duration) {
        let probe = json!({
            "op": "steady_start",
            "method": grpc::method_path(method),
            "message": message,
            "metadata": metadata,
            "interval_s": interval.as_secs_f64(),
            "timeout_s": grpc::CALL_DEADLINE.as_secs_f64(),
        });
        let answer = self.probe(&probe);
        assert_eq!(answer.started, Some(true), "{self}: the steady calls did not start");
    }

    /// Stops the steady calls; every call they made, oldest first.
    #[track_caller]
    pub fn steady_stop(&self) -> Vec<Outcome> {
        let answer = self.probe(&json!({"op": "steady_stop"}));
        answer.results.unwrap_or_default().into_iter().map(WireResult::outcome).collect()
    }

    /// Sends one probe and reads its answer; an answer with an error fails the test.
    #[track_caller]
    fn probe(&self, probe: &serde_json::Value) -> WireAnswer {
        {
            let mut pipes = self.pipes.lock().unwrap_or_else(PoisonError::into_inner);
            let written = match pipes.stdin.as_mut() {
                Some(stdin) => writeln!(stdin, "{probe}").and_then(|()| stdin.flush()),
                None => Err(std::io::Error::other("stdin closed")),
            };
            if let Err(error) = written {
                panic!("{self}: cannot send it a probe ({error}); it said:\n{}", self.log());
            }
        }
        let answer = self.read_answer(PROBE_DEADLINE, "answer a probe");
        if let Some(error) = answer.error {
            panic!("{self}: the probe {probe} failed: {error}\n{}", self.log());
        }
        answer
    }

    /// Reads the client's next line, which it prints to `what` (for messages).
    #[track_caller]
    fn read_answer(&self, deadline: Duration, what: &str) -> WireAnswer {
        let line = {
            let pipes = self.pipes.lock().unwrap_or_else(PoisonError::into_inner);
            pipes.lines.recv_timeout(deadline)
        };
        match line {
            Ok(line) => serde_json::from_str(&line).unwrap_or_else(|error| panic!("{self}: printed {line:?}: {error}")),
            Err(RecvTimeoutError::Timeout) => panic!("{self}: waited {deadline:?} for it to {what}\n{}", self.log()),
            Err(RecvTimeoutError::Disconnected) => {
                let status = match self.child.lock().unwrap_or_else(PoisonError::into_inner).wait() {
                    Ok(status) => status.to_string(),
                    Err(error) => error.to_string(),
                };
                panic!(
                    "{self}: exited ({status}) before it could {what}; it said:\n{}\n(`make setup` installs grpcio into .venv)",
                    self.log()
                )
            }
        }
    }
}

impl fmt::Display for ProxylessClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proxyless client of {}", self.target)?;
        if let Some(namespace) = &self.namespace {
            write!(f, " in namespace {namespace}")?;
        }
        Ok(())
    }
}

impl Drop for ProxylessClient {
    /// Closes its stdin (it exits), kills it if it is still there a moment later, and removes
    /// its files: no process is left behind.
    fn drop(&mut self) {
        self.pipes.lock().unwrap_or_else(PoisonError::into_inner).stdin = None;
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        while matches!(child.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        if thread::panicking() {
            eprintln!("--- proxyless client of {}: stderr ---\n{}", self.target, self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `meshroute serve DIR --xds 127.0.0.1:PORT`: the xDS server proxyless clients take their
/// routes from, and with `--wasm` an Envoy too ([`crate::mesh::Mode::Ads`]). Killed when dropped.
pub struct XdsServer {
    child: Child,
    address: SocketAddr,
    manifests: PathBuf,
    log: PathBuf,
    wasm: Option<PathBuf>,
}

impl XdsServer {
    /// Starts serving the manifests in `manifests` on a free loopback port, its output appended
    /// to `log`; returns once it accepts connections.
    #[track_caller]
    pub fn start(manifests: &Path, log: &Path) -> XdsServer {
        Self::start_with_module(manifests, log, None)
    }

    /// [`XdsServer::start`], serving Envoy nodes the filter module `wasm` too (`--wasm`).
    #[track_caller]
    pub fn start_with_module(manifests: &Path, log: &Path, wasm: Option<&Path>) -> XdsServer {
        for attempt in 1.. {
            let port = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|listener| listener.local_addr())
                .map(|address| address.port())
                .unwrap_or_else(|error| panic!("cannot find a free port for meshroute serve: {error}"));
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match Self::start_on(manifests, log, address, wasm) {
                Ok(server) => return server,
                // Another process took the port between choosing and binding it.
                Err(said) if attempt < 3 && said.contains("in use") => continue,
                Err(said) => panic!("meshroute serve {} --xds {address}: {said}", manifests.display()),
            }
        }
        unreachable!()
    }

    fn start_on(manifests: &Path, log: &Path, address: SocketAddr, wasm: Option<&Path>) -> Result<XdsServer, String> {
        // Appended to: a server started again goes on in the same log.
        let out = File::options().create(true).append(true).open(log).map_err(|error| format!("{}: {error}", log.display()))?;
        let err = out.try_clone().map_err(|error| format!("{}: {error}", log.display()))?;
        let child = Command::new(tools::meshroute_bin())
            .arg("serve")
            .arg(manifests)
            .arg("--xds")
            .arg(address.to_string())
            .args(wasm.iter().flat_map(|wasm| [std::ffi::OsStr::new("--wasm"), wasm.as_os_str()]))
            .current_dir(tools::workspace_root())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|error| format!("cannot run {}: {error}", tools::meshroute_bin().display()))?;
        let mut server =
            XdsServer { child, address, manifests: manifests.to_owned(), log: log.to_owned(), wasm: wasm.map(Path::to_owned) };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("exited ({status}) before it accepted connections; it said:\n{}", server.log()));
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if started.elapsed() > START_DEADLINE {
                return Err(format!("not accepting connections after {START_DEADLINE:?}; it said:\n{}", server.log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where it serves xDS.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it said so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its last `lines` lines.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The bootstrap `meshroute grpc-bootstrap` gives a client in `namespace` of this server.
    #[track_caller]
    pub fn bootstrap(&self, namespace: &str) -> String {
        grpc_bootstrap(self.address, namespace)
    }

    /// Stops it the way a container is stopped; [`XdsServer::start_again`] brings it back.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts it again (stopping it first if it still runs) on the same address and manifests,
    /// as a restarted pod would be; returns once it accepts connections again. Its log goes on
    /// in the same file.
    #[track_caller]
    pub fn start_again(&mut self) {
        self.kill();
        if let Ok(mut log) = File::options().append(true).open(&self.log) {
            let _ = writeln!(log, "--- started again ---");
        }
        let restarted = Self::start_on(&self.manifests, &self.log, self.address, self.wasm.as_deref())
            .unwrap_or_else(|error| panic!("meshroute serve started again on {}: {error}", self.address));
        *self = restarted;
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for XdsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `meshroute grpc-bootstrap --xds ADDRESS --namespace NAMESPACE`: the bootstrap JSON.
#[track_caller]
pub fn grpc_bootstrap(xds: SocketAddr, namespace: &str) -> String {
    let mut command = Command::new(tools::meshroute_bin());
    command.args(["grpc-bootstrap", "--xds", &xds.to_string(), "--namespace", namespace]);
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {}: {error}", tools::meshroute_bin().display()));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`{command:?}` failed ({}):\n{printed}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    if let Err(error) = serde_json::from_str::<serde_json::Value>(&printed) {
        panic!("`{command:?}` printed no JSON ({error}):\n{printed}");
    }
    printed
}

impl Mesh {
    /// Starts `meshroute serve` on this mesh's manifests, on a free loopback port; returns once
    /// it accepts connections. A proxyless mesh has one already ([`Mesh::xds`]); this is for a
    /// second one, or one beside Envoy.
    #[track_caller]
    pub fn serve_xds(&self) -> XdsServer {
        let log = self.work_dir().join(format!("serve-{}.log", SERVE_LOGS.fetch_add(1, Ordering::Relaxed)));
        XdsServer::start(&self.manifests_dir(), &log)
    }

    /// `meshroute serve` for this mesh's Envoy ([`crate::mesh::Mode::Ads`]), offering `wasm`.
    pub(crate) fn serve_xds_for_envoy(&self, wasm: &Path) -> XdsServer {
        let log = self.work_dir().join(format!("serve-{}.log", SERVE_LOGS.fetch_add(1, Ordering::Relaxed)));
        XdsServer::start_with_module(&self.manifests_dir(), &log, Some(wasm))
    }

    /// A new proxyless client of the mesh's `meshroute serve` ([`Mesh::xds`]) dialling `target`
    /// (`xds:///NAME.NS.svc.cluster.local:PORT`, or a shorter name form), with the bootstrap
    /// `meshroute grpc-bootstrap` gives a client in `namespace`.
    #[track_caller]
    pub fn proxyless_client(&self, target: &str, namespace: &str) -> ProxylessClient {
        ProxylessClient::start(&self.xds().bootstrap(namespace), target)
    }

    /// The target a proxyless client dials for a Service, `NAME` (its first gRPC port, else its
    /// first port) or `NAME:PORT`, `NAME` maybe `NAME.NAMESPACE`:
    /// `xds:///NAME.NAMESPACE.svc.cluster.local:PORT`.
    #[track_caller]
    pub fn xds_target(&self, service: &str) -> String {
        let frontend = self.frontend(service, default_grpc_port);
        let target = self.service(&frontend.name);
        format!("xds:///{}.{}.svc.cluster.local:{}", target.name, target.namespace, frontend.address.port())
    }

    /// A unary gRPC call of `method` to a Service (as [`Mesh::grpc`] names it) on the mesh's data
    /// plane: through Envoy, or through the mesh's proxyless client for the Service's full name
    /// ([`Mesh::xds_target`]) in the mesh's client namespace, started on first use and kept.
    #[track_caller]
    pub fn rpc(&self, service: &str, method: &str) -> Rpc<'_> {
        match self.data_plane() {
            DataPlane::Envoy => Rpc::new(Via::Envoy { mesh: self, call: self.grpc(service, method) }, method),
            DataPlane::Proxyless => {
                let client = self.kept_proxyless_client(&self.xds_target(service), self.client_namespace());
                Rpc::new(Via::Proxyless(Client::Shared(client)), method)
            }
        }
    }
}

fn default_grpc_port(service: &crate::mesh::Service) -> u16 {
    let grpc = service.ports.iter().find(|port| port.serves_grpc());
    grpc.unwrap_or(&service.ports[0]).number()
}

/// A proxyless client borrowed, or shared with the mesh that keeps it.
#[derive(Clone)]
enum Client<'m> {
    Borrowed(&'m ProxylessClient),
    Shared(Arc<ProxylessClient>),
}

impl Deref for Client<'_> {
    type Target = ProxylessClient;

    fn deref(&self) -> &ProxylessClient {
        match self {
            Client::Borrowed(client) => client,
            Client::Shared(client) => client,
        }
    }
}

#[derive(Clone)]
enum Via<'m> {
    Envoy { mesh: &'m Mesh, call: GrpcCall<'m> },
    Proxyless(Client<'m>),
}

/// A unary gRPC call about to be made on either data plane, with the expectations a test states
/// about it; the same expectations hold for both.
#[must_use = "a call does nothing until it is made"]
#[derive(Clone)]
pub struct Rpc<'m> {
    via: Via<'m>,
    /// `/SERVICE/METHOD`.
    method: String,
    message: String,
    metadata: Vec<(String, String)>,
}

impl fmt::Display for Rpc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.via {
            Via::Envoy { call, .. } => write!(f, "{} through Envoy", self.full_call(call))?,
            Via::Proxyless(client) => {
                write!(f, "gRPC {} by the {}", self.method, &**client)?;
                for (i, (name, value)) in self.metadata.iter().enumerate() {
                    write!(f, "{} {name}: {value}", if i == 0 { " with" } else { "," })?;
                }
            }
        }
        Ok(())
    }
}

impl<'m> Rpc<'m> {
    fn new(via: Via<'m>, method: &str) -> Rpc<'m> {
        Rpc { via, method: grpc::method_path(method), message: "hello".to_owned(), metadata: Vec::new() }
    }

    /// Adds request metadata (names in lower case, as HTTP/2 sends them).
    pub fn metadata(mut self, name: &str, value: &str) -> Self {
        self.metadata.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The request message (`hello` by default).
    pub fn message(mut self, message: &str) -> Self {
        message.clone_into(&mut self.message);
        self
    }

    /// The Envoy-side call with this call's message and metadata.
    fn full_call(&self, call: &GrpcCall<'m>) -> GrpcCall<'m> {
        let mut call = call.clone().message(&self.message);
        for (name, value) in &self.metadata {
            call = call.metadata(name, value);
        }
        call
    }

    /// Makes the call and returns its outcome, whatever it is.
    #[track_caller]
    pub fn send(&self) -> Outcome {
        match &self.via {
            Via::Envoy { call, .. } => {
                let (started, clock) = (SystemTime::now(), Instant::now());
                let result = self.full_call(call).send();
                Outcome::from_result(&result, started, clock.elapsed())
            }
            Via::Proxyless(client) => client.call(&self.method, &self.message, &self.metadata),
        }
    }

    /// Makes the call `n` times, one after another, and returns every outcome with its timing.
    /// Through Envoy each call opens a connection of its own; a proxyless client makes them all
    /// on its one channel.
    #[track_caller]
    pub fn outcomes(&self, n: usize) -> Vec<Outcome> {
        match &self.via {
            Via::Envoy { .. } => (0..n).map(|_| self.send()).collect(),
            Via::Proxyless(client) => client.calls(&self.method, &self.message, &self.metadata, n, 1),
        }
    }

    /// Makes the call and asserts that `backend` answered it, unchanged: it served the method
    /// that was called, saw the message and metadata that were sent and no selection header, and
    /// its `x-echo-backend` header came back.
    #[track_caller]
    pub fn expect_backend(self, backend: &str) -> EchoResponse {
        self.expect_one_of(&[backend])
    }

    /// Makes the call and asserts that one of `backends` answered it, unchanged, as
    /// [`Rpc::expect_backend`] does for one.
    #[track_caller]
    pub fn expect_one_of(self, backends: &[&str]) -> EchoResponse {
        let outcome = self.send();
        let expected = backends.join(" or ");
        let answer = match (&outcome.answer, outcome.backend()) {
            (Some(answer), Some(backend)) if backends.contains(&backend) => answer.clone(),
            _ => panic!("{self}: expected an answer from {expected}, got {outcome}"),
        };
        assert_eq!(outcome.header_backend.as_deref(), Some(answer.backend.as_str()), "{self}: response header {BACKEND_HEADER}");
        assert_eq!(answer.method, self.method, "{self}: {} served another method: {answer:?}", answer.backend);
        assert_eq!(answer.message, self.message, "{self}: {} saw another message", answer.backend);
        for (name, value) in &self.metadata {
            assert_eq!(
                answer.metadata.get(name).map(String::as_str),
                Some(value.as_str()),
                "{self}: {} should have seen the metadata {name}: {value}: {answer:?}",
                answer.backend
            );
        }
        assert_eq!(answer.metadata.get(SELECTION_HEADER), None, "{self}: {} received {SELECTION_HEADER}", answer.backend);
        answer
    }

    /// Makes the call and asserts that it failed with `code` and that no backend gave it: the
    /// data plane's routing did.
    #[track_caller]
    pub fn expect_code(self, code: Code) -> Outcome {
        let outcome = self.send();
        assert!(
            outcome.code == code && outcome.answer.is_none() && outcome.header_backend.is_none(),
            "{self}: expected gRPC status {code:?} from the data plane, got {outcome}"
        );
        outcome
    }

    /// Makes the call and asserts that `backend` gave it status `code` (a method or service the
    /// backend does not have): the call was routed there.
    #[track_caller]
    pub fn expect_backend_status(self, backend: &str, code: Code) -> Outcome {
        let outcome = self.send();
        assert!(
            outcome.code == code && outcome.answer.is_none() && outcome.header_backend.as_deref() == Some(backend),
            "{self}: expected {code:?} from {backend}, got {outcome}"
        );
        outcome
    }

    /// Makes the call `n` times, 8 at once, and counts the outcomes ([`Outcome::label`]): through
    /// Envoy over one connection ([`GrpcCall::spread`]), through a proxyless client on its one
    /// channel.
    #[track_caller]
    pub fn spread(self, n: usize) -> Tally {
        let tally = match &self.via {
            Via::Envoy { call, .. } => return self.full_call(call).spread(n),
            Via::Proxyless(client) => {
                let outcomes = client.calls(&self.method, &self.message, &self.metadata, n, SPREAD_CONCURRENCY);
                let mut tally = Tally::default();
                for outcome in outcomes {
                    tally.add(outcome.label());
                }
                tally
            }
        };
        assert_eq!(tally.total(), n, "{self}: made {n} calls but counted {tally}");
        tally
    }

    /// Starts making the call over and over in the background, one at a time, a new one every
    /// `interval` (through Envoy on one connection, through a proxyless client on its channel),
    /// until [`Steady::stop`].
    #[track_caller]
    pub fn steady(self, interval: Duration) -> Steady<'m> {
        match &self.via {
            Via::Envoy { mesh, call } => {
                let channel = self.full_call(call).channel();
                let stop = Arc::new(AtomicBool::new(false));
                let (method, message, metadata) = (self.method.clone(), self.message.clone(), self.metadata.clone());
                let stopped = stop.clone();
                let task = mesh.runtime().spawn(async move {
                    let mut outcomes = Vec::new();
                    let mut next = tokio::time::Instant::now();
                    while !stopped.load(Ordering::Relaxed) {
                        let (started, clock) = (SystemTime::now(), Instant::now());
                        let result = grpc::unary(channel.clone(), &method, &message, &metadata).await;
                        outcomes.push(Outcome::from_result(&result, started, clock.elapsed()));
                        next += interval;
                        tokio::time::sleep_until(next.max(tokio::time::Instant::now())).await;
                    }
                    outcomes
                });
                Steady { rpc: self.to_string(), running: Some(Running::Envoy { mesh, stop, task }) }
            }
            Via::Proxyless(client) => {
                client.steady_start(&self.method, &self.message, &self.metadata, interval);
                Steady { rpc: self.to_string(), running: Some(Running::Proxyless(client.clone())) }
            }
        }
    }
}

/// Calls being made over and over ([`Rpc::steady`]).
#[must_use = "the calls are only seen through Steady::stop"]
pub struct Steady<'m> {
    rpc: String,
    running: Option<Running<'m>>,
}

enum Running<'m> {
    Envoy { mesh: &'m Mesh, stop: Arc<AtomicBool>, task: tokio::task::JoinHandle<Vec<Outcome>> },
    Proxyless(Client<'m>),
}

impl Steady<'_> {
    /// Stops the calls; every call made, oldest first.
    #[track_caller]
    pub fn stop(mut self) -> Vec<Outcome> {
        match self.running.take() {
            Some(Running::Envoy { mesh, stop, task }) => {
                stop.store(true, Ordering::Relaxed);
                mesh.runtime().block_on(task).unwrap_or_else(|error| panic!("{}: the calls failed: {error}", self.rpc))
            }
            Some(Running::Proxyless(client)) => client.steady_stop(),
            None => Vec::new(),
        }
    }
}

impl fmt::Display for Steady<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "steady calls: {}", self.rpc)
    }
}

impl Drop for Steady<'_> {
    fn drop(&mut self) {
        if let Some(Running::Envoy { stop, .. }) = &self.running {
            stop.store(true, Ordering::Relaxed);
        }
    }
}
