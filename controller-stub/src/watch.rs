//! Watching the manifests directory: one rebuild per burst of changes, for `sync` and `serve`.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};

/// Quiet time after the last change before rebuilding: kubelet's ConfigMap update and an
/// editor's save are each several events, all within a few milliseconds.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest wait from the first change to the rebuild, so that changes arriving faster than
/// [`DEBOUNCE`] still get published rather than postponed for as long as they keep coming.
const MAX_DELAY: Duration = Duration::from_millis(250);

pub type Events = mpsc::Receiver<notify::Result<notify::Event>>;

/// Whether an event can change what a file holds: opening and reading (our own rebuilds do)
/// change nothing.
pub fn is_change(event: &notify::Event) -> bool {
    !matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write))
}

/// Calls `rebuild` once after each burst of events that `relevant` accepts, until the watcher
/// sending `events` is dropped. `name` prefixes the watch errors reported on stderr.
pub fn on_changes(events: &Events, name: &str, relevant: impl Fn(&notify::Event) -> bool, mut rebuild: impl FnMut()) {
    loop {
        let Ok(first) = events.recv() else { return };
        let mut changed = matches!(&first, Ok(event) if relevant(event));
        if let Err(e) = first {
            eprintln!("{name}: watch error: {e}");
        }
        // Let the burst settle before reading anything, but not for longer than MAX_DELAY.
        let deadline = Instant::now() + MAX_DELAY;
        loop {
            let wait = DEBOUNCE.min(deadline.saturating_duration_since(Instant::now()));
            match events.recv_timeout(wait) {
                Ok(Ok(event)) => changed |= relevant(&event),
                Ok(Err(e)) => eprintln!("{name}: watch error: {e}"),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        if changed {
            rebuild();
        }
    }
}

/// A watch on everything under a directory, and nothing else. It is set up before the
/// directory is first read, so that no change between that read and the watch is missed.
pub struct Dir {
    dir: std::path::PathBuf,
    events: Events,
    _watcher: notify::RecommendedWatcher,
}

impl Dir {
    pub fn new(dir: &Path) -> notify::Result<Dir> {
        let (sender, events) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(sender)?;
        // Absolute, as the events' paths are.
        let dir = std::fs::canonicalize(dir)?;
        watcher.watch(&dir, RecursiveMode::Recursive)?;
        Ok(Dir { dir, events, _watcher: watcher })
    }

    /// [`on_changes`] under the directory; returns only if the watch ends.
    pub fn on_changes(&self, name: &str, rebuild: impl FnMut()) {
        let dir = &self.dir;
        on_changes(&self.events, name, |event| is_change(event) && event.paths.iter().any(|path| path.starts_with(dir)), rebuild);
    }
}
