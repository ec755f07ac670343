//! strata-storage's integration tests in one binary: one link instead of 7, which
//! CI's 15 minutes on two cores needed. Each module is one former
//! `tests/<name>.rs`; run one with `cargo test -p strata-storage --test it <name>::`.

mod common;

mod compaction;
mod crash;
mod dependencies;
mod log_engine;
mod log_model;
mod power_loss;
mod sim_disk;
