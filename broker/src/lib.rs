//! The Strata broker.
//!
//! Layers, from the ground up (each depends only on those below it):
//!
//! - [`storage`]: the storage engine, the `strata-storage` crate
//!   (re-exported here under its old path). One partition's append-only log
//!   of segment files with sparse offset and time indexes, durability modes
//!   with group commit, and crash recovery. Synchronous: its manifest has no
//!   tokio or gRPC.
//! - [`core`]: topics and partitions, their rules and limits; async, but
//!   no transport.
//! - [`server`]: the gRPC services, configuration, startup and shutdown.
//! - [`kafka`]: the Kafka wire protocol listener, beside gRPC on the same
//!   core.
//!
//! See `docs/ARCHITECTURE.md`.

pub mod core;
pub mod kafka;
pub mod server;

pub use strata_storage as storage;
