//! Finding the manifest files under a directory, including a mounted ConfigMap: kubelet puts
//! the real files in a hidden, timestamped directory (`..2024_05_01_10_00_00.123/`), points
//! `..data` at it, and makes each visible name a symlink through `..data`. Hidden entries are
//! skipped, symlinks followed, and a symlink loop is an error rather than a hang.

use std::fs;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;

/// One manifest file: its path relative to the manifests directory, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// What a manifests directory holds: every `*.yaml` / `*.yml` file under it that could be read,
/// in sorted path order, and a problem for each one that could not (a symlink loop, a file that
/// is not UTF-8), which blocks nothing else.
#[derive(Debug, Default)]
pub struct Loaded {
    pub files: Vec<SourceFile>,
    pub errors: Vec<Diagnostic>,
}

/// Reads the manifests under `dir`; `Err` when `dir` itself cannot be read.
pub fn load_dir(dir: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    let root = fs::canonicalize(dir)
        .map_err(|e| vec![Diagnostic::error(dir, 0, format!("cannot read the manifests directory: {e}"))])?;
    if !root.is_dir() {
        return Err(vec![Diagnostic::error(dir, 0, "is not a directory")]);
    }
    let mut walk = Walk { base: dir.to_path_buf(), files: Vec::new(), errors: Vec::new() };
    walk.visit(&root, Path::new(""), &mut vec![root.clone()]);
    walk.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Loaded { files: walk.files, errors: walk.errors })
}

struct Walk {
    base: PathBuf,
    files: Vec<SourceFile>,
    errors: Vec<Diagnostic>,
}

impl Walk {
    /// `real` is the resolved directory, `shown` its path relative to the manifests
    /// directory, `ancestors` the resolved directories on the way down (for loop detection).
    fn visit(&mut self, real: &Path, shown: &Path, ancestors: &mut Vec<PathBuf>) {
        let entries = match fs::read_dir(real) {
            Ok(entries) => entries,
            Err(e) => return self.fail(shown, format!("cannot read directory: {e}")),
        };
        let mut names: Vec<_> = entries.filter_map(Result::ok).map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let shown = shown.join(&name);
            let target = match fs::canonicalize(real.join(&name)) {
                Ok(target) => target,
                Err(e) if is_loop(&e) => {
                    self.fail(&shown, "symlink loop".to_owned());
                    continue;
                }
                Err(e) => {
                    // A dangling symlink to something that is not a manifest is no concern.
                    if is_manifest(&shown) {
                        self.fail(&shown, format!("cannot read: {e}"));
                    }
                    continue;
                }
            };
            if target.is_dir() {
                if ancestors.contains(&target) {
                    self.fail(&shown, format!("symlink loop: leads back to {}", self.relative(&target, ancestors)));
                    continue;
                }
                ancestors.push(target.clone());
                self.visit(&target, &shown, ancestors);
                ancestors.pop();
            } else if is_manifest(&shown) {
                match fs::read(&target) {
                    Ok(bytes) => match String::from_utf8(bytes) {
                        Ok(text) => self.files.push(SourceFile { path: shown, text }),
                        Err(_) => self.fail(&shown, "is not UTF-8 text".to_owned()),
                    },
                    Err(e) => self.fail(&shown, format!("cannot read: {e}")),
                }
            }
        }
    }

    fn fail(&mut self, shown: &Path, message: String) {
        self.errors.push(Diagnostic::error(shown, 0, message));
    }

    /// A resolved ancestor directory, named as the user sees it.
    fn relative(&self, target: &Path, ancestors: &[PathBuf]) -> String {
        match ancestors.first().and_then(|root| target.strip_prefix(root).ok()) {
            Some(rel) if rel.as_os_str().is_empty() => self.base.display().to_string(),
            Some(rel) => rel.display().to_string(),
            None => target.display().to_string(),
        }
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// ELOOP: too many levels of symbolic links.
fn is_loop(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(40) || error.to_string().contains("symbolic links")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn paths(files: &[SourceFile]) -> Vec<String> {
        files.iter().map(|f| f.path.display().to_string()).collect()
    }

    #[test]
    fn walks_recursively_sorted_yaml_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("b/c/x.yml"), "a: 1").unwrap();
        fs::write(dir.path().join("a.yaml"), "").unwrap();
        fs::write(dir.path().join("README.md"), "no").unwrap();
        fs::write(dir.path().join(".hidden.yaml"), "a: 1").unwrap();
        let files = load_dir(dir.path()).unwrap().files;
        assert_eq!(paths(&files), ["a.yaml", "b/c/x.yml"]);
    }

    #[test]
    fn configmap_data_layout_reads_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = dir.path().join("..2024_05_01_10_00_00.123456789");
        fs::create_dir(&stamp).unwrap();
        fs::write(stamp.join("echo.yaml"), "kind: Service").unwrap();
        fs::write(stamp.join("routes.yaml"), "kind: HTTPRoute").unwrap();
        symlink("..2024_05_01_10_00_00.123456789", dir.path().join("..data")).unwrap();
        symlink("..data/echo.yaml", dir.path().join("echo.yaml")).unwrap();
        symlink("..data/routes.yaml", dir.path().join("routes.yaml")).unwrap();
        let files = load_dir(dir.path()).unwrap().files;
        assert_eq!(paths(&files), ["echo.yaml", "routes.yaml"]);
        assert_eq!(files[0].text, "kind: Service");
    }

    #[test]
    fn directory_symlink_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        symlink("..", dir.path().join("sub/up")).unwrap();
        let errors = load_dir(dir.path()).unwrap().errors;
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().starts_with("sub/up: symlink loop"), "{}", errors[0]);
    }

    #[test]
    fn file_symlink_cycle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b.yaml", dir.path().join("a.yaml")).unwrap();
        symlink("a.yaml", dir.path().join("b.yaml")).unwrap();
        let errors = load_dir(dir.path()).unwrap().errors;
        assert_eq!(errors[0].to_string(), "a.yaml: symlink loop");
    }

    #[test]
    fn missing_directory_is_an_error() {
        let errors = load_dir(Path::new("/nonexistent/manifests")).unwrap_err();
        assert!(errors[0].to_string().starts_with("/nonexistent/manifests: cannot read the manifests directory"));
    }
}
