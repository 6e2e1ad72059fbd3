//! `meshroute sync`: compile the manifests and publish Envoy's files, once or on every change.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use meshroute_filter::document::TableDocument;
use meshroute_filter::table::RouteTable;
use notify::{RecursiveMode, Watcher};

use crate::envoy::{self, EnvoyFiles, Options};
use crate::model::Manifests;
use crate::pipeline::{self, LastGood};
use crate::publish;
use crate::status::{self, Transitions, STATUS_DIR};
use crate::watch;
use crate::SyncArgs;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot read the filter module {path}: {source}")]
    Module { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("--out {out} is inside the manifests directory {dir}; Envoy's files would be read as manifests")]
    OutInsideManifests { out: PathBuf, dir: PathBuf },
    #[error(transparent)]
    Render(#[from] envoy::RenderError),
    #[error(transparent)]
    Address(#[from] crate::serve::AddressError),
}

/// What one publication changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub written: Vec<String>,
    pub removed: Vec<String>,
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.written.is_empty() && self.removed.is_empty() {
            return write!(f, "unchanged");
        }
        write!(f, "wrote {}", if self.written.is_empty() { "nothing".into() } else { names(&self.written) })?;
        if !self.removed.is_empty() {
            write!(f, "; removed {}", names(&self.removed))?;
        }
        Ok(())
    }
}

/// The files of a publication by name, except that more than a few status files are counted:
/// a publication stays one readable line at 10,000 routes.
fn names(files: &[String]) -> String {
    const STATUS_FILES_SHOWN: usize = 5;
    let in_status = |f: &&String| f.strip_prefix(STATUS_DIR).is_some_and(|rest| rest.starts_with('/'));
    let (status, other): (Vec<&String>, Vec<&String>) = files.iter().partition(in_status);
    let mut parts: Vec<String> = other.into_iter().cloned().collect();
    if status.len() > STATUS_FILES_SHOWN {
        parts.push(format!("{} files in {STATUS_DIR}/", status.len()));
    } else {
        parts.extend(status.into_iter().cloned());
    }
    parts.join(", ")
}

pub fn run(args: &SyncArgs) -> ExitCode {
    let out = match prepare_out_dir(&args.out, &args.dir) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("meshroute sync: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(xds) = &args.xds {
        return match publish_ads_bootstrap(xds, args, &out) {
            Ok(published) => {
                println!("meshroute sync: {}: {published}; the rest comes from meshroute serve at {xds}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("meshroute sync: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut last_good = LastGood::default();
    let mut transitions = Transitions::read(&out.join(STATUS_DIR));
    let published = cycle(args, &out, &mut last_good, &mut transitions);
    if args.once {
        return if published { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    match watch(args, &out, last_good, transitions) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshroute sync: cannot watch {}: {e}", args.dir.display());
            ExitCode::FAILURE
        }
    }
}

/// `--xds`: writes OUT/envoy.yaml for an Envoy that `meshroute serve` at `xds` configures over
/// ADS; nothing else, since nothing else is read from files. Watching would have nothing to do:
/// the bootstrap does not depend on the manifests.
fn publish_ads_bootstrap(xds: &str, args: &SyncArgs, out: &Path) -> Result<Published, SyncError> {
    let addr = crate::serve::xds_address(xds, args.xds_allow_remote)?;
    let bootstrap = envoy::bootstrap::render_ads(&envoy::bootstrap::AdsBootstrapValues {
        node_id: &format!("meshroute-envoy~{}", args.client.namespace),
        node_cluster: "meshroute",
        namespace: &args.client.namespace,
        admin_port: args.admin_port,
        xds: addr,
    })
    .map_err(envoy::RenderError::from)?;
    let mut published = Published::default();
    if publish::write_if_changed(out, envoy::BOOTSTRAP_FILE, bootstrap.as_bytes())
        .map_err(|source| SyncError::Write { path: out.join(envoy::BOOTSTRAP_FILE), source })?
    {
        published.written.push(envoy::BOOTSTRAP_FILE.to_owned());
    }
    Ok(published)
}

/// Creates OUT if needed and returns it absolute, as Envoy's configuration names it. OUT may not
/// lie inside DIR: Envoy's own YAML files would be read back as manifests.
fn prepare_out_dir(out: &Path, dir: &Path) -> Result<PathBuf, SyncError> {
    let write_error = |source| SyncError::Write { path: out.to_path_buf(), source };
    std::fs::create_dir_all(out).map_err(write_error)?;
    let out = std::fs::canonicalize(out).map_err(write_error)?;
    match std::fs::canonicalize(dir) {
        Ok(dir) if out.starts_with(&dir) => Err(SyncError::OutInsideManifests { out, dir }),
        _ => Ok(out),
    }
}

/// Builds and publishes what validates, with the last good version of anything that does not,
/// and each route's status under `OUT/status/`; reports what happened on stdout/stderr. Returns
/// whether the output now reflects the input exactly (everything validated and was published).
/// `last_good` becomes what was published; `transitions` keeps the conditions' times.
pub fn cycle(args: &SyncArgs, out: &Path, last_good: &mut LastGood, transitions: &mut Transitions) -> bool {
    let Some(build) = pipeline::build_reported(&args.dir, last_good, &args.client.namespace, "meshroute sync", "published")
    else {
        return false;
    };
    let uncounted;
    let table = if args.no_metrics {
        uncounted = TableDocument { metrics: false, ..build.table.clone() };
        &uncounted
    } else {
        &build.table
    };
    let published = match args.mode {
        crate::Mode::Filter => publish(&build.manifests, table, &build.compiled, &args.wasm, out, args.admin_port),
        crate::Mode::Native => publish_native(&build.manifests, table, out, args.admin_port),
    };
    let published = published.and_then(|(mut published, warnings)| {
        let (written, removed) = status::publish(&out.join(STATUS_DIR), &build.statuses, transitions)
            .map_err(|source| SyncError::Write { path: out.join(STATUS_DIR), source })?;
        published.written.extend(written.into_iter().map(|name| format!("{STATUS_DIR}/{name}")));
        published.removed.extend(removed.into_iter().map(|name| format!("{STATUS_DIR}/{name}")));
        Ok((published, warnings))
    });
    match published {
        Ok((published, warnings)) => {
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
            println!("meshroute sync: {}: {published}", out.display());
            *last_good = LastGood::of(&build);
            build.is_valid()
        }
        Err(e) => {
            eprintln!("meshroute sync: {e}");
            false
        }
    }
}

/// Writes the module, then each file in [`EnvoyFiles::in_write_order`], then removes the
/// modules older than the previous one.
///
/// The module the previous `ecds.json` named is kept until a later publication: Envoy may
/// still refuse the new `ecds.json` (a module it cannot load, a table the filter refuses), and
/// then its last good configuration names that file.
pub fn publish(
    manifests: &Manifests,
    table: &TableDocument,
    compiled: &RouteTable,
    wasm: &Path,
    out: &Path,
    admin_port: u16,
) -> Result<(Published, Vec<String>), SyncError> {
    let module = std::fs::read(wasm).map_err(|source| SyncError::Module { path: wasm.to_path_buf(), source })?;
    let module_file = envoy::module_file_name(&module);
    let options = Options { out_dir: out.to_path_buf(), admin_port, module_file: module_file.clone() };
    let files: EnvoyFiles = envoy::render(manifests, table, compiled, &options)?;
    let write_error = |name: &str| {
        let path = out.join(name);
        move |source| SyncError::Write { path, source }
    };
    let previous_module = published_module(out);
    let mut published = Published::default();
    if publish::write_if_changed(out, &module_file, &module).map_err(write_error(&module_file))? {
        published.written.push(module_file.clone());
    }
    for (name, contents) in files.in_write_order() {
        if publish::write_if_changed(out, name, contents.as_bytes()).map_err(write_error(name))? {
            published.written.push(name.to_owned());
        }
    }
    let keep: Vec<&str> = std::iter::once(module_file.as_str()).chain(previous_module.as_deref()).collect();
    published.removed = publish::remove_stale(out, envoy::MODULE_PREFIX, envoy::MODULE_SUFFIX, &keep)
        .map_err(write_error(envoy::MODULE_PREFIX))?;
    Ok((published, files.warnings))
}

/// The module file that `OUT/ecds.json` names now, if there is one.
fn published_module(out: &Path) -> Option<String> {
    let ecds = std::fs::read_to_string(out.join(envoy::ECDS_FILE)).ok()?;
    let start = ecds.find(envoy::MODULE_PREFIX)?;
    let rest = &ecds[start..];
    let end = rest.find(envoy::MODULE_SUFFIX)? + envoy::MODULE_SUFFIX.len();
    let name = &rest[..end];
    name[envoy::MODULE_PREFIX.len()..end - envoy::MODULE_SUFFIX.len()]
        .bytes()
        .all(|byte| byte.is_ascii_hexdigit())
        .then(|| name.to_owned())
}

/// Native mode: writes each file of [`envoy::NativeFiles::in_write_order`]; no module.
pub fn publish_native(
    manifests: &Manifests,
    table: &TableDocument,
    out: &Path,
    admin_port: u16,
) -> Result<(Published, Vec<String>), SyncError> {
    let files = envoy::render_native(manifests, table, out, admin_port)?;
    let mut published = Published::default();
    for (name, contents) in files.in_write_order() {
        if publish::write_if_changed(out, name, contents.as_bytes())
            .map_err(|source| SyncError::Write { path: out.join(name), source })?
        {
            published.written.push(name.to_owned());
        }
    }
    Ok((published, files.warnings))
}

/// Republishes after every change under DIR (and to the module file) until the process ends.
fn watch(args: &SyncArgs, out: &Path, mut last_good: LastGood, mut transitions: Transitions) -> notify::Result<()> {
    let (sender, events) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(sender)?;
    // Absolute paths, so that events can be compared with OUT and the module's path.
    let dir = std::fs::canonicalize(&args.dir)?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    // A rebuilt module is published too; its directory is watched since builds replace it.
    let module_dir = args.wasm.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let module_name = args.wasm.file_name().map(ToOwned::to_owned);
    if args.mode == crate::Mode::Native {
        // No module in native mode.
    } else if let Err(e) = watcher.watch(module_dir, RecursiveMode::NonRecursive) {
        eprintln!("meshroute sync: not watching the module {}: {e}", args.wasm.display());
    }
    let relevant = |event: &notify::Event| {
        if !watch::is_change(event) {
            return false;
        }
        event
            .paths
            .iter()
            .any(|path| !path.starts_with(out) && (path.starts_with(&dir) || path.file_name() == module_name.as_deref()))
    };
    eprintln!("meshroute sync: watching {}", args.dir.display());
    watch::on_changes(&events, "meshroute sync", relevant, || {
        cycle(args, out, &mut last_good, &mut transitions);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled() -> RouteTable {
        RouteTable::compile(&TableDocument::default()).unwrap()
    }

    #[test]
    fn out_inside_the_manifests_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inside = prepare_out_dir(&dir.path().join("envoy"), dir.path());
        assert!(matches!(inside, Err(SyncError::OutInsideManifests { .. })), "{inside:?}");
        let beside = tempfile::tempdir().unwrap();
        assert!(prepare_out_dir(&beside.path().join("envoy"), dir.path()).is_ok());
    }

    #[test]
    fn a_publication_line_counts_status_files_past_a_few() {
        let files = |n: usize| (0..n).map(|i| format!("{STATUS_DIR}/httproute_default_r{i}.yaml"));
        let few = Published { written: std::iter::once("ecds.json".to_owned()).chain(files(2)).collect(), removed: Vec::new() };
        assert_eq!(few.to_string(), "wrote ecds.json, status/httproute_default_r0.yaml, status/httproute_default_r1.yaml");
        let many = Published {
            written: std::iter::once("ecds.json".to_owned()).chain(files(10_000)).collect(),
            removed: files(6).collect(),
        };
        assert_eq!(many.to_string(), "wrote ecds.json, 10000 files in status/; removed 6 files in status/");
    }

    #[test]
    fn publishes_everything_once_then_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let wasm = dir.path().join("m.wasm");
        std::fs::write(&wasm, b"module one").unwrap();
        let (first, _) = publish(&Manifests::default(), &TableDocument::default(), &compiled(), &wasm, &out, 9901).unwrap();
        let module = envoy::module_file_name(b"module one");
        assert_eq!(first.written, [module.as_str(), "cds.json", "ecds.json", "lds.json", "sidecar-rds.json", "envoy.yaml"]);
        let (second, _) = publish(&Manifests::default(), &TableDocument::default(), &compiled(), &wasm, &out, 9901).unwrap();
        assert_eq!(second, Published::default());
        assert_eq!(second.to_string(), "unchanged");
    }

    #[test]
    fn a_new_module_keeps_the_previous_one_until_the_next_publication() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let wasm = dir.path().join("m.wasm");
        std::fs::write(&wasm, b"module one").unwrap();
        publish(&Manifests::default(), &TableDocument::default(), &compiled(), &wasm, &out, 9901).unwrap();
        std::fs::write(&wasm, b"module two").unwrap();
        let (published, _) = publish(&Manifests::default(), &TableDocument::default(), &compiled(), &wasm, &out, 9901).unwrap();
        let (old, new) = (envoy::module_file_name(b"module one"), envoy::module_file_name(b"module two"));
        assert_eq!(published.written, [new.as_str(), "ecds.json"]);
        assert_eq!(published.removed, Vec::<String>::new(), "the previous module stays until a later publication");
        let ecds = std::fs::read_to_string(out.join("ecds.json")).unwrap();
        assert!(ecds.contains(&new) && !ecds.contains(&old));
        assert!(out.join(&old).exists());
        assert_eq!(std::fs::read(out.join(&new)).unwrap(), b"module two");

        // The next module: the one before the previous goes.
        std::fs::write(&wasm, b"module three").unwrap();
        let (published, _) = publish(&Manifests::default(), &TableDocument::default(), &compiled(), &wasm, &out, 9901).unwrap();
        let newest = envoy::module_file_name(b"module three");
        assert_eq!(published.removed, vec![old.as_str()]);
        assert_eq!(published.to_string(), format!("wrote {newest}, ecds.json; removed {old}"));
        assert!(!out.join(&old).exists() && out.join(&new).exists() && out.join(&newest).exists());
    }

    #[test]
    fn the_module_the_live_ecds_names_is_kept_whatever_else_lies_around() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let wasm = dir.path().join("m.wasm");
        std::fs::write(&wasm, b"module one").unwrap();
        publish(&Manifests::default(), &TableDocument::default(), &compiled(), &wasm, &out, 9901).unwrap();
        let live = envoy::module_file_name(b"module one");
        assert_eq!(published_module(&out).as_deref(), Some(live.as_str()));
        // A module left over from long ago, and a restart of sync with a new build.
        let stray = envoy::module_file_name(b"module zero");
        std::fs::write(out.join(&stray), b"module zero").unwrap();
        std::fs::write(&wasm, b"module two").unwrap();
        let (published, _) = publish(&Manifests::default(), &TableDocument::default(), &compiled(), &wasm, &out, 9901).unwrap();
        assert_eq!(published.removed, vec![stray]);
        assert!(out.join(&live).exists());
    }

    #[test]
    fn a_missing_module_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = publish(
            &Manifests::default(),
            &TableDocument::default(),
            &compiled(),
            &dir.path().join("none.wasm"),
            dir.path(),
            9901,
        )
        .unwrap_err();
        assert!(matches!(err, SyncError::Module { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
