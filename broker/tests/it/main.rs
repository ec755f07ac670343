//! strata-broker's integration tests in one binary: one link instead of 16, which
//! CI's 15 minutes on two cores needed. Each module is one former
//! `tests/<name>.rs`; run one with `cargo test -p strata-broker --test it <name>::`.

mod common;
mod support;

mod admin_power_loss;
mod compression;
mod fetch_limits;
mod foreign_batches;
mod format_doc;
mod group_state;
mod groups_power_loss;
mod kafka_rdkafka;
mod kafka_wire;
mod membership_power_loss;
mod old_layout;
mod open_segments;
mod reflection;
mod server;
mod share_partition;
mod share_power_loss;
