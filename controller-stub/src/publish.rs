//! Writing files Envoy watches: each one atomically (a temporary file in the same directory,
//! flushed to disk, then renamed over the old one), and only when its content changes, so that
//! Envoy never reads half a file and reloads only what changed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Files are readable by everyone (Envoy may run as another user) and writable by the owner.
const FILE_MODE: u32 = 0o644;

/// Replaces `dir/name` with `contents` unless it already holds exactly that. Returns whether
/// the file was written.
pub fn write_if_changed(dir: &Path, name: &str, contents: &[u8]) -> io::Result<bool> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(current) if current == contents => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let temporary = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = write_new(&temporary, contents).and_then(|()| fs::rename(&temporary, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    // The rename itself is durable once the directory is flushed too.
    File::open(dir)?.sync_all()?;
    Ok(true)
}

fn write_new(path: &Path, contents: &[u8]) -> io::Result<()> {
    let _ = fs::remove_file(path);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path)?;
    file.write_all(contents)?;
    // The umask may only take bits away; never leave it writable by others.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE))?;
    file.sync_all()
}

/// Removes the files of `dir` whose names start with `prefix` and end with `suffix`, except
/// those in `keep`. Returns the names removed.
pub fn remove_stale(dir: &Path, prefix: &str, suffix: &str, keep: &[&str]) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !keep.contains(&name.as_str()) && name.starts_with(prefix) && name.ends_with(suffix) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed.push(name);
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_only_when_the_content_changes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_if_changed(dir.path(), "a.yaml", b"one").unwrap());
        assert!(!write_if_changed(dir.path(), "a.yaml", b"one").unwrap());
        assert!(write_if_changed(dir.path(), "a.yaml", b"two").unwrap());
        assert_eq!(fs::read(dir.path().join("a.yaml")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.yaml")], "no temporary file is left behind");
    }

    #[test]
    fn files_are_never_world_writable() {
        let dir = tempfile::tempdir().unwrap();
        write_if_changed(dir.path(), "a.yaml", b"x").unwrap();
        let mode = fs::metadata(dir.path().join("a.yaml")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn write_replaces_by_rename_so_readers_see_old_or_new() {
        let dir = tempfile::tempdir().unwrap();
        write_if_changed(dir.path(), "a.yaml", b"old").unwrap();
        let mut reader = File::open(dir.path().join("a.yaml")).unwrap();
        write_if_changed(dir.path(), "a.yaml", b"new").unwrap();
        let mut seen = String::new();
        io::Read::read_to_string(&mut reader, &mut seen).unwrap();
        assert_eq!(seen, "old", "an open reader keeps the file it opened");
    }

    #[test]
    fn stale_modules_are_removed_and_the_current_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["m-1.wasm", "m-2.wasm", "other.wasm", "m-3.txt"] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(remove_stale(dir.path(), "m-", ".wasm", &["m-2.wasm"]).unwrap(), vec!["m-1.wasm"]);
        assert!(dir.path().join("m-2.wasm").exists());
        assert!(dir.path().join("other.wasm").exists());
    }
}
