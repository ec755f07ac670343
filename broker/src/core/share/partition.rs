//! One share partition's record states, without I/O or clocks (the caller
//! passes `now_ms`), so a model test can drive it.
//!
//! A record is available, leased to one member (until its deadline), or
//! done: accepted, or dead-lettered after `delivery_limit` attempts or a
//! reject. Every lease counts an attempt and is named by its [`Delivery`]
//! (offset and attempt), so an ack from an earlier lease is refused and
//! changes nothing.
//!
//! **Invariant:** every offset below `start` is done; no offset is both
//! accepted and dead-lettered; leased records never exceed
//! `leased_records_max`.

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
    /// Records leased at once in one partition.
    pub leased_records_max: u32,
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

/// What an ack or expiry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Accepted(u64),
    /// Available again at `at_ms`.
    Retry { offset: u64, at_ms: u64 },
    /// The lease goes on until `deadline_ms`.
    Renewed { offset: u64, deadline_ms: u64 },
    /// To the dead-letter topic, with its history.
    DeadLetter(DeadLetter),
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
}

/// Why an ack is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// The record is not leased under this delivery any more.
    #[error(
        "delivery {attempt} of offset {offset} is stale: the record was leased again or is done"
    )]
    StaleDelivery { offset: u64, attempt: u32 },
}

#[derive(Debug, Clone)]
enum State {
    Available { at_ms: u64 },
    Leased { member: String, deadline_ms: u64 },
}

#[derive(Debug, Clone)]
struct Slot {
    attempts: u32,
    state: State,
    last_error: Option<String>,
    first_failure_ms: Option<u64>,
    last_failure_ms: u64,
}

/// One partition of a share group.
#[derive(Debug)]
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
            leased: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The first offset not done.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Records leased now.
    pub fn leased(&self) -> u32 {
        self.leased
    }

    /// The log has records up to `end` (exclusive).
    pub fn offer(&mut self, end: u64) {
        self.end = self.end.max(end);
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
    pub fn acquire(&mut self, member: &str, now_ms: u64, max: u32) -> Vec<Delivery> {
        let mut out = Vec::new();
        let room = self.settings.leased_records_max.saturating_sub(self.leased);
        let max = max.min(room) as usize;
        let candidates: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Available { at_ms } if at_ms <= now_ms))
            .map(|(o, _)| *o)
            .chain(self.fresh..self.end)
            .take(max)
            .collect();
        for offset in candidates {
            let suspect = self.slots.get(&offset).is_some_and(|s| s.attempts >= 2);
            if suspect && !out.is_empty() {
                break;
            }
            let deadline_ms = now_ms + self.settings.lease_ms;
            let slot = self.slots.entry(offset).or_insert(Slot {
                attempts: 0,
                state: State::Available { at_ms: 0 },
                last_error: None,
                first_failure_ms: None,
                last_failure_ms: 0,
            });
            slot.attempts += 1;
            slot.state = State::Leased {
                member: member.to_string(),
                deadline_ms,
            };
            self.fresh = self.fresh.max(offset + 1);
            self.leased += 1;
            out.push(Delivery {
                offset,
                attempt: slot.attempts,
            });
            if suspect {
                break;
            }
        }
        out
    }

    /// Applies a member's ack to the lease it names.
    pub fn ack(&mut self, d: Delivery, ack: Ack, now_ms: u64) -> Result<Outcome, ShareError> {
        let stale = ShareError::StaleDelivery {
            offset: d.offset,
            attempt: d.attempt,
        };
        let slot = self.slots.get_mut(&d.offset).ok_or(stale.clone())?;
        if slot.attempts != d.attempt || !matches!(slot.state, State::Leased { .. }) {
            return Err(stale);
        }
        Ok(match ack {
            Ack::Accept => {
                self.leased -= 1;
                self.finish(d.offset);
                Outcome::Accepted(d.offset)
            }
            Ack::Renew => {
                let deadline_ms = now_ms + self.settings.lease_ms;
                if let State::Leased {
                    deadline_ms: dl, ..
                } = &mut slot.state
                {
                    *dl = deadline_ms;
                }
                Outcome::Renewed {
                    offset: d.offset,
                    deadline_ms,
                }
            }
            Ack::Release { delay_ms, error } => self.fail(d.offset, error, delay_ms, false, now_ms),
            Ack::Reject { error } => self.fail(d.offset, error, None, true, now_ms),
        })
    }

    /// Leases past their deadline count as failed deliveries.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Outcome> {
        let due: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Leased { deadline_ms, .. } if deadline_ms <= now_ms))
            .map(|(o, _)| *o)
            .collect();
        due.into_iter()
            .map(|o| self.fail(o, Some("lease expired".into()), None, false, now_ms))
            .collect()
    }

    /// A member's session ended: what it held fails and goes back.
    pub fn release_member(&mut self, member: &str, now_ms: u64) -> Vec<Outcome> {
        let held: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(&s.state, State::Leased { member: m, .. } if m == member))
            .map(|(o, _)| *o)
            .collect();
        held.into_iter()
            .map(|o| self.fail(o, Some("member left".into()), None, false, now_ms))
            .collect()
    }

    /// A leased record's delivery failed: retry later, or dead-letter it.
    fn fail(
        &mut self,
        offset: u64,
        error: Option<String>,
        delay_ms: Option<u64>,
        reject: bool,
        now_ms: u64,
    ) -> Outcome {
        self.leased -= 1;
        let limit = self.settings.delivery_limit;
        let slot = self
            .slots
            .get_mut(&offset)
            .expect("a leased record has a slot");
        slot.first_failure_ms.get_or_insert(now_ms);
        slot.last_failure_ms = now_ms;
        if error.is_some() {
            slot.last_error = error;
        }
        if reject || slot.attempts >= limit {
            let dead = DeadLetter {
                offset,
                attempts: slot.attempts,
                last_error: slot.last_error.clone(),
                first_failure_ms: slot.first_failure_ms.unwrap_or(now_ms),
                last_failure_ms: now_ms,
            };
            self.finish(offset);
            return Outcome::DeadLetter(dead);
        }
        let attempts = slot.attempts;
        let at_ms = now_ms + delay_ms.unwrap_or_else(|| self.backoff_ms(attempts));
        if let Some(slot) = self.slots.get_mut(&offset) {
            slot.state = State::Available { at_ms };
        }
        Outcome::Retry { offset, at_ms }
    }

    /// A record is done (accepted or dead-lettered); its lease is already
    /// counted off.
    fn finish(&mut self, offset: u64) {
        self.slots.remove(&offset);
        self.done.insert(offset);
        while self.done.remove(&self.start) {
            self.start += 1;
        }
    }
}
