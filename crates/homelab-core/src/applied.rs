//! The observer's record of which event files it has folded: not a watermark but the files
//! themselves, so a rescan (after an inotify overflow, a restart, a late delivery) finds every
//! file it has not folded yet, whatever its time.
//!
//! A file is identified exactly by its name, and within a day folder the name is
//! `<time of day in ms>` + `<node>` + `<8 hex of the id>`: per day and node, one `u64`
//! (`ms << 32 | id prefix`) per file. On disk the record is a series of immutable *segments*
//! (one per checkpoint that added files, merged when a day has many); this module encodes and
//! decodes them, the store writes them.

use std::collections::{BTreeMap, HashSet};

use crate::event::EventFileName;

/// One file's identity within its day folder and node.
pub fn file_code(name: &EventFileName) -> u64 {
    use chrono::Timelike;
    let ms = u64::from(name.ts.num_seconds_from_midnight()) * 1000 + u64::from(name.ts.nanosecond() / 1_000_000).min(999);
    let prefix = u32::from_str_radix(&name.id_prefix, 16).unwrap_or(0);
    (ms << 32) | u64::from(prefix)
}

/// Files per day, per node (the node as the file name says, before any alias).
pub type DayFiles = BTreeMap<String, HashSet<u64>>;

/// The applied record in memory: what every segment up to the checkpoint holds, plus what was
/// applied since (not yet in a segment).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    days: BTreeMap<String, DayFiles>,
    /// Applied since the last segment was written, per day and node.
    unsaved: BTreeMap<String, BTreeMap<String, Vec<u64>>>,
}

impl Applied {
    pub fn contains(&self, day: &str, name: &EventFileName) -> bool {
        self.days.get(day).and_then(|d| d.get(&name.node)).is_some_and(|s| s.contains(&file_code(name)))
    }

    /// Records a file as applied; false when it already was.
    pub fn insert(&mut self, day: &str, name: &EventFileName) -> bool {
        let code = file_code(name);
        let new = self.days.entry(day.to_owned()).or_default().entry(name.node.clone()).or_default().insert(code);
        if new {
            self.unsaved.entry(day.to_owned()).or_default().entry(name.node.clone()).or_default().push(code);
        }
        new
    }

    /// Adds what a segment read back from disk holds (already saved).
    pub fn load(&mut self, day: &str, segment: BTreeMap<String, Vec<u64>>) {
        let files = self.days.entry(day.to_owned()).or_default();
        for (node, codes) in segment {
            files.entry(node).or_default().extend(codes);
        }
    }

    /// Days with files applied since the last segment, and those files.
    pub fn unsaved(&self) -> &BTreeMap<String, BTreeMap<String, Vec<u64>>> {
        &self.unsaved
    }

    pub fn mark_saved(&mut self) {
        self.unsaved.clear();
    }

    /// Everything recorded for a day, as one segment (for merging a day's segments).
    pub fn day_segment(&self, day: &str) -> BTreeMap<String, Vec<u64>> {
        self.days.get(day).map(|d| d.iter().map(|(n, s)| (n.clone(), s.iter().copied().collect())).collect()).unwrap_or_default()
    }

    pub fn forget_day(&mut self, day: &str) {
        self.days.remove(day);
        self.unsaved.remove(day);
    }

    pub fn days(&self) -> impl Iterator<Item = &str> {
        self.days.keys().map(String::as_str)
    }

    /// Number of files recorded.
    pub fn len(&self) -> usize {
        self.days.values().flat_map(|d| d.values()).map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const MAGIC: &[u8; 8] = b"HLAPSEG1";

/// Encodes a segment: magic, then per node `u16` name length, name, `u32` count and the
/// sorted codes as `u64` little-endian, then an FNV-1a 64 checksum of everything before it.
pub fn encode_segment(segment: &BTreeMap<String, Vec<u64>>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (node, codes) in segment {
        let mut codes = codes.clone();
        codes.sort_unstable();
        codes.dedup();
        out.extend((node.len() as u16).to_le_bytes());
        out.extend(node.as_bytes());
        out.extend((codes.len() as u32).to_le_bytes());
        for c in codes {
            out.extend(c.to_le_bytes());
        }
    }
    let sum = fnv1a(&out);
    out.extend(sum.to_le_bytes());
    out
}

/// Decodes a segment; an error says what is wrong (a damaged segment is never half-read).
pub fn decode_segment(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u64>>, String> {
    let body_len = bytes.len().checked_sub(8).ok_or("segment too short")?;
    let (body, sum) = bytes.split_at(body_len);
    if fnv1a(body).to_le_bytes() != sum {
        return Err("segment checksum does not match".into());
    }
    let mut rest = body.strip_prefix(MAGIC.as_slice()).ok_or("not an applied-files segment")?;
    let mut out = BTreeMap::new();
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err("segment truncated".into());
        }
        let (a, b) = rest.split_at(n);
        rest = b;
        Ok(a)
    };
    while let Ok(len) = take(2) {
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        let node = std::str::from_utf8(take(len)?).map_err(|_| "node name is not UTF-8")?.to_owned();
        let count = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let raw = take(count.checked_mul(8).ok_or("segment count overflows")?)?;
        let codes = raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        out.insert(node, codes);
    }
    Ok(out)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(file: &str) -> EventFileName {
        EventFileName::parse(file).unwrap()
    }

    #[test]
    fn codes_tell_files_apart_exactly() {
        let a = name("20260527T140311.123Z-edge-1-7d0c1f5e.json");
        let b = name("20260527T140311.123Z-edge-1-7d0c1f5f.json");
        let c = name("20260527T140311.124Z-edge-1-7d0c1f5e.json");
        let d = name("20260527T235959.999Z-edge-1-ffffffff.json");
        let codes: HashSet<_> = [&a, &b, &c, &d].iter().map(|n| file_code(n)).collect();
        assert_eq!(codes.len(), 4);
        let mut applied = Applied::default();
        assert!(applied.insert("2026-05-27", &a));
        assert!(!applied.insert("2026-05-27", &a), "second insert says already applied");
        assert!(applied.contains("2026-05-27", &a));
        assert!(!applied.contains("2026-05-27", &b));
        assert!(!applied.contains("2026-05-28", &a), "days are apart");
        assert!(!applied.contains("2026-05-27", &name("20260527T140311.123Z-edge-2-7d0c1f5e.json")), "nodes are apart");
    }

    #[test]
    fn segments_round_trip_and_refuse_damage() {
        let seg: BTreeMap<String, Vec<u64>> = [("edge-1".to_string(), vec![3, 1, 2]), ("n".to_string(), vec![u64::MAX])].into();
        let bytes = encode_segment(&seg);
        let back = decode_segment(&bytes).unwrap();
        assert_eq!(back["edge-1"], [1, 2, 3]);
        assert_eq!(back["n"], [u64::MAX]);
        assert_eq!(decode_segment(&encode_segment(&BTreeMap::new())).unwrap().len(), 0);
        for cut in [0, 5, bytes.len() - 1] {
            assert!(decode_segment(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[12] ^= 1;
        assert!(decode_segment(&flipped).unwrap_err().contains("checksum"));
    }

    #[test]
    fn unsaved_is_what_came_since_the_last_segment() {
        let mut applied = Applied::default();
        applied.insert("2026-05-27", &name("20260527T140311.123Z-edge-1-7d0c1f5e.json"));
        assert_eq!(applied.unsaved()["2026-05-27"]["edge-1"].len(), 1);
        applied.mark_saved();
        assert!(applied.unsaved().is_empty());
        applied.load("2026-05-28", [("n".to_string(), vec![7])].into());
        assert!(applied.unsaved().is_empty(), "loaded segments are saved already");
        assert_eq!(applied.len(), 2);
        applied.forget_day("2026-05-27");
        assert_eq!(applied.len(), 1);
    }
}
