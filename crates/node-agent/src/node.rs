//! Node-level checks: disk pressure per mount (statvfs) and a read-only root filesystem
//! (`/proc/mounts`).

use std::path::Path;

use homelab_core::DiskLevel;
use homelab_core::desired::DiskSpec;
use serde::Serialize;

/// One watched mount, as the heartbeat's `data.disks` carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskUsage {
    pub mount: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    /// Used percent as `df` shows it: used / (used + available to unprivileged users).
    pub used_pct: f64,
    pub level: DiskLevel,
    /// Set when the mount could not be read; the mount then counts as `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The level of one mount from its used percent and the host file's thresholds.
pub fn level_of(used_pct: f64, spec: &DiskSpec) -> DiskLevel {
    if used_pct >= f64::from(spec.high_pct()) {
        DiskLevel::High
    } else if used_pct >= f64::from(spec.medium_pct()) {
        DiskLevel::Medium
    } else {
        DiskLevel::Ok
    }
}

/// The mounts to watch: the host file's `disk.mounts`, default `/`.
pub fn mounts_of(spec: &DiskSpec) -> Vec<String> {
    spec.mounts.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| vec!["/".to_owned()])
}

/// Reads every watched mount. Blocking (statvfs can hang on a dead network mount: callers run
/// this under a timeout on a blocking thread).
pub fn disk_usage(spec: &DiskSpec) -> Vec<DiskUsage> {
    mounts_of(spec)
        .into_iter()
        .map(|mount| match rustix::fs::statvfs(Path::new(&mount)) {
            Ok(st) => {
                let frsize = st.f_frsize.max(1);
                let total = st.f_blocks * frsize;
                let free = st.f_bfree * frsize;
                let avail = st.f_bavail * frsize;
                let used = total.saturating_sub(free);
                let denom = used + avail;
                let used_pct = if denom == 0 { 0.0 } else { (used as f64 * 100.0 / denom as f64 * 10.0).round() / 10.0 };
                DiskUsage { mount, total_bytes: total, used_bytes: used, available_bytes: avail, used_pct, level: level_of(used_pct, spec), error: None }
            }
            Err(e) => DiskUsage { mount, total_bytes: 0, used_bytes: 0, available_bytes: 0, used_pct: 0.0, level: DiskLevel::Ok, error: Some(e.to_string()) },
        })
        .collect()
}

/// The node's level: the worst mount.
pub fn node_level(disks: &[DiskUsage]) -> DiskLevel {
    disks.iter().map(|d| d.level).max().unwrap_or(DiskLevel::Ok)
}

/// Whether `/` is mounted read-only, from the text of `/proc/mounts`. The last entry for `/`
/// wins (later mounts stack on earlier ones). `None` when `/` is not listed.
pub fn root_readonly(proc_mounts: &str) -> Option<bool> {
    proc_mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_dev, mount, _fs, opts) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            (mount == "/").then(|| opts.split(',').any(|o| o == "ro"))
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_levels_table() {
        let default = DiskSpec::default();
        let strict = DiskSpec { pressure_medium_pct: Some(50), pressure_high_pct: Some(70), ..DiskSpec::default() };
        let cases = [
            ("an empty disk", 3.0, &default, DiskLevel::Ok),
            ("just under the default medium line", 79.9, &default, DiskLevel::Ok),
            ("at the default medium line", 80.0, &default, DiskLevel::Medium),
            ("at the default high line", 90.0, &default, DiskLevel::High),
            ("a full disk", 100.0, &default, DiskLevel::High),
            ("60% with a strict host file", 60.0, &strict, DiskLevel::Medium),
            ("75% with a strict host file", 75.0, &strict, DiskLevel::High),
        ];
        for (situation, pct, spec, want) in cases {
            assert_eq!(level_of(pct, spec), want, "{situation}");
        }
    }

    #[test]
    fn root_readonly_table() {
        let cases = [
            ("a normal root", "/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n", Some(false)),
            ("a read-only root", "/dev/sda1 / ext4 ro,relatime 0 0\n", Some(true)),
            ("remounted read-only after an error", "rootfs / rootfs rw 0 0\n/dev/sda1 / ext4 ro,relatime,errors=remount-ro 0 0\n", Some(true)),
            ("errors=remount-ro is not ro", "/dev/sda1 / ext4 rw,errors=remount-ro 0 0\n", Some(false)),
            ("no root line", "proc /proc proc rw 0 0\n", None),
        ];
        for (situation, text, want) in cases {
            assert_eq!(root_readonly(text), want, "{situation}");
        }
    }

    #[test]
    fn statvfs_of_root_reads_something() {
        let disks = disk_usage(&DiskSpec::default());
        assert_eq!(disks.len(), 1);
        assert!(disks[0].error.is_none(), "{:?}", disks[0].error);
        assert!(disks[0].total_bytes > 0);
    }
}
