//! Share groups' metrics, through the `metrics` facade (nothing is
//! recorded unless the server installed an exporter):
//! `strata_share_records_total{group, outcome}` with outcome one of
//! delivered, accepted, released, rejected, renewed, expired,
//! dead_lettered; and `strata_share_redelivery_delay_ms{group}`, the delay
//! each failed record waits before it is offered again.

use metrics::{counter, histogram};

use super::partition::{Change, Slot, SlotState};

/// Counts `n` records of `group` with `outcome`.
pub fn record(group: &str, outcome: &'static str, n: u64) {
    if n > 0 {
        counter!("strata_share_records_total", "group" => group.to_string(), "outcome" => outcome)
            .increment(n);
    }
}

/// Counts what written changes say by themselves: dead letters and the
/// delays of retries.
pub fn count(group: &str, changes: &[Change]) {
    let mut dead = 0;
    for c in changes {
        match c {
            Change::DeadLettered(_) => dead += 1,
            Change::Slot {
                slot:
                    Slot {
                        state: SlotState::Available { at_ms },
                        last_failure_ms,
                        ..
                    },
                ..
            } => histogram!("strata_share_redelivery_delay_ms", "group" => group.to_string())
                .record(at_ms.saturating_sub(*last_failure_ms) as f64),
            _ => {}
        }
    }
    record(group, "dead_lettered", dead);
}
