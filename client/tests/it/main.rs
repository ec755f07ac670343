//! strata-client's integration tests (and the `strata` CLI's) in one binary: one link instead of 8, which
//! CI's 15 minutes on two cores needed. Each module is one former
//! `tests/<name>.rs`; run one with `cargo test -p strata-client --test it <name>::`.

mod common;
#[path = "../../../broker/tests/it/support/mod.rs"]
mod support;

mod cli;
mod client;
mod compression;
mod groups;
mod in_flight;
mod kafka_confluent;
mod kafka_sasl;
mod operations;
mod security;
mod share;
mod tls;
