//! One share group without I/O: its settings, its members' sessions, and
//! its partitions' record states, with the groups-log records each change
//! needs (the ring of update keys and the snapshots that bound it,
//! `super::state`).

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;

use super::partition::{Change, SharePartition, ShareSettings};
use super::state::{self, ShareGroupValue, UPDATE_RING};
use crate::core::groups::Tp;
use crate::core::groups::store::{Entry, Key};

/// A member's session.
#[derive(Debug, Clone)]
pub struct ShareMember {
    /// The topics it reads.
    pub topics: BTreeSet<String>,
    /// Its client's name and address.
    pub client_id: String,
    pub host: String,
    pub session_timeout_ms: u64,
    /// When the session ends unless it heartbeats.
    pub deadline_ms: u64,
}

/// One partition's state and its place on the update ring.
#[derive(Debug, Clone)]
pub struct PartState {
    pub share: SharePartition,
    /// The next update's ring slot; 0 means a snapshot goes first.
    ring: u32,
}

/// One share group.
#[derive(Debug, Clone)]
pub struct ShareGroup {
    name: String,
    pub config: ShareGroupValue,
    pub members: BTreeMap<String, ShareMember>,
    pub partitions: BTreeMap<Tp, PartState>,
    /// Where the next fetch starts looking, so members spread over
    /// partitions.
    pub cursor: usize,
}

impl ShareGroup {
    /// A group with no members or state yet.
    pub fn new(name: &str, config: ShareGroupValue) -> Self {
        Self {
            name: name.to_string(),
            config,
            members: BTreeMap::new(),
            partitions: BTreeMap::new(),
            cursor: 0,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The record of its settings.
    pub fn config_entry(&self) -> Entry {
        (
            Key::ShareGroup(self.name.clone()),
            Some(self.config.encode_to_vec()),
        )
    }

    /// The records that change `tp` by `changes`: a snapshot of its state
    /// before them when the ring starts over, then the update.
    pub fn records(&self, tp: &Tp, changes: &[Change]) -> Vec<Entry> {
        let Some(part) = self.partitions.get(tp) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(2);
        if part.ring == 0 {
            out.push(self.snapshot_entry(tp, &part.share));
        }
        let key = Key::ShareUpdate {
            group: self.name.clone(),
            tp: tp.clone(),
            slot: part.ring,
        };
        out.push((key, Some(state::update_value(changes).encode_to_vec())));
        out
    }

    /// A snapshot record of `share` as `tp`'s whole state.
    pub fn snapshot_entry(&self, tp: &Tp, share: &SharePartition) -> Entry {
        let key = Key::ShareSnapshot {
            group: self.name.clone(),
            tp: tp.clone(),
        };
        (key, Some(state::snapshot_value(share).encode_to_vec()))
    }

    /// Applies written changes to `tp` and moves its ring on.
    pub fn apply(&mut self, tp: &Tp, changes: &[Change]) {
        if let Some(part) = self.partitions.get_mut(tp) {
            for c in changes {
                part.share.apply(c);
            }
            part.ring = (part.ring + 1) % UPDATE_RING;
        }
    }

    /// Puts a partition's state in place (new, reset, or replayed); its
    /// next change writes a snapshot first.
    pub fn put_partition(&mut self, tp: Tp, share: SharePartition) {
        self.partitions.insert(tp, PartState { share, ring: 0 });
    }

    /// Tombstones for everything this group wrote.
    pub fn tombstones(&self) -> Vec<Entry> {
        let mut out = vec![(Key::ShareGroup(self.name.clone()), None)];
        for tp in self.partitions.keys() {
            out.push((
                Key::ShareSnapshot {
                    group: self.name.clone(),
                    tp: tp.clone(),
                },
                None,
            ));
            for slot in 0..UPDATE_RING {
                out.push((
                    Key::ShareUpdate {
                        group: self.name.clone(),
                        tp: tp.clone(),
                        slot,
                    },
                    None,
                ));
            }
        }
        out
    }

    /// The earliest time something in the group is due: a session end or
    /// a lease deadline.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let sessions = self.members.values().map(|m| m.deadline_ms);
        let leases = self
            .partitions
            .values()
            .filter_map(|p| p.share.next_deadline_ms());
        sessions.chain(leases).min()
    }

    /// The partition settings this group's config gives over `base`.
    pub fn settings(&self, base: &ShareSettings) -> ShareSettings {
        ShareSettings {
            lease_ms: self.config.lease_ms,
            delivery_limit: self.config.delivery_limit,
            ..base.clone()
        }
    }
}
