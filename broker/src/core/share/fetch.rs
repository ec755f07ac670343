//! A share fetch: the member's acks (each decided on its own, a refused
//! one reported and changing nothing), then new leases across the
//! partitions of its topics, both written before the answer; then the
//! leased batches are read outside the lock, and leases of records the log
//! no longer has are settled.

use std::collections::{BTreeMap, HashSet};

use super::coordinator::{Decided, ShareAck, ShareFetched, ShareGroups};
use super::group::ShareGroup;
use super::partition::{Ack, Change, Delivery, ShareError, SharePartition};
use super::read::read_leased;
use crate::core::error::{BrokerError, Result};
use crate::core::groups::{Fenced, Tp};

/// New leases, by partition.
type Leased = Vec<(Tp, Vec<Delivery>)>;

/// Bytes of a partition read while collecting leased records.
const READ_CHUNK_BYTES: usize = 1 << 20;

impl ShareGroups {
    /// Acks what the member names, then leases it up to `max_records` more.
    pub fn fetch(
        &self,
        group: &str,
        member: &str,
        acks: Vec<ShareAck>,
        max_records: u32,
    ) -> Result<ShareFetched> {
        if max_records > self.defaults.share_fetch_records_max {
            return Err(BrokerError::LimitExceeded {
                limit: "share_fetch_records_max",
                max: self.defaults.share_fetch_records_max.into(),
                what: format!("a fetch of {max_records} records"),
            });
        }
        let error_max = self.defaults.share_ack_error_bytes_max as usize;
        for a in &acks {
            let error = match &a.ack {
                Ack::Release { error, .. } | Ack::Reject { error } => error.as_deref(),
                _ => None,
            };
            if error.is_some_and(|e| e.len() > error_max) {
                return Err(BrokerError::LimitExceeded {
                    limit: "share_ack_error_bytes_max",
                    max: error_max as u64,
                    what: format!("the error text of an ack of offset {}", a.delivery.offset),
                });
            }
        }
        let now = self.now_ms();
        let (results, leased, target) = {
            let mut groups = self.lock();
            let g = groups
                .get_mut(group)
                .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
            let m = g
                .members
                .get_mut(member)
                .ok_or_else(|| Fenced::UnknownMember {
                    group: group.into(),
                    member: member.into(),
                })?;
            m.deadline_ms = now + m.session_timeout_ms; // fetching is alive
            let (results, decided) = decide_acks(g, member, acks, now);
            let acked = self.commit(g, decided)?;
            let (decided, leased) = self.decide_acquire(g, member, max_records, now)?;
            let target = self.commit(g, decided)?.max(acked);
            let delivered = leased.iter().map(|(_, d)| d.len() as u64).sum();
            super::metrics::record(group, "delivered", delivered);
            (results, leased, target)
        };
        self.sync(target)?;
        let mut out = ShareFetched {
            acks: results,
            partitions: Vec::new(),
        };
        for (tp, deliveries) in leased {
            let partition = self.broker.partition(&tp.0, tp.1)?;
            let records = read_leased(&partition, &deliveries, READ_CHUNK_BYTES)?;
            if !records.gone.is_empty() {
                self.settle_gone(group, member, &tp, &records.gone)?;
            }
            if !records.found.is_empty() {
                out.partitions.push((tp, records));
            }
        }
        self.flush_dead_letters();
        Ok(out)
    }

    /// Leases up to `max` records to `member` across the partitions of
    /// its topics, starting where the last fetch of the group left off.
    fn decide_acquire(
        &self,
        g: &mut ShareGroup,
        member: &str,
        max: u32,
        now: u64,
    ) -> Result<(Decided, Leased)> {
        let topics = g.members[member].topics.clone();
        let mut tps: Vec<(Tp, u64, u64)> = Vec::new();
        for t in &topics {
            let Ok(topic) = self.broker.topic(t) else {
                continue;
            };
            for p in topic.partitions() {
                let (Ok(start), Ok(hw)) = (p.log_start(), p.high_watermark()) else {
                    continue;
                };
                tps.push(((t.clone(), p.id()), start, hw));
            }
        }
        if tps.is_empty() || max == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let first = g.cursor % tps.len();
        g.cursor = g.cursor.wrapping_add(1);
        tps.rotate_left(first);
        let settings = g.settings(&self.defaults.partition);
        let latest = g.config.start == "latest";
        let (mut decided, mut leased) = (Vec::new(), Vec::new());
        let mut left = max;
        for (tp, log_start, hw) in tps {
            if left == 0 {
                break;
            }
            if !g.partitions.contains_key(&tp) {
                let from = if latest { hw } else { log_start };
                g.put_partition(
                    tp.clone(),
                    SharePartition::new(settings.clone(), from, fastrand::u64(..)),
                );
            }
            let share = &mut g.partitions.get_mut(&tp).expect("just put").share;
            share.offer(hw);
            let mut changes = Vec::new();
            if share.start() < log_start {
                changes.push(Change::SkipTo(log_start)); // retention took them
            }
            let got = share.acquire(member, now, left);
            left -= got.len() as u32;
            let deliveries: Vec<Delivery> = got.iter().filter_map(Change::delivery).collect();
            changes.extend(got);
            if !deliveries.is_empty() {
                leased.push((tp.clone(), deliveries));
            }
            decided.push((tp, changes));
        }
        Ok((decided, leased))
    }

    /// Settles leases of records the log no longer has: done, with no
    /// delivery and no dead letter (they cannot be read by anyone).
    fn settle_gone(&self, group: &str, member: &str, tp: &Tp, gone: &[Delivery]) -> Result<()> {
        let target = {
            let mut groups = self.lock();
            let Some(g) = groups.get_mut(group) else {
                return Ok(());
            };
            let Some(part) = g.partitions.get_mut(tp) else {
                return Ok(());
            };
            let changes: Vec<Change> = gone
                .iter()
                .filter(|d| part.share.check(**d, member).is_ok())
                .map(|d| Change::Accepted(d.offset))
                .collect();
            self.commit(g, vec![(tp.clone(), changes)])?
        };
        self.sync(target)
    }
}

/// Decides a fetch's acks, each on its own: a refused one is reported and
/// changes nothing; an offset acked twice in one call is stale the second
/// time.
fn decide_acks(
    g: &mut ShareGroup,
    member: &str,
    acks: Vec<ShareAck>,
    now: u64,
) -> (Vec<Result<()>>, Decided) {
    let mut seen = HashSet::new();
    let mut decided: BTreeMap<Tp, Vec<Change>> = BTreeMap::new();
    let results = acks
        .into_iter()
        .map(|a| {
            let stale = ShareError::StaleDelivery {
                offset: a.delivery.offset,
                attempt: a.delivery.attempt,
            };
            let part = g.partitions.get_mut(&a.tp).ok_or(stale.clone())?;
            if !seen.insert((a.tp.clone(), a.delivery.offset)) {
                return Err(stale.into());
            }
            let outcome = match &a.ack {
                Ack::Accept => "accepted",
                Ack::Release { .. } => "released",
                Ack::Reject { .. } => "rejected",
                Ack::Renew => "renewed",
            };
            let change = part.share.ack(a.delivery, member, a.ack, now)?;
            super::metrics::record(g.name(), outcome, 1);
            decided.entry(a.tp).or_default().push(change);
            Ok(())
        })
        .collect();
    (results, decided.into_iter().collect())
}
