//! `meshroute serve`: the xDS control plane of proxyless gRPC clients and of Envoy. Watches the
//! manifests directory as `sync` does (same debounce, same per-resource last-good rule) and
//! serves each build over ADS as a new version, pushed on every open stream. With `--wasm`, it
//! also serves the filter module over HTTP on the same port, for the Envoys it configures
//! ([`crate::xds::envoy`]); the module is read again on every rebuild.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use meshroute_filter::document::TableDocument;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::model::Manifests;
use crate::pipeline::{self, Build, LastGood};
use crate::status::{Transitions, STATUS_DIR};
use crate::xds::ads::{AdsServer, Audience, DataPlane, Log, Snapshot};
use crate::xds::envoy::{ModuleRef, MODULE_PATH};
use crate::xds::Resources;
use crate::ServeArgs;

/// The xDS address `serve` listens on and `grpc-bootstrap` names by default.
pub const DEFAULT_XDS: &str = "127.0.0.1:15010";

/// What a client is served, from the manifests, the route table its namespace routes by and
/// the filter module on offer.
pub type ResourcesFn = Arc<dyn Fn(&Manifests, &TableDocument, &Audience, Option<&ModuleRef>) -> Resources + Send + Sync>;

/// Each data plane's resources in its own shape.
pub fn resources(manifests: &Manifests, table: &TableDocument, audience: &Audience, module: Option<&ModuleRef>) -> Resources {
    match audience.data_plane {
        DataPlane::Grpc => crate::xds::grpc::resources(manifests, table, &audience.namespace),
        DataPlane::Envoy => crate::xds::envoy::resources(manifests, table, module),
    }
}

/// The filter module file and what was last read from it: the current module and the one
/// before, both fetchable, since an Envoy may still be fetching the previous one.
#[derive(Default)]
pub struct Modules {
    path: Option<PathBuf>,
    current: Option<(ModuleRef, bytes::Bytes)>,
    previous: Option<(ModuleRef, bytes::Bytes)>,
}

impl Modules {
    pub fn new(path: Option<PathBuf>) -> Self {
        Modules { path, ..Default::default() }
    }

    /// Reads the module again; a module that cannot be read leaves the last one in place.
    fn refresh(&mut self) {
        let Some(path) = &self.path else { return };
        match std::fs::read(path) {
            Ok(bytes) => {
                let module = ModuleRef::of(&bytes);
                if self.current.as_ref().is_some_and(|(current, _)| *current == module) {
                    return;
                }
                eprintln!("meshroute serve: module {} ({})", module.file_name, path.display());
                self.previous = self.current.replace((module, bytes.into()));
            }
            Err(e) => eprintln!("meshroute serve: cannot read the filter module {}: {e}", path.display()),
        }
    }

    fn offered(&self) -> Option<ModuleRef> {
        self.current.as_ref().map(|(module, _)| module.clone())
    }

    /// Both modules as snapshot files, by the path Envoy fetches.
    fn files(&self) -> impl Iterator<Item = (String, bytes::Bytes)> + '_ {
        self.current
            .iter()
            .chain(&self.previous)
            .map(|(module, bytes)| (format!("{MODULE_PATH}{}", module.file_name), bytes.clone()))
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("--xds {0:?} is not an address: give IP:PORT, [IPv6]:PORT or localhost:PORT")]
    Invalid(String),
    #[error(
        "--xds {0} is not a loopback address: xDS here has no authentication, and whoever reaches \
         the port reads every route and endpoint of the mesh; pass --xds-allow-remote to serve \
         other hosts anyway"
    )]
    NotLoopback(SocketAddr),
}

/// The address to listen on: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`; a loopback one
/// unless `allow_remote`.
pub fn xds_address(text: &str, allow_remote: bool) -> Result<SocketAddr, AddressError> {
    let invalid = || AddressError::Invalid(text.to_owned());
    let addr = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => match text.split_once(':') {
            Some(("localhost", port)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port.parse().map_err(|_| invalid())?),
            _ => return Err(invalid()),
        },
    };
    if allow_remote || addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(AddressError::NotLoopback(addr))
    }
}

pub fn run(args: &ServeArgs, resources: ResourcesFn) -> ExitCode {
    let addr = match xds_address(&args.xds, args.xds_allow_remote) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("meshroute serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("meshroute serve: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("meshroute serve: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let log: Log = Arc::new(|line: &str| eprintln!("meshroute serve: {line}"));
        let modules = Modules::new(args.wasm.clone());
        let status = args.out.as_ref().map(|out| StatusFiles::new(out.join(STATUS_DIR)));
        match serve(&args.dir, listener, resources, modules, status, log, shutdown_signal()).await {
            Ok(()) => {
                eprintln!("meshroute serve: stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("meshroute serve: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Serves ADS on `listener` from the manifests under `dir`, rebuilt on every change, until
/// `shutdown` completes. `Err` when `dir` cannot be watched or the server fails.
pub async fn serve(
    dir: &Path,
    listener: TcpListener,
    resources: ResourcesFn,
    mut modules: Modules,
    mut status: Option<StatusFiles>,
    log: Log,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let watched = crate::watch::Dir::new(dir).map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let mut last_good = LastGood::default();
    // Until the directory can be read, clients get nothing (and their does-not-exist timers).
    let first = cycle(dir, &mut last_good, &resources, &mut modules, status.as_mut(), 1).unwrap_or_else(|| Snapshot::empty(0));
    let mut version = first.version();
    if let Ok(addr) = listener.local_addr() {
        log(&format!("ADS on {addr}, version {version}"));
    }
    let (snapshots, receiver) = watch::channel(Arc::new(first));
    let dir: PathBuf = dir.to_path_buf();
    // The watch blocks on file events: a thread of its own, which ends with the process.
    std::thread::spawn(move || {
        eprintln!("meshroute serve: watching {}", dir.display());
        watched.on_changes("meshroute serve", || {
            if let Some(snapshot) = cycle(&dir, &mut last_good, &resources, &mut modules, status.as_mut(), version + 1) {
                version += 1;
                snapshots.send_replace(Arc::new(snapshot));
            }
        });
    });
    AdsServer::new(receiver, log).serve(listener, shutdown).await.map_err(|e| format!("xDS server: {e}"))
}

/// Where `serve --out OUT` writes each route's status (`OUT/status/`), and the conditions' times.
pub struct StatusFiles {
    dir: PathBuf,
    transitions: Transitions,
}

impl StatusFiles {
    /// Keeps the times the files in `dir` already record (a restarted `serve`).
    pub fn new(dir: PathBuf) -> Self {
        StatusFiles { transitions: Transitions::read(&dir), dir }
    }
}

/// Builds `dir` with `last_good` standing in for what does not validate, reports it as `sync`
/// does, and returns the build as snapshot `version`; `None` (the last snapshot stays) when the
/// directory cannot be read. `last_good` becomes what is served.
fn cycle(
    dir: &Path,
    last_good: &mut LastGood,
    resources: &ResourcesFn,
    modules: &mut Modules,
    status: Option<&mut StatusFiles>,
    version: u64,
) -> Option<Snapshot> {
    modules.refresh();
    // The namespace only picks `build.table`, which is not served: each client namespace gets
    // its own table ([`table_for`]).
    let build = pipeline::build_reported(dir, last_good, "default", "meshroute serve", "served")?;
    *last_good = LastGood::of(&build);
    eprintln!("meshroute serve: version {version}");
    if let Some(status) = status {
        match crate::status::publish(&status.dir, &build.statuses, &mut status.transitions) {
            Ok((written, removed)) if !(written.is_empty() && removed.is_empty()) => {
                eprintln!("meshroute serve: status: wrote {written:?}, removed {removed:?}");
            }
            Ok(_) => {}
            Err(e) => eprintln!("meshroute serve: cannot write the status files in {}: {e}", status.dir.display()),
        }
    }
    let resources = resources.clone();
    let module = modules.offered();
    let snapshot = Snapshot::new(version, move |audience| {
        resources(&build.manifests, &table_for(&build, &audience.namespace), audience, module.as_ref())
    });
    Some(modules.files().fold(snapshot, |snapshot, (path, contents)| snapshot.with_file(path, contents)))
}

/// The route table a client in `namespace` routes by: its consumer routes, else the producer
/// routes (GEP-1294), as `sync --namespace` compiles it for a sidecar.
fn table_for(build: &Build, namespace: &str) -> TableDocument {
    crate::compile::compile(&build.manifests, &build.statuses, namespace)
}

/// Ctrl-C, or SIGTERM as Kubernetes sends it.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
