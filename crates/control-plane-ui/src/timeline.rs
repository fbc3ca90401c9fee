//! The events timeline: event files newest first, filtered by node and service, in pages.
//! File names sort by time and carry the node, so a node filter skips files unread.

use homelab_core::Event;
use homelab_core::event::EventFileName;
use homelab_store::DataRoot;

pub const PER_PAGE: usize = 50;

#[derive(Debug, Clone)]
pub struct TimelinePage {
    pub events: Vec<Event>,
    /// The next (older) page, when there is one.
    pub next: Option<usize>,
}

/// Page `page` (0 = newest) of the events matching the filters.
pub fn read_page(root: &DataRoot, node: Option<&str>, service: Option<&str>, page: usize, per_page: usize) -> std::io::Result<TimelinePage> {
    let skip = page.saturating_mul(per_page);
    let mut seen = 0usize;
    let mut events = Vec::new();
    for day in root.event_days()?.into_iter().rev() {
        for file in root.event_files(&day)?.into_iter().rev() {
            let Some(name) = EventFileName::parse(&file) else { continue };
            if node.is_some_and(|n| n != name.node) {
                continue;
            }
            let Ok(bytes) = std::fs::read(root.event_path(&day, &file)) else { continue };
            let Ok(event) = serde_json::from_slice::<Event>(&bytes) else { continue };
            if service.is_some_and(|s| event.service.as_deref() != Some(s)) {
                continue;
            }
            seen += 1;
            if seen <= skip {
                continue;
            }
            if events.len() == per_page {
                return Ok(TimelinePage { events, next: Some(page + 1) });
            }
            events.push(event);
        }
    }
    Ok(TimelinePage { events, next: None })
}

/// Up to `limit` events matching the filters (node, service, event type), newest first; `next`
/// is `Some` when more exist. The node filter skips other nodes' files unread (their name says
/// the node).
pub fn read_newest(root: &DataRoot, node: Option<&str>, service: Option<&str>, kind: Option<&str>, limit: usize) -> std::io::Result<TimelinePage> {
    let mut events = Vec::new();
    for day in root.event_days()?.into_iter().rev() {
        for file in root.event_files(&day)?.into_iter().rev() {
            let Some(name) = EventFileName::parse(&file) else { continue };
            if node.is_some_and(|n| n != name.node) {
                continue;
            }
            let Ok(bytes) = std::fs::read(root.event_path(&day, &file)) else { continue };
            let Ok(event) = serde_json::from_slice::<Event>(&bytes) else { continue };
            if service.is_some_and(|s| event.service.as_deref() != Some(s)) || kind.is_some_and(|k| event.kind != k) {
                continue;
            }
            if events.len() == limit {
                return Ok(TimelinePage { events, next: Some(1) });
            }
            events.push(event);
        }
    }
    Ok(TimelinePage { events, next: None })
}
