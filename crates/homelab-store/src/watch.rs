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
    /// The kernel's notification queue overflowed (notifications were lost): `rescan` is set too.
    pub overflow: bool,
}

enum Hint {
    Paths(Vec<PathBuf>),
    Rescan,
    Overflow,
}

/// Watches folders and hands out debounced batches of hints.
pub struct Watcher {
    _watcher: RecommendedWatcher,
    rx: mpsc::UnboundedReceiver<Hint>,
    rescan_every: Duration,
    next_rescan: Instant,
    /// Hints gathered so far. Kept here, not in the future of [`Watcher::next_batch`], so that a
    /// caller whose `select!` drops that future mid-debounce loses nothing.
    pending: Batch,
    /// While gathering: when the current debounce window closes.
    window_closes: Option<Instant>,
    closed: bool,
}

impl Watcher {
    /// Watches each `(path, recursive)`. A full rescan is requested every `rescan_every`.
    pub fn new(paths: &[(&Path, bool)], rescan_every: Duration) -> notify::Result<Watcher> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let hint = match res {
                Ok(ev) if ev.need_rescan() => Hint::Overflow,
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
        Ok(Watcher {
            _watcher: watcher,
            rx,
            rescan_every,
            next_rescan: Instant::now() + rescan_every,
            pending: Batch::default(),
            window_closes: None,
            closed: false,
        })
    }

    /// Calls `on_change` after every batch (of `debounce`, as [`Watcher::next_batch`] gathers
    /// it) until `shutdown` or until the watcher is gone.
    pub async fn each_batch(&mut self, debounce: Duration, shutdown: &tokio_util::sync::CancellationToken, mut on_change: impl FnMut()) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                batch = self.next_batch(debounce) => match batch {
                    Some(_) => on_change(),
                    None => return,
                },
            }
        }
    }

    /// Waits for the next hint (or the rescan timer), then gathers whatever else arrives within
    /// `debounce` into one batch. Returns `None` when the watcher is gone. Cancel-safe: hints
    /// already taken from the channel stay in the watcher until a batch is handed out.
    pub async fn next_batch(&mut self, debounce: Duration) -> Option<Batch> {
        loop {
            if self.closed && self.window_closes.is_none() {
                return None;
            }
            match self.window_closes {
                None => {
                    tokio::select! {
                        hint = self.rx.recv() => match hint {
                            Some(h) => add(&mut self.pending, h),
                            None => {
                                self.closed = true;
                                continue;
                            }
                        },
                        _ = tokio::time::sleep_until(self.next_rescan) => self.pending.rescan = true,
                    }
                    self.window_closes = Some(Instant::now() + debounce);
                }
                Some(until) => {
                    // Take what is already queued without waiting, then wait out the window.
                    while let Ok(hint) = self.rx.try_recv() {
                        add(&mut self.pending, hint);
                    }
                    if self.closed {
                        return Some(self.hand_out());
                    }
                    tokio::select! {
                        hint = self.rx.recv() => match hint {
                            Some(h) => add(&mut self.pending, h),
                            None => self.closed = true,
                        },
                        _ = tokio::time::sleep_until(until) => return Some(self.hand_out()),
                    }
                }
            }
        }
    }

    fn hand_out(&mut self) -> Batch {
        self.window_closes = None;
        let batch = std::mem::take(&mut self.pending);
        if batch.rescan {
            self.next_rescan = Instant::now() + self.rescan_every;
        }
        batch
    }
}

fn add(batch: &mut Batch, hint: Hint) {
    match hint {
        Hint::Paths(p) => batch.paths.extend(p),
        Hint::Rescan => batch.rescan = true,
        Hint::Overflow => {
            batch.rescan = true;
            batch.overflow = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller that drops `next_batch` in the middle of a debounce window (another branch of
    /// its `select!` won) still gets the hints in its next batch.
    #[tokio::test]
    async fn hints_survive_a_dropped_next_batch() {
        let dir = std::env::temp_dir().join(format!("store-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Watcher::new(&[(dir.as_path(), false)], Duration::from_secs(3600)).unwrap();
        std::fs::write(dir.join("a.json"), "1").unwrap();
        // A debounce longer than the caller's patience: the future is dropped while gathering.
        let debounce = Duration::from_millis(800);
        let dropped = tokio::time::timeout(Duration::from_millis(200), w.next_batch(debounce)).await;
        assert!(dropped.is_err(), "still gathering when dropped");
        let batch = tokio::time::timeout(Duration::from_secs(10), w.next_batch(debounce)).await.unwrap().unwrap();
        assert!(batch.paths.iter().any(|p| p.ends_with("a.json")), "{batch:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
