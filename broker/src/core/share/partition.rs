//! One share partition's record states, without I/O or clocks (the caller
//! passes `now_ms`), so a model test can drive it.
//!
//! A record is available, leased to one member (until its deadline), or
//! done: accepted, or dead-lettered after `delivery_limit` attempts or a
//! reject. Every lease counts an attempt and is named by its [`Delivery`]
//! (offset and attempt), so an ack from an earlier lease is refused and
//! changes nothing.
//!
//! Decisions and their effects are apart, as in the groups coordinator:
//! `acquire`, `ack`, `expire` and `release_member` only say what would
//! change, as [`Change`]s (each the whole new state of one record, so
//! applying one twice is harmless); the caller writes them to the groups
//! log and then [`SharePartition::apply`]s them. Replay at startup applies
//! the same changes, so memory and log cannot drift apart.
//!
//! **Invariant:** every offset below `start` is done; no offset is both
//! accepted and dead-lettered; leased records never exceed
//! `leased_records_max`; records delivered and not done plus done above
//! `start` never exceed `pending_records_max`.

use std::collections::{BTreeMap, BTreeSet};

/// The bounds and timings of a share group's partitions.
#[derive(Debug, Clone)]
pub struct ShareSettings {
    /// How long a lease lasts unless renewed.
    pub lease_ms: u64,
    /// Attempts before a record is dead-lettered.
    pub delivery_limit: u32,
    /// The first retry's delay.
    pub backoff_initial_ms: u64,
    /// The longest retry delay.
    pub backoff_max_ms: u64,
    /// Each retry's delay over the one before.
    pub backoff_multiplier: f64,
    /// Records leased at once in one partition
    /// (`share.partition.leased.records.max`).
    pub leased_records_max: u32,
    /// Records delivered and not yet done, plus records done out of order
    /// above the start (`share.partition.pending.records.max`): what the
    /// partition's state holds, so its snapshot stays bounded. New records
    /// wait while it is full; retries do not.
    pub pending_records_max: u32,
}

impl Default for ShareSettings {
    fn default() -> Self {
        Self {
            lease_ms: 30_000,
            delivery_limit: 5,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 60_000,
            backoff_multiplier: 2.0,
            leased_records_max: 2_000,
            pending_records_max: 20_000,
        }
    }
}

/// One lease of one record: what an ack names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delivery {
    /// The record.
    pub offset: u64,
    /// Which attempt this lease is (1 for the first).
    pub attempt: u32,
}

/// What a member says about a leased record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Processed: never deliver it again.
    Accept,
    /// Not processed: deliver it again after `delay_ms` (or the backoff).
    Release {
        delay_ms: Option<u64>,
        error: Option<String>,
    },
    /// Poison: dead-letter it now.
    Reject { error: Option<String> },
    /// Still working: extend the lease.
    Renew,
}

/// Where a record not done stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// To be delivered again from `at_ms` on.
    Available { at_ms: u64 },
    /// Leased to `member` until `deadline_ms`.
    Leased { member: String, deadline_ms: u64 },
}

/// A record delivered at least once and not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Deliveries so far (the current lease included).
    pub attempts: u32,
    pub state: SlotState,
    /// The last error text a member gave.
    pub last_error: Option<String>,
    pub first_failure_ms: Option<u64>,
    pub last_failure_ms: u64,
}

/// A record leaving for the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub offset: u64,
    /// Deliveries it had.
    pub attempts: u32,
    /// The last error text a member gave.
    pub last_error: Option<String>,
    pub first_failure_ms: u64,
    pub last_failure_ms: u64,
    /// The dead-letter partition's end when this was decided: its copy,
    /// if written, is at or after it (where recovery looks for it).
    pub dlq_from: u64,
}

/// One decided change of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The record's new state (leased, renewed, or available again).
    Slot { offset: u64, slot: Slot },
    /// Accepted: done.
    Accepted(u64),
    /// Dead-lettered: done here, and its copy to the dead-letter topic
    /// is pending until [`Change::DeadLetterWritten`].
    DeadLettered(DeadLetter),
    /// The dead letter's copy is durable in the dead-letter topic.
    DeadLetterWritten(u64),
    /// Records below this offset left the log (retention) or were never
    /// to be read (a reset): done without delivery.
    SkipTo(u64),
}

impl Change {
    /// The lease this change hands out, if it is one.
    pub fn delivery(&self) -> Option<Delivery> {
        match self {
            Self::Slot {
                offset,
                slot:
                    Slot {
                        attempts,
                        state: SlotState::Leased { .. },
                        ..
                    },
            } => Some(Delivery {
                offset: *offset,
                attempt: *attempts,
            }),
            _ => None,
        }
    }
}

/// Why an ack is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// The record is not leased under this delivery any more.
    #[error(
        "delivery {attempt} of offset {offset} is stale: the record was leased again or is done"
    )]
    StaleDelivery { offset: u64, attempt: u32 },
    /// Another member holds the lease.
    #[error("delivery {attempt} of offset {offset} is not leased to member {member}")]
    NotHolder {
        offset: u64,
        attempt: u32,
        member: String,
    },
}

/// Counts of a partition's records by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareCounts {
    pub leased: u32,
    /// Available now or once their delay passes (delivered before).
    pub retrying: u32,
    /// Of those, still waiting for their delay.
    pub delayed: u32,
    /// Dead letters whose copy is not yet written.
    pub dead_pending: u32,
}

/// One partition of a share group.
#[derive(Debug, Clone)]
pub struct SharePartition {
    settings: ShareSettings,
    /// Every offset below is done.
    start: u64,
    /// Offsets at or past it have never been delivered.
    fresh: u64,
    /// The log's end as last offered.
    end: u64,
    /// Delivered at least once and not done, by offset.
    slots: BTreeMap<u64, Slot>,
    /// Done above `start` (out-of-order accepts and dead letters).
    done: BTreeSet<u64>,
    /// Dead letters whose copy is not yet durable in the dead-letter topic.
    dead_pending: BTreeMap<u64, DeadLetter>,
    /// Records dead-lettered since the state began (or was reset).
    dead_lettered_total: u64,
    leased: u32,
    rng: fastrand::Rng,
}

impl SharePartition {
    /// A partition whose records from `start` on are to be delivered;
    /// `seed` drives the retry jitter.
    pub fn new(settings: ShareSettings, start: u64, seed: u64) -> Self {
        Self {
            settings,
            start,
            fresh: start,
            end: start,
            slots: BTreeMap::new(),
            done: BTreeSet::new(),
            dead_pending: BTreeMap::new(),
            dead_lettered_total: 0,
            leased: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The first offset not done.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The first offset never delivered.
    pub fn fresh(&self) -> u64 {
        self.fresh
    }

    /// Records leased now.
    pub fn leased(&self) -> u32 {
        self.leased
    }

    /// The settings in force.
    pub fn settings(&self) -> &ShareSettings {
        &self.settings
    }

    /// Records delivered and not done, by offset.
    pub fn slots(&self) -> &BTreeMap<u64, Slot> {
        &self.slots
    }

    /// Done above `start`.
    pub fn done(&self) -> &BTreeSet<u64> {
        &self.done
    }

    /// Records dead-lettered since the state began (or was reset).
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered_total
    }

    /// Dead letters whose copy is not yet written.
    pub fn dead_pending(&self) -> &BTreeMap<u64, DeadLetter> {
        &self.dead_pending
    }

    /// Counts by state at `now_ms`.
    pub fn counts(&self, now_ms: u64) -> ShareCounts {
        let mut c = ShareCounts {
            leased: self.leased,
            dead_pending: self.dead_pending.len() as u32,
            ..ShareCounts::default()
        };
        for s in self.slots.values() {
            if let SlotState::Available { at_ms } = s.state {
                c.retrying += 1;
                c.delayed += u32::from(at_ms > now_ms);
            }
        }
        c
    }

    /// The log has records up to `end` (exclusive).
    pub fn offer(&mut self, end: u64) {
        self.end = self.end.max(end);
    }

    /// The earliest time a record waiting for its delay becomes available.
    pub fn next_retry_ms(&self) -> Option<u64> {
        self.slots
            .values()
            .filter_map(|s| match s.state {
                SlotState::Available { at_ms } => Some(at_ms),
                SlotState::Leased { .. } => None,
            })
            .min()
    }

    fn room_for_fresh(&self) -> u64 {
        let held = (self.slots.len() + self.done.len()) as u64;
        u64::from(self.settings.pending_records_max).saturating_sub(held)
    }

    /// The delay before retry `attempt` (1-based): exponential, capped,
    /// with up to 20% jitter either way.
    fn backoff_ms(&mut self, attempt: u32) -> u64 {
        let s = &self.settings;
        let exp = s.backoff_multiplier.powi(attempt.saturating_sub(1) as i32);
        let base = (s.backoff_initial_ms as f64 * exp).min(s.backoff_max_ms as f64);
        let jitter = 0.8 + 0.4 * self.rng.f64();
        (base * jitter) as u64
    }

    /// Leases up to `max` available records to `member`, in offset order.
    /// A record that failed twice already goes out alone, so one poison
    /// record does not fail a whole batch again.
    pub fn acquire(&self, member: &str, now_ms: u64, max: u32) -> Vec<Change> {
        let room = self.settings.leased_records_max.saturating_sub(self.leased);
        let max = max.min(room) as usize;
        let fresh_end = self.end.min(self.fresh + self.room_for_fresh());
        let retries = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.state, SlotState::Available { at_ms } if at_ms <= now_ms))
            .map(|(o, s)| (*o, Some(s)));
        let fresh = (self.fresh..fresh_end).map(|o| (o, None));
        let deadline_ms = now_ms + self.settings.lease_ms;
        let mut out = Vec::new();
        for (offset, old) in retries.chain(fresh).take(max) {
            let suspect = old.is_some_and(|s| s.attempts >= 2);
            if suspect && !out.is_empty() {
                break;
            }
            let mut slot = old.cloned().unwrap_or(Slot {
                attempts: 0,
                state: SlotState::Available { at_ms: 0 },
                last_error: None,
                first_failure_ms: None,
                last_failure_ms: 0,
            });
            slot.attempts += 1;
            slot.state = SlotState::Leased {
                member: member.to_string(),
                deadline_ms,
            };
            out.push(Change::Slot { offset, slot });
            if suspect {
                break;
            }
        }
        out
    }

    /// Whether `member` holds the lease `d` names (`Ok`), or why not.
    pub fn check(&self, d: Delivery, member: &str) -> Result<&Slot, ShareError> {
        let stale = ShareError::StaleDelivery {
            offset: d.offset,
            attempt: d.attempt,
        };
        let slot = self.slots.get(&d.offset).ok_or(stale.clone())?;
        let SlotState::Leased { member: holder, .. } = &slot.state else {
            return Err(stale);
        };
        if slot.attempts != d.attempt {
            return Err(stale);
        }
        if holder != member {
            return Err(ShareError::NotHolder {
                offset: d.offset,
                attempt: d.attempt,
                member: member.to_string(),
            });
        }
        Ok(slot)
    }

    /// Decides a member's ack of the lease it names.
    pub fn ack(
        &mut self,
        d: Delivery,
        member: &str,
        ack: Ack,
        now_ms: u64,
    ) -> Result<Change, ShareError> {
        let slot = self.check(d, member)?;
        Ok(match ack {
            Ack::Accept => Change::Accepted(d.offset),
            Ack::Renew => {
                let mut slot = slot.clone();
                slot.state = SlotState::Leased {
                    member: member.to_string(),
                    deadline_ms: now_ms + self.settings.lease_ms,
                };
                Change::Slot {
                    offset: d.offset,
                    slot,
                }
            }
            Ack::Release { delay_ms, error } => self.fail(d.offset, error, delay_ms, false, now_ms),
            Ack::Reject { error } => self.fail(d.offset, error, None, true, now_ms),
        })
    }

    /// Leases past their deadline, as failed deliveries.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Change> {
        let due: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.state, SlotState::Leased { deadline_ms, .. } if deadline_ms <= now_ms))
            .map(|(o, _)| *o)
            .collect();
        due.into_iter()
            .map(|o| self.fail(o, Some("lease expired".into()), None, false, now_ms))
            .collect()
    }

    /// The earliest lease deadline.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.slots
            .values()
            .filter_map(|s| match s.state {
                SlotState::Leased { deadline_ms, .. } => Some(deadline_ms),
                SlotState::Available { .. } => None,
            })
            .min()
    }

    /// A member's session ended: what it held fails and goes back.
    pub fn release_member(&mut self, member: &str, now_ms: u64) -> Vec<Change> {
        let held: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(&s.state, SlotState::Leased { member: m, .. } if m == member))
            .map(|(o, _)| *o)
            .collect();
        held.into_iter()
            .map(|o| self.fail(o, Some("member left".into()), None, false, now_ms))
            .collect()
    }

    /// The leases restored by a replay belong to sessions that ended with
    /// the broker: they expire at the next [`SharePartition::expire`].
    pub fn end_restored_leases(&mut self) {
        for s in self.slots.values_mut() {
            if let SlotState::Leased { deadline_ms, .. } = &mut s.state {
                *deadline_ms = 0;
            }
        }
    }

    /// A leased record's delivery failed: retry later, or dead-letter it.
    fn fail(
        &mut self,
        offset: u64,
        error: Option<String>,
        delay_ms: Option<u64>,
        reject: bool,
        now_ms: u64,
    ) -> Change {
        let mut slot = self.slots[&offset].clone();
        slot.first_failure_ms.get_or_insert(now_ms);
        slot.last_failure_ms = now_ms;
        if error.is_some() {
            slot.last_error = error;
        }
        if reject || slot.attempts >= self.settings.delivery_limit {
            return Change::DeadLettered(DeadLetter {
                offset,
                attempts: slot.attempts,
                last_error: slot.last_error,
                first_failure_ms: slot.first_failure_ms.unwrap_or(now_ms),
                last_failure_ms: now_ms,
                dlq_from: 0,
            });
        }
        let at_ms = now_ms + delay_ms.unwrap_or_else(|| self.backoff_ms(slot.attempts));
        slot.state = SlotState::Available { at_ms };
        Change::Slot { offset, slot }
    }

    /// Applies a decided (and written) change.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Slot { offset, slot } => {
                self.take_slot(*offset);
                if *offset < self.start || self.done.contains(offset) {
                    return;
                }
                self.leased += u32::from(matches!(slot.state, SlotState::Leased { .. }));
                self.slots.insert(*offset, slot.clone());
                self.fresh = self.fresh.max(offset + 1);
                self.end = self.end.max(self.fresh);
            }
            Change::Accepted(offset) => self.finish(*offset),
            Change::DeadLettered(dead) => {
                self.dead_lettered_total +=
                    u64::from(!self.done.contains(&dead.offset) && dead.offset >= self.start);
                self.finish(dead.offset);
                self.dead_pending.insert(dead.offset, dead.clone());
            }
            Change::DeadLetterWritten(offset) => {
                self.dead_pending.remove(offset);
            }
            Change::SkipTo(to) => {
                let below: Vec<u64> = self.slots.range(..*to).map(|(o, _)| *o).collect();
                for o in below {
                    self.take_slot(o);
                }
                self.done = self.done.split_off(to);
                self.start = self.start.max(*to);
                self.fresh = self.fresh.max(*to);
                self.end = self.end.max(*to);
                self.advance();
            }
        }
    }

    /// Removes a slot; whether it was leased (and so counted off).
    fn take_slot(&mut self, offset: u64) -> bool {
        let was = self
            .slots
            .remove(&offset)
            .is_some_and(|s| matches!(s.state, SlotState::Leased { .. }));
        self.leased -= u32::from(was);
        was
    }

    /// A record is done (accepted or dead-lettered).
    fn finish(&mut self, offset: u64) {
        self.take_slot(offset);
        if offset >= self.start {
            self.done.insert(offset);
        }
        self.fresh = self.fresh.max(offset + 1);
        self.end = self.end.max(self.fresh);
        self.advance();
    }

    fn advance(&mut self) {
        while self.done.remove(&self.start) {
            self.start += 1;
        }
    }

    /// A partition from a snapshot's parts (replay).
    pub fn restore(settings: ShareSettings, parts: Restored, seed: u64) -> Self {
        let mut p = Self::new(settings, parts.start, seed);
        p.fresh = parts.fresh.max(parts.start);
        p.end = p.fresh;
        p.done = parts.done.into_iter().filter(|o| *o >= p.start).collect();
        for (offset, slot) in parts.slots {
            p.apply(&Change::Slot { offset, slot });
        }
        p.dead_pending = parts
            .dead_pending
            .into_iter()
            .map(|d| (d.offset, d))
            .collect();
        p.dead_lettered_total = parts.dead_lettered_total;
        p.advance();
        p
    }
}

/// What a snapshot holds.
#[derive(Debug, Default)]
pub struct Restored {
    pub start: u64,
    pub fresh: u64,
    pub slots: Vec<(u64, Slot)>,
    pub done: Vec<u64>,
    pub dead_pending: Vec<DeadLetter>,
    pub dead_lettered_total: u64,
}
