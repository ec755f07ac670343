//! Helpers of the broker's model tests: the storage engine's own (shared
//! by path, so they exist once), and a broker on the simulated disk.
#![allow(dead_code)]

#[path = "../../../../storage/tests/it/common/mod.rs"]
mod storage_common;

use std::path::PathBuf;
use std::sync::Arc;

pub use storage_common::*;

/// A broker's options with its data directory at `/data` on the simulated
/// disk `fs`, defaults and limits as shipped.
pub fn sim_broker_options(fs: &strata_storage::SimFs) -> strata_broker::core::BrokerOptions {
    strata_broker::core::BrokerOptions {
        data_dir: PathBuf::from("/data"),
        defaults: strata_broker::core::TopicDefaults::default(),
        limits: strata_broker::core::Limits::default(),
        fs: Arc::new(fs.clone()),
    }
}
