//! Changing a running mesh the ways users do: `meshroute sync` watching the manifests (started,
//! stopped and restarted like a deployment would), manifests replaced atomically or the way
//! kubelet updates a mounted ConfigMap, and a filter build that differs from the one running.
//! Also what is observed from outside: Envoy's process, its memory and its listening sockets.

use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::mesh::{Mesh, Mode};
use crate::tools;

/// Bound on waiting for sync or Envoy to get somewhere; reaching it is a failure.
pub const DEADLINE: Duration = Duration::from_secs(30);

static TEMPORARIES: AtomicUsize = AtomicUsize::new(0);

/// Polls `done` every 20 ms until it gives a value; panics with `what` and `context()` after
/// `deadline`.
#[track_caller]
pub fn wait_until<T>(what: &str, deadline: Duration, mut done: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = done() {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("waited {deadline:?} for {what}\n{}", context());
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `meshroute sync DIR --out OUT --wasm MODULE` (with `--mode native` on a native mesh) watching a mesh's manifests, its output in a log
/// of its own. Killed when dropped, as a pod's container would be.
pub struct SyncProcess {
    child: Child,
    log: PathBuf,
}

impl SyncProcess {
    /// Starts watching `mesh`'s manifests and publishing `wasm`; returns after its first
    /// publication (whatever it published).
    #[track_caller]
    pub fn start(mesh: &Mesh, wasm: &Path) -> SyncProcess {
        Self::start_on(mesh, &mesh.manifests_dir(), wasm)
    }

    /// As [`SyncProcess::start`], watching `dir` instead of the mesh's own manifests directory.
    #[track_caller]
    pub fn start_on(mesh: &Mesh, dir: &Path, wasm: &Path) -> SyncProcess {
        let sequence = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
        let log = mesh.work_dir().join(format!("sync-watch-{sequence}.log"));
        let file = File::create(&log).unwrap_or_else(|error| panic!("{}: {error}", log.display()));
        let file_too = file.try_clone().unwrap_or_else(|error| panic!("{}: {error}", log.display()));
        let child = Command::new(tools::meshroute_bin())
            .arg("sync")
            .arg(dir)
            .arg("--out")
            .arg(mesh.out_dir())
            .arg("--wasm")
            .arg(wasm)
            .arg("--admin-port")
            .arg(mesh.admin_port().to_string())
            .args(if mesh.mode() == Mode::Native { &["--mode", "native"][..] } else { &[] })
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file_too)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start meshroute sync: {error}"));
        let sync = SyncProcess { child, log };
        wait_until("meshroute sync to start watching", DEADLINE, || sync.log().contains("watching").then_some(()), || sync.log());
        sync
    }

    /// Everything it said so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its lines that report a publication (`meshroute sync: OUT: wrote ...` or `unchanged`).
    pub fn publications(&self) -> Vec<String> {
        self.log().lines().filter(|line| line.starts_with("meshroute sync: /")).map(str::to_owned).collect()
    }

    /// Waits until it has said `needle` at least `count` times in all.
    #[track_caller]
    pub fn wait_for(&self, needle: &str, count: usize) {
        wait_until(
            &format!("meshroute sync to say {needle:?} {count} times"),
            DEADLINE,
            || (self.log().matches(needle).count() >= count).then_some(()),
            || self.log(),
        );
    }

    /// Stops it the way a container is stopped.
    pub fn stop(mut self) -> String {
        self.kill();
        self.log()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SyncProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Replaces `path` with `text` atomically: a hidden temporary file beside it, renamed over it.
#[track_caller]
pub fn replace_file(path: &Path, text: &[u8]) {
    let dir = path.parent().unwrap_or_else(|| panic!("{} has no directory", path.display()));
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let temporary = dir.join(format!(".{name}.{}-{}", std::process::id(), TEMPORARIES.fetch_add(1, Ordering::Relaxed)));
    let written = File::create(&temporary).and_then(|mut file| {
        file.write_all(text)?;
        file.sync_all()
    });
    written.unwrap_or_else(|error| panic!("cannot write {}: {error}", temporary.display()));
    fs::rename(&temporary, path).unwrap_or_else(|error| panic!("cannot rename onto {}: {error}", path.display()));
}

/// A directory laid out as kubelet mounts a ConfigMap: the files in a hidden timestamped
/// directory, `..data` pointing at it, and each visible name a symlink through `..data`.
pub struct ConfigMapVolume {
    pub dir: PathBuf,
    updates: usize,
}

impl ConfigMapVolume {
    /// Mounts `files` (name, contents) in `dir`, which must not exist yet.
    #[track_caller]
    pub fn mount(dir: &Path, files: &[(String, Vec<u8>)]) -> ConfigMapVolume {
        fs::create_dir_all(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        let mut volume = ConfigMapVolume { dir: dir.to_path_buf(), updates: 0 };
        volume.update(files);
        for (name, _) in files {
            symlink(Path::new("..data").join(name), dir.join(name)).unwrap_or_else(|error| panic!("cannot link {name}: {error}"));
        }
        volume
    }

    /// What kubelet's atomic writer does on an update: write the new timestamped directory,
    /// point a temporary symlink at it, rename that over `..data`, remove the old directory.
    /// The visible names must stay the same (kubelet would add or remove their symlinks).
    #[track_caller]
    pub fn update(&mut self, files: &[(String, Vec<u8>)]) {
        self.updates += 1;
        let stamp = format!("..2026_11_26_10_00_{:02}.{:09}", self.updates % 60, self.updates);
        let data = self.dir.join(&stamp);
        fs::create_dir(&data).unwrap_or_else(|error| panic!("{}: {error}", data.display()));
        for (name, contents) in files {
            fs::write(data.join(name), contents).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
        let old = fs::read_link(self.dir.join("..data")).ok();
        let temporary = self.dir.join("..data_tmp");
        let _ = fs::remove_file(&temporary);
        symlink(&stamp, &temporary).unwrap_or_else(|error| panic!("cannot link ..data_tmp: {error}"));
        fs::rename(&temporary, self.dir.join("..data")).unwrap_or_else(|error| panic!("cannot swap ..data: {error}"));
        if let Some(old) = old {
            let _ = fs::remove_dir_all(self.dir.join(old));
        }
    }
}

/// The module `wasm` with a custom section appended: the same code under another content hash,
/// so Envoy starts a new VM for it.
pub fn module_variant(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut module = wasm.to_vec();
    module.push(0); // custom section
    leb128(body.len(), &mut module);
    module.extend_from_slice(&body);
    module
}

/// `/proc/PID/stat`'s start time (clock ticks since boot): with the pid, it names the process.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Resident memory of a process, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// The TCP sockets a process listens on, as `(address, port)`, from `/proc/net/tcp` and
/// `/proc/net/tcp6` matched against the process's open socket inodes.
pub fn listening_sockets(pid: u32) -> Vec<(String, u16)> {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut sockets = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, rem_address, st (0A = LISTEN), ..., inode is the tenth field.
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else { continue };
            if *state != "0A" || !inodes.iter().any(|known| known == inode) {
                continue;
            }
            let Some((address, port)) = local.split_once(':') else { continue };
            let Ok(port) = u16::from_str_radix(port, 16) else { continue };
            sockets.push((proc_net_address(address, v6), port));
        }
    }
    sockets.sort();
    sockets.dedup();
    sockets
}

/// An address as `/proc/net/tcp{,6}` writes it (32-bit words in host order, hex) in text.
fn proc_net_address(hex: &str, v6: bool) -> String {
    let words: Vec<u32> = (0..hex.len() / 8).filter_map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()).collect();
    if !v6 {
        return words.first().map_or_else(|| hex.to_owned(), |word| Ipv4Addr::from(u32::from_be(*word)).to_string());
    }
    let mut bytes = [0u8; 16];
    for (i, word) in words.iter().enumerate().take(4) {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    std::net::Ipv6Addr::from(bytes).to_string()
}

/// `ecds` (the text of a published `ecds.json`) with its route table replaced by `table`.
#[track_caller]
pub fn with_table(ecds: &str, table: &str) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(ecds).unwrap_or_else(|error| panic!("ecds.json: {error}\n{ecds}"));
    let value = &mut doc["resources"][0]["typed_config"]["config"]["configuration"]["value"];
    assert!(value.is_string(), "no table in ecds.json:\n{ecds}");
    *value = serde_json::Value::String(table.to_owned());
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_read_as_text() {
        // 127.0.0.1 on a little-endian host, as /proc/net/tcp shows it.
        if cfg!(target_endian = "little") {
            assert_eq!(proc_net_address("0100007F", false), "127.0.0.1");
            assert_eq!(proc_net_address("00000000000000000000000000000000", true), "::");
            assert_eq!(proc_net_address("00000000000000000000000001000000", true), "::1");
        }
    }

    #[test]
    fn a_variant_is_the_module_plus_one_custom_section() {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let variant = module_variant(&module, "v", b"2");
        assert_eq!(variant, [&module[..], &[0, 3, 1, b'v', b'2']].concat());
    }
}
