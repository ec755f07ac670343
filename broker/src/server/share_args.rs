//! The broker's share-group flags (each also a `STRATA_*` variable and a
//! TOML key, like every flag in `config`): the defaults a new share group
//! takes and the bounds it may ask within.

use crate::core::share::ShareDefaults;
use crate::core::share::coordinator::AbortAt;
use crate::core::share::partition::ShareSettings;

fn d() -> ShareDefaults {
    ShareDefaults::default()
}

fn p() -> ShareSettings {
    ShareSettings::default()
}

/// The crash-test hook's points (`core::share::coordinator::AbortAt`).
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum AbortArg {
    Before,
    After,
}

/// Share groups' flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ShareArgs {
    /// How long a share group's lease on a record lasts unless renewed, for
    /// a group that does not ask for another (ms; share.lease.ms).
    #[arg(long, env = "STRATA_SHARE_LEASE_MS", default_value_t = p().lease_ms)]
    pub share_lease_ms: u64,
    /// The shortest lease a share group may ask for (ms).
    #[arg(long, env = "STRATA_SHARE_LEASE_MS_MIN", default_value_t = d().lease_ms_min)]
    pub share_lease_ms_min: u64,
    /// The longest lease a share group may ask for (ms).
    #[arg(long, env = "STRATA_SHARE_LEASE_MS_MAX", default_value_t = d().lease_ms_max)]
    pub share_lease_ms_max: u64,
    /// Deliveries of a record before it is dead-lettered, for a group that
    /// does not ask for another (share.delivery.limit).
    #[arg(long, env = "STRATA_SHARE_DELIVERY_LIMIT", default_value_t = p().delivery_limit)]
    pub share_delivery_limit: u32,
    /// The highest delivery limit a share group may ask for.
    #[arg(long, env = "STRATA_SHARE_DELIVERY_LIMIT_MAX", default_value_t = d().delivery_limit_max)]
    pub share_delivery_limit_max: u32,
    /// The delay before a failed record's first retry (ms;
    /// share.retry.backoff.initial.ms).
    #[arg(long, env = "STRATA_SHARE_RETRY_BACKOFF_INITIAL_MS", default_value_t = p().backoff_initial_ms)]
    pub share_retry_backoff_initial_ms: u64,
    /// The longest delay before a retry (ms; share.retry.backoff.max.ms).
    #[arg(long, env = "STRATA_SHARE_RETRY_BACKOFF_MAX_MS", default_value_t = p().backoff_max_ms)]
    pub share_retry_backoff_max_ms: u64,
    /// Each retry's delay over the one before
    /// (share.retry.backoff.multiplier).
    #[arg(long, env = "STRATA_SHARE_RETRY_BACKOFF_MULTIPLIER", default_value_t = p().backoff_multiplier)]
    pub share_retry_backoff_multiplier: f64,
    /// Records leased at once in one partition of a share group
    /// (share.partition.leased.records.max).
    #[arg(long, env = "STRATA_SHARE_PARTITION_LEASED_RECORDS_MAX", default_value_t = p().leased_records_max)]
    pub share_partition_leased_records_max: u32,
    /// Records of one share partition delivered and not yet done, plus
    /// those done out of order (share.partition.pending.records.max).
    #[arg(long, env = "STRATA_SHARE_PARTITION_PENDING_RECORDS_MAX", default_value_t = p().pending_records_max)]
    pub share_partition_pending_records_max: u32,
    /// Share groups on the broker.
    #[arg(long, env = "STRATA_SHARE_GROUPS_MAX", default_value_t = d().share_groups_max)]
    pub share_groups_max: u32,
    /// Members of one share group.
    #[arg(long, env = "STRATA_SHARE_GROUP_MEMBERS_MAX", default_value_t = d().share_group_members_max)]
    pub share_group_members_max: u32,
    /// Records one share fetch may ask for.
    #[arg(long, env = "STRATA_SHARE_FETCH_RECORDS_MAX", default_value_t = d().share_fetch_records_max)]
    pub share_fetch_records_max: u32,
    /// Bytes of error text one release or reject may carry.
    #[arg(long, env = "STRATA_SHARE_ACK_ERROR_BYTES_MAX", default_value_t = d().share_ack_error_bytes_max)]
    pub share_ack_error_bytes_max: u32,
    /// For crash tests only: abort just before or after a dead letter's
    /// copy is appended.
    #[arg(long, hide = true)]
    pub test_abort_at_dead_letter: Option<AbortArg>,
}

impl ShareArgs {
    /// The share coordinator's settings; sessions are bounded like the
    /// consumer groups' ones.
    pub fn defaults(
        &self,
        session_timeout_ms: u32,
        session_timeout_ms_min: u32,
        session_timeout_ms_max: u32,
        heartbeat_interval_ms: u32,
    ) -> ShareDefaults {
        ShareDefaults {
            partition: ShareSettings {
                lease_ms: self.share_lease_ms,
                delivery_limit: self.share_delivery_limit.max(1),
                backoff_initial_ms: self.share_retry_backoff_initial_ms,
                backoff_max_ms: self.share_retry_backoff_max_ms,
                backoff_multiplier: self.share_retry_backoff_multiplier.max(1.0),
                leased_records_max: self.share_partition_leased_records_max.max(1),
                pending_records_max: self.share_partition_pending_records_max.max(1),
            },
            lease_ms_min: self.share_lease_ms_min,
            lease_ms_max: self.share_lease_ms_max,
            delivery_limit_max: self.share_delivery_limit_max,
            session_timeout_ms,
            session_timeout_ms_min,
            session_timeout_ms_max,
            heartbeat_interval_ms,
            share_groups_max: self.share_groups_max,
            share_group_members_max: self.share_group_members_max,
            share_fetch_records_max: self.share_fetch_records_max,
            share_ack_error_bytes_max: self.share_ack_error_bytes_max,
            test_abort_at_dead_letter: self.test_abort_at_dead_letter.map(|a| match a {
                AbortArg::Before => AbortAt::Before,
                AbortArg::After => AbortAt::After,
            }),
        }
    }
}
