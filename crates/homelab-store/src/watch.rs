//! File-system notifications as hints. Consumers re-read from disk; a hint only says "look
//! here soon". Overflow (`need_rescan`), errors and a periodic timer all ask for a full rescan.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What changed since the last batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Paths the notifications named (files or folders).
    pub paths: BTreeSet<PathBuf>,
    /// A full rescan is needed: the timer fired, the kernel queue overflowed, or the watcher failed.
    pub rescan: bool,
}

enum Hint {
    Paths(Vec<PathBuf>),
    Rescan,
}

/// Watches folders and hands out debounced batches of hints.
pub struct Watcher {
    _watcher: RecommendedWatcher,
    rx: mpsc::UnboundedReceiver<Hint>,
    rescan_every: Duration,
    next_rescan: Instant,
}

impl Watcher {
    /// Watches each `(path, recursive)`. A full rescan is requested every `rescan_every`.
    pub fn new(paths: &[(&Path, bool)], rescan_every: Duration) -> notify::Result<Watcher> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let hint = match res {
                Ok(ev) if ev.need_rescan() => Hint::Rescan,
                Ok(ev) if ev.kind.is_access() => return,
                Ok(ev) => Hint::Paths(ev.paths),
                Err(e) => {
                    tracing::warn!(error = %e, "file watcher error; falling back to a full rescan");
                    Hint::Rescan
                }
            };
            let _ = tx.send(hint);
        })?;
        for (path, recursive) in paths {
            let mode = if *recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
            watcher.watch(path, mode)?;
        }
        Ok(Watcher { _watcher: watcher, rx, rescan_every, next_rescan: Instant::now() + rescan_every })
    }

    /// Waits for the next hint (or the rescan timer), then gathers whatever else arrives within
    /// `debounce` into one batch. Returns `None` when the watcher is gone.
    pub async fn next_batch(&mut self, debounce: Duration) -> Option<Batch> {
        let mut batch = Batch::default();
        tokio::select! {
            hint = self.rx.recv() => add(&mut batch, hint?),
            _ = tokio::time::sleep_until(self.next_rescan) => batch.rescan = true,
        }
        let until = Instant::now() + debounce;
        loop {
            // Take what is already queued without waiting, then wait out the debounce window.
            while let Ok(hint) = self.rx.try_recv() {
                add(&mut batch, hint);
            }
            tokio::select! {
                hint = self.rx.recv() => match hint {
                    Some(h) => add(&mut batch, h),
                    None => break,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        if batch.rescan {
            self.next_rescan = Instant::now() + self.rescan_every;
        }
        Some(batch)
    }
}

fn add(batch: &mut Batch, hint: Hint) {
    match hint {
        Hint::Paths(p) => batch.paths.extend(p),
        Hint::Rescan => batch.rescan = true,
    }
}
