//! The Strata broker.
//!
//! Layers, from the ground up (each depends only on those below it):
//!
//! - [`storage`]: the storage engine. One partition's append-only log of
//!   segment files with sparse offset and time indexes, durability modes with
//!   group commit, and crash recovery. Synchronous: it knows nothing of tokio
//!   or gRPC.
//! - the core (topics, partition appenders, consumer groups) and the gRPC
//!   server come next; see `docs/ARCHITECTURE.md`.

pub mod storage;
