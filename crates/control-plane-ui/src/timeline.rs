//! The events timeline: event files newest first, filtered by node, service and type. File
//! names sort by time and carry the node, so a node filter skips files unread.

use homelab_core::Event;
use homelab_core::event::EventFileName;
use homelab_store::DataRoot;

pub const PER_PAGE: usize = 50;

/// An event file larger than this is not an event (the observer quarantines it).
const MAX_EVENT_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone)]
pub struct TimelinePage {
    pub events: Vec<Event>,
    /// More matching events exist beyond `events`.
    pub more: bool,
}

/// Up to `limit` events matching the filters (node, service, event type), newest first. Files
/// are read through the store (regular files inside the data root only); one that cannot be
/// read or parsed is left to the observer's quarantine and skipped here.
pub fn read_newest(root: &DataRoot, node: Option<&str>, service: Option<&str>, kind: Option<&str>, limit: usize) -> std::io::Result<TimelinePage> {
    let mut events = Vec::new();
    for day in root.event_days()?.into_iter().rev() {
        let Ok(dir) = root.open_day(&day) else { continue };
        for file in root.event_files(&day)?.into_iter().rev() {
            let Some(name) = EventFileName::parse(&file) else { continue };
            if node.is_some_and(|n| n != name.node) {
                continue;
            }
            let Ok(bytes) = dir.read_event(&file, MAX_EVENT_BYTES) else { continue };
            let Ok(event) = serde_json::from_slice::<Event>(&bytes) else { continue };
            if service.is_some_and(|s| event.service.as_deref() != Some(s)) || kind.is_some_and(|k| event.kind != k) {
                continue;
            }
            if events.len() == limit {
                return Ok(TimelinePage { events, more: true });
            }
            events.push(event);
        }
    }
    Ok(TimelinePage { events, more: false })
}
