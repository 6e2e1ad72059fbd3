//! `meshroute serve`: the xDS control plane of proxyless gRPC clients. Watches the manifests
//! directory as `sync` does (same debounce, same per-resource last-good rule) and serves each
//! build over ADS as a new version, pushed on every open stream.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use meshroute_filter::document::TableDocument;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::model::Manifests;
use crate::pipeline::{self, Build, LastGood};
use crate::xds::ads::{AdsServer, Log, Snapshot};
use crate::xds::Resources;
use crate::ServeArgs;

/// The xDS address `serve` listens on and `grpc-bootstrap` names by default.
pub const DEFAULT_XDS: &str = "127.0.0.1:15010";

/// What a client in a namespace is served, from the manifests and the route table its
/// namespace routes by.
pub type ResourcesFn = Arc<dyn Fn(&Manifests, &TableDocument, &str) -> Resources + Send + Sync>;

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
        match serve(&args.dir, listener, resources, log, shutdown_signal()).await {
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
    log: Log,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let watched = crate::watch::Dir::new(dir).map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let mut last_good = LastGood::default();
    // Until the directory can be read, clients get nothing (and their does-not-exist timers).
    let first = cycle(dir, &mut last_good, &resources, 1).unwrap_or_else(|| Snapshot::empty(0));
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
            if let Some(snapshot) = cycle(&dir, &mut last_good, &resources, version + 1) {
                version += 1;
                snapshots.send_replace(Arc::new(snapshot));
            }
        });
    });
    AdsServer::new(receiver, log).serve(listener, shutdown).await.map_err(|e| format!("xDS server: {e}"))
}

/// Builds `dir` with `last_good` standing in for what does not validate, reports it as `sync`
/// does, and returns the build as snapshot `version`; `None` (the last snapshot stays) when the
/// directory cannot be read. `last_good` becomes what is served.
fn cycle(dir: &Path, last_good: &mut LastGood, resources: &ResourcesFn, version: u64) -> Option<Snapshot> {
    // The namespace only picks `build.table`, which is not served: each client namespace gets
    // its own table ([`table_for`]).
    let build = match pipeline::build_with(dir, last_good, "default") {
        Ok(build) => build,
        Err(diagnostics) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!("meshroute serve: {} cannot be read; the last good configuration stays in place", dir.display());
            return None;
        }
    };
    for diagnostic in &build.diagnostics {
        eprintln!("{diagnostic}");
    }
    if let Some(problems) = build.problems_summary(dir) {
        eprintln!("meshroute serve: {problems}; everything else is served");
    }
    *last_good = LastGood::of(&build);
    eprintln!("meshroute serve: version {version}");
    let resources = resources.clone();
    Some(Snapshot::new(version, move |namespace| resources(&build.manifests, &table_for(&build, namespace), namespace)))
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
