//! A seeded model test of one share partition's record states
//! (`core::share::partition`) against a plain model: per record, its
//! status and attempts, scanned naively. Random offers, acquires by three
//! members, acks of every kind (stale ones included), expiries, members
//! leaving and time passing; after each step the two must agree.
//!
//! Every failure names its seed; rerun one with `STRATA_PROP_SEED=N cargo
//! test -p strata-broker --test it share_partition::`; `STRATA_PROP_CASES` sets
//! how many seeds a run tries (default 200).

use std::collections::BTreeMap;

use prost::Message;
use strata_broker::core::share::partition::{
    Ack, Change, Delivery, ShareError, SharePartition, ShareSettings, Slot, SlotState,
};
use strata_broker::core::share::state::{self, ShareSnapshotValue, ShareUpdateValue};

#[derive(Debug, Clone, PartialEq)]
enum Status {
    Available { at_ms: u64 },
    Leased { member: usize, deadline_ms: u64 },
    Accepted,
    Dead,
}

#[derive(Debug, Clone)]
struct Rec {
    attempts: u32,
    status: Status,
}

struct Model {
    settings: ShareSettings,
    recs: BTreeMap<u64, Rec>,
}

impl Model {
    /// What an acquire may lease, in offset order: retries due, then new
    /// records while fewer than `pending_max` are held above the start.
    fn available(&self, now: u64, pending_max: u32) -> Vec<u64> {
        let start = self.start();
        let held = self
            .recs
            .iter()
            .filter(|(o, r)| {
                **o >= start
                    && (r.attempts > 0 || matches!(r.status, Status::Accepted | Status::Dead))
            })
            .count() as u64;
        let mut room = u64::from(pending_max).saturating_sub(held);
        self.recs
            .iter()
            .filter(|(_, r)| match r.status {
                Status::Available { at_ms } if r.attempts > 0 => at_ms <= now,
                Status::Available { .. } if room > 0 => {
                    room -= 1;
                    true
                }
                _ => false,
            })
            .map(|(o, _)| *o)
            .collect()
    }
    fn leased(&self) -> u32 {
        self.recs
            .values()
            .filter(|r| matches!(r.status, Status::Leased { .. }))
            .count() as u32
    }
    fn start(&self) -> u64 {
        self.recs
            .iter()
            .find(|(_, r)| !matches!(r.status, Status::Accepted | Status::Dead))
            .map(|(o, _)| *o)
            .unwrap_or_else(|| self.recs.len() as u64)
    }
    /// The backoff's bounds (before and after jitter) for a retry after
    /// `attempts` deliveries.
    fn backoff_bounds(&self, attempts: u32) -> (u64, u64) {
        let s = &self.settings;
        let base = (s.backoff_initial_ms as f64 * s.backoff_multiplier.powi(attempts as i32 - 1))
            .min(s.backoff_max_ms as f64);
        ((base * 0.8) as u64, (base * 1.2) as u64 + 1)
    }
    /// A failed delivery in the model; checks the outcome.
    fn fail(
        &mut self,
        offset: u64,
        outcome: &Change,
        delay: Option<u64>,
        reject: bool,
        now: u64,
        ctx: &str,
    ) {
        let limit = self.settings.delivery_limit;
        let bounds = self.backoff_bounds(self.recs[&offset].attempts);
        let r = self.recs.get_mut(&offset).unwrap();
        if reject || r.attempts >= limit {
            match outcome {
                Change::DeadLettered(d) => {
                    assert_eq!((d.offset, d.attempts), (offset, r.attempts), "{ctx}")
                }
                other => panic!("{ctx}: expected a dead letter for {offset}, got {other:?}"),
            }
            r.status = Status::Dead;
            return;
        }
        let Change::Slot {
            offset: o,
            slot:
                Slot {
                    state: SlotState::Available { at_ms },
                    ..
                },
        } = outcome
        else {
            panic!("{ctx}: expected a retry of {offset}, got {outcome:?}");
        };
        assert_eq!(*o, offset, "{ctx}");
        match delay {
            Some(d) => assert_eq!(*at_ms, now + d, "{ctx}: the asked delay"),
            None => assert!(
                (now + bounds.0..=now + bounds.1).contains(at_ms),
                "{ctx}: backoff {} outside {bounds:?}",
                at_ms - now
            ),
        }
        r.status = Status::Available { at_ms: *at_ms };
    }
}

/// Changes as they come back from the groups log.
fn persisted(changes: &[Change]) -> Vec<Change> {
    let bytes = state::update_value(changes).encode_to_vec();
    state::changes(ShareUpdateValue::decode(&bytes[..]).unwrap()).unwrap()
}

/// Applies changes the way the coordinator does: through their persisted
/// form, so a lossy encoding fails the model.
fn apply(p: &mut SharePartition, changes: &[Change]) {
    let back = persisted(changes);
    assert_eq!(back, changes, "changes survive their encoding");
    for c in &back {
        p.apply(c);
    }
}

fn run(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let settings = ShareSettings {
        lease_ms: 100,
        delivery_limit: rng.u32(1..5),
        backoff_initial_ms: 10,
        backoff_max_ms: 80,
        backoff_multiplier: 2.0,
        leased_records_max: rng.u32(1..8),
        pending_records_max: rng.u32(4..30),
    };
    let mut p = SharePartition::new(settings.clone(), 0, seed);
    let mut m = Model {
        settings: settings.clone(),
        recs: BTreeMap::new(),
    };
    let mut now = 0u64;
    let mut issued: Vec<(Delivery, usize)> = Vec::new();
    for step in 0..300 {
        let ctx = format!("seed {seed} step {step} (replay with STRATA_PROP_SEED={seed})");
        match rng.u8(0..11) {
            10 => {
                // A restart: the partition comes back from its snapshot.
                let bytes = state::snapshot_value(&p).encode_to_vec();
                let back = ShareSnapshotValue::decode(&bytes[..]).unwrap();
                p = SharePartition::restore(settings.clone(), state::restored(back), seed);
                p.offer(m.recs.len() as u64);
            }
            0 => {
                let end = m.recs.len() as u64 + rng.u64(0..5);
                for o in m.recs.len() as u64..end {
                    m.recs.insert(
                        o,
                        Rec {
                            attempts: 0,
                            status: Status::Available { at_ms: 0 },
                        },
                    );
                }
                p.offer(end);
            }
            1..=3 => {
                let member = rng.usize(0..3);
                let max = rng.u32(1..6);
                let got = p.acquire(&format!("m{member}"), now, max);
                apply(&mut p, &got);
                let got: Vec<Delivery> = got.iter().map(|c| c.delivery().unwrap()).collect();
                let room = settings.leased_records_max - m.leased();
                let mut want: Vec<u64> = m
                    .available(now, settings.pending_records_max)
                    .into_iter()
                    .take(max.min(room) as usize)
                    .collect();
                // Poison isolation: a record that failed twice goes alone.
                if let Some(i) = want.iter().position(|o| m.recs[o].attempts >= 2) {
                    want.truncate(if i == 0 { 1 } else { i });
                }
                let offsets: Vec<u64> = got.iter().map(|d| d.offset).collect();
                assert_eq!(offsets, want, "{ctx}: leased records");
                for d in &got {
                    let r = m.recs.get_mut(&d.offset).unwrap();
                    r.attempts += 1;
                    assert_eq!(d.attempt, r.attempts, "{ctx}");
                    r.status = Status::Leased {
                        member,
                        deadline_ms: now + settings.lease_ms,
                    };
                }
                issued.extend(got.into_iter().map(|d| (d, member)));
            }
            4..=6 if !issued.is_empty() => {
                let (d, holder) = issued[rng.usize(0..issued.len())];
                // Now and then another member acks what it does not hold.
                let member = if rng.u8(0..8) == 0 {
                    rng.usize(0..3)
                } else {
                    holder
                };
                let ack = match rng.u8(0..4) {
                    0 => Ack::Accept,
                    1 => Ack::Release {
                        delay_ms: rng.bool().then(|| rng.u64(0..50)),
                        error: Some(format!("e{step}")),
                    },
                    2 => Ack::Reject { error: None },
                    _ => Ack::Renew,
                };
                let got = p.ack(d, &format!("m{member}"), ack.clone(), now);
                let r = &m.recs[&d.offset];
                let current = r.attempts == d.attempt && matches!(r.status, Status::Leased { .. });
                if current && member != holder {
                    assert_eq!(
                        got,
                        Err(ShareError::NotHolder {
                            offset: d.offset,
                            attempt: d.attempt,
                            member: format!("m{member}"),
                        }),
                        "{ctx}"
                    );
                    continue;
                }
                if !current {
                    assert_eq!(
                        got,
                        Err(ShareError::StaleDelivery {
                            offset: d.offset,
                            attempt: d.attempt
                        }),
                        "{ctx}"
                    );
                    continue;
                }
                let got = got.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                apply(&mut p, std::slice::from_ref(&got));
                match ack {
                    Ack::Accept => {
                        assert_eq!(got, Change::Accepted(d.offset), "{ctx}");
                        m.recs.get_mut(&d.offset).unwrap().status = Status::Accepted;
                    }
                    Ack::Renew => {
                        let Change::Slot { offset, slot } = &got else {
                            panic!("{ctx}: a renew gave {got:?}");
                        };
                        assert_eq!(*offset, d.offset, "{ctx}");
                        assert_eq!(
                            slot.state,
                            SlotState::Leased {
                                member: format!("m{member}"),
                                deadline_ms: now + settings.lease_ms
                            },
                            "{ctx}"
                        );
                        if let Status::Leased { deadline_ms, .. } =
                            &mut m.recs.get_mut(&d.offset).unwrap().status
                        {
                            *deadline_ms = now + settings.lease_ms;
                        }
                    }
                    Ack::Release { delay_ms, .. } => {
                        m.fail(d.offset, &got, delay_ms, false, now, &ctx)
                    }
                    Ack::Reject { .. } => m.fail(d.offset, &got, None, true, now, &ctx),
                }
            }
            7 => {
                let member = rng.usize(0..3);
                let got = p.release_member(&format!("m{member}"), now);
                apply(&mut p, &got);
                let held: Vec<u64> = m
                    .recs
                    .iter()
                    .filter(|(_, r)| matches!(r.status, Status::Leased { member: x, .. } if x == member))
                    .map(|(o, _)| *o)
                    .collect();
                assert_eq!(got.len(), held.len(), "{ctx}: released");
                for (o, out) in held.iter().zip(&got) {
                    m.fail(*o, out, None, false, now, &ctx);
                }
            }
            _ => {
                now += rng.u64(0..60);
                let got = p.expire(now);
                apply(&mut p, &got);
                let due: Vec<u64> = m
                    .recs
                    .iter()
                    .filter(|(_, r)| matches!(r.status, Status::Leased { deadline_ms, .. } if deadline_ms <= now))
                    .map(|(o, _)| *o)
                    .collect();
                assert_eq!(got.len(), due.len(), "{ctx}: expired");
                for (o, out) in due.iter().zip(&got) {
                    m.fail(*o, out, None, false, now, &ctx);
                }
            }
        }
        assert_eq!(p.leased(), m.leased(), "{ctx}: leased count");
        assert!(p.leased() <= settings.leased_records_max, "{ctx}");
        assert_eq!(p.start(), m.start(), "{ctx}: start");
    }
}

#[test]
fn a_share_partition_agrees_with_its_model() {
    if let Ok(seed) = std::env::var("STRATA_PROP_SEED") {
        run(seed.parse().expect("STRATA_PROP_SEED is a number"));
        return;
    }
    let cases: u64 = std::env::var("STRATA_PROP_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let base = fastrand::u64(..);
    println!("share_partition seeds {base}..{}", base.wrapping_add(cases));
    for i in 0..cases {
        run(base.wrapping_add(i));
    }
}
