//! Share-group admin: list, describe (members, and per partition the
//! records leased, retrying, delayed and dead-lettered, and the lag),
//! reset a group's start, delete a group. Reset and delete need a group
//! without members, as in Kafka, and wait for pending dead letters.

use std::collections::BTreeMap;

use super::coordinator::ShareGroups;
use super::group::{ShareGroup, ShareMember};
use super::partition::{ShareCounts, SharePartition};
use super::state::ShareGroupValue;
use crate::core::error::{BrokerError, Result};
use crate::core::groups::{ResetTo, Tp};

/// One partition of a described share group.
#[derive(Debug, Clone)]
pub struct SharePartitionInfo {
    pub tp: Tp,
    /// Every offset below is done.
    pub start: u64,
    /// The partition's high watermark (0 if it cannot be read).
    pub end: u64,
    pub counts: ShareCounts,
    /// Records not yet done: from `start` to `end`, less those done out
    /// of order.
    pub lag: u64,
    pub dead_lettered_total: u64,
}

/// A described share group.
#[derive(Debug, Clone)]
pub struct ShareDescription {
    pub name: String,
    pub config: ShareGroupValue,
    pub members: Vec<(String, ShareMember)>,
    pub partitions: Vec<SharePartitionInfo>,
}

impl ShareGroups {
    /// Every share group, with its member count.
    pub fn list(&self) -> Vec<(String, usize)> {
        self.lock()
            .values()
            .map(|g| (g.name().to_string(), g.members.len()))
            .collect()
    }

    /// A group's members and partitions.
    pub fn describe(&self, group: &str) -> Result<ShareDescription> {
        let now = self.now_ms();
        let groups = self.lock();
        let g = groups
            .get(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
        let partitions = g
            .partitions
            .iter()
            .map(|(tp, p)| {
                let end = self
                    .broker
                    .partition(&tp.0, tp.1)
                    .and_then(|p| p.high_watermark())
                    .unwrap_or(0);
                let s = &p.share;
                let lag = end
                    .saturating_sub(s.start())
                    .saturating_sub(s.done().len() as u64);
                SharePartitionInfo {
                    tp: tp.clone(),
                    start: s.start(),
                    end,
                    counts: s.counts(now),
                    lag,
                    dead_lettered_total: s.dead_lettered_total(),
                }
            })
            .collect();
        Ok(ShareDescription {
            name: group.into(),
            config: g.config.clone(),
            members: g
                .members
                .iter()
                .map(|(i, m)| (i.clone(), m.clone()))
                .collect(),
            partitions,
        })
    }

    /// Refuses while the group has members or dead letters still to write.
    fn check_idle(&self, group: &str, what: &str) -> Result<()> {
        self.flush_dead_letters();
        let groups = self.lock();
        let g = groups
            .get(group)
            .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
        refuse_members(g, what)?;
        let pending: usize = g
            .partitions
            .values()
            .map(|p| p.share.dead_pending().len())
            .sum();
        if pending > 0 {
            return Err(BrokerError::Busy {
                limit: "dead letters pending",
                max: 0,
                what: format!(
                    "{pending} dead letter(s) of share group {group:?} are not yet written; {what} once they are"
                ),
            });
        }
        Ok(())
    }

    /// Moves the start of `topic`'s partitions (all, or `partition`) in a
    /// group without members: everything from the new start on is to be
    /// delivered again as new; the record states there are forgotten.
    pub fn reset(
        &self,
        group: &str,
        topic: &str,
        partition: Option<u32>,
        to: ResetTo,
    ) -> Result<Vec<(Tp, u64)>> {
        self.check_idle(group, "reset it")?;
        let t = self.broker.topic(topic)?;
        let mut starts = Vec::new();
        for p in t.partitions() {
            if partition.is_some_and(|want| want != p.id()) {
                continue;
            }
            let (log_start, hw) = (p.log_start()?, p.high_watermark()?);
            let offset = match to {
                ResetTo::Earliest => log_start,
                ResetTo::Latest => hw,
                ResetTo::Offset(o) => (o.max(0) as u64).clamp(log_start, hw),
                ResetTo::Timestamp(ts) => p.offset_for_timestamp_blocking(ts)?.unwrap_or(hw),
            };
            starts.push(((topic.to_string(), p.id()), offset));
        }
        if let (Some(want), true) = (partition, starts.is_empty()) {
            {
                return Err(BrokerError::UnknownPartition {
                    topic: topic.into(),
                    partition: want,
                    count: t.partitions().len() as u32,
                });
            }
        }
        let target = {
            let mut groups = self.lock();
            let g = groups
                .get_mut(group)
                .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
            refuse_members(g, "reset it")?;
            let settings = g.settings(&self.defaults.partition);
            let fresh: BTreeMap<Tp, SharePartition> = starts
                .iter()
                .map(|(tp, o)| {
                    (
                        tp.clone(),
                        SharePartition::new(settings.clone(), *o, fastrand::u64(..)),
                    )
                })
                .collect();
            let entries: Vec<_> = fresh
                .iter()
                .map(|(tp, p)| g.snapshot_entry(tp, p))
                .collect();
            let target = self.write(&entries)?;
            for (tp, p) in fresh {
                g.put_partition(tp, p);
            }
            target
        };
        self.sync(target)?;
        tracing::info!(group, topic, ?to, "share group reset");
        Ok(starts)
    }

    /// Deletes a group without members, and its state.
    pub fn delete(&self, group: &str) -> Result<()> {
        self.check_idle(group, "delete it")?;
        let target = {
            let mut groups = self.lock();
            let g = groups
                .get(group)
                .ok_or_else(|| BrokerError::UnknownGroup(group.into()))?;
            refuse_members(g, "delete it")?;
            let target = self.write(&g.tombstones())?;
            groups.remove(group);
            target
        };
        self.sync(target)?;
        tracing::info!(group, "deleted share group");
        Ok(())
    }
}

/// Admin changes need a group without members.
fn refuse_members(g: &ShareGroup, what: &str) -> Result<()> {
    if g.members.is_empty() {
        return Ok(());
    }
    Err(BrokerError::GroupNotEmpty {
        group: g.name().into(),
        members: g.members.len(),
        what: what.into(),
    })
}
