//! The bound on open sealed segments: a shared, approximate LRU of which
//! sealed segments hold their files open.
//!
//! An open segment holds three file descriptors (`.log`, `.index`,
//! `.timeindex`) and two mappings. Active segments are always open; a
//! sealed one opens on first use (Kafka maps its indexes lazily too) and
//! registers here. Past `sealed_segments_open_max`, registering closes the
//! least recently used others. A read that holds a segment's handles keeps
//! them until it finishes, so the bound can be passed by the reads in
//! flight, never more. Nothing is refused at the bound: it is a cache.
//!
//! Recency is a counter each segment stamps on use without a lock; only
//! opening takes this module's mutex, and it scans the registered
//! segments to pick victims, a cost paid once per open of a cold segment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The default of `sealed_segments_open_max`.
pub const SEALED_SEGMENTS_OPEN_MAX: usize = 2048;

/// Something that can be closed to make room: a segment's handles.
pub trait Closable: Send + Sync + std::fmt::Debug {
    /// The last use stamp (see [`OpenSegments::stamp`]).
    fn last_used(&self) -> u64;
    /// Closes the handles if they may be (a sealed segment); readers in
    /// flight keep theirs. Returns whether it closed.
    fn close(&self) -> bool;
}

/// The shared registry of open sealed segments.
#[derive(Debug)]
pub struct OpenSegments {
    max: usize,
    clock: AtomicU64,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Weak<dyn Closable>>>,
}

impl OpenSegments {
    /// A registry that keeps at most `max` sealed segments open (at least 1).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            clock: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A fresh id for a segment.
    pub fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A use stamp: later uses get larger ones.
    pub fn stamp(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Weak<dyn Closable>>> {
        // The map is valid at every step; a panic elsewhere cannot break it.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sealed segments registered as open now.
    pub fn open_count(&self) -> usize {
        self.lock().len()
    }

    /// Registers segment `id` as open, and closes the least recently used
    /// others while more than `max` are. Call without holding any
    /// segment's lock: closing takes the victims' locks.
    pub fn register(&self, id: u64, segment: Weak<dyn Closable>) {
        let victims = {
            let mut open = self.lock();
            open.insert(id, segment);
            if open.len() <= self.max {
                return;
            }
            open.retain(|_, w| w.strong_count() > 0);
            let excess = open.len().saturating_sub(self.max);
            let mut by_age: Vec<(u64, u64)> = open
                .iter()
                .filter(|(k, _)| **k != id)
                .filter_map(|(k, w)| w.upgrade().map(|s| (s.last_used(), *k)))
                .collect();
            by_age.sort_unstable();
            by_age
                .into_iter()
                .take(excess)
                .filter_map(|(_, k)| open.remove(&k).and_then(|w| w.upgrade()))
                .collect::<Vec<Arc<dyn Closable>>>()
        };
        for v in victims {
            v.close();
        }
    }

    /// Forgets segment `id` (it closed, or it was deleted).
    pub fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }
}
