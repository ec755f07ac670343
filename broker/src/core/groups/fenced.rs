//! Why the coordinator refuses a member: its id or epoch is stale, or it
//! commits for a partition it does not own. Each says how to recover. And
//! who a commit comes from, which decides what is checked.

/// Who commits offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committer<'a> {
    /// A tool or a client outside the group (Kafka's "simple" consumer,
    /// `strata group reset`): allowed only while the group has no members,
    /// of either protocol.
    Standalone,
    /// A Kafka classic-protocol commit, whose member and generation the
    /// classic group already checked (`ClassicGroups::check_commit`).
    Classic,
    /// A member, at the epoch its assignment came with (or the one before).
    Member {
        /// The member id.
        id: &'a str,
        /// Its epoch.
        epoch: i32,
    },
}

/// Why a heartbeat or commit is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    /// The member id is not (or no longer) in the group.
    #[error(
        "member {member:?} is not in group {group:?} (it left, timed out, or was replaced); rejoin with epoch 0"
    )]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id sent.
        member: String,
    },
    /// The epoch sent is older than the member's.
    #[error(
        "member {member:?} of group {group:?} sent stale epoch {sent} (current {current}); rejoin with epoch 0"
    )]
    StaleEpoch {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The epoch sent.
        sent: i32,
        /// The member's epoch.
        current: i32,
    },
    /// A commit for a partition the member does not own.
    #[error("member {member:?} of group {group:?} does not own {topic}/{partition}")]
    NotOwner {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A commit without a member id while the group has members.
    #[error(
        "group {group:?} has {members} active member(s); only members may commit (send member_id and member_epoch)"
    )]
    GroupActive {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },
}
