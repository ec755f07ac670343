//! The `strata-broker` binary.
//!
//! Until the gRPC server lands (issue 3), it opens and recovers every
//! partition log under the data directory, reports what recovery found, and
//! exits. The command line is already the one users will type.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use strata_broker::storage::{Log, LogConfig};

#[derive(Debug, Parser)]
#[command(name = "strata-broker", version, about = "The Strata log broker")]
struct Args {
    /// Directory holding all topics and partitions.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Address the gRPC server will listen on.
    #[arg(long, env = "STRATA_LISTEN", default_value = "127.0.0.1:7390")]
    listen: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let topics = args.data_dir.join("topics");
    std::fs::create_dir_all(&topics).with_context(|| format!("creating {}", topics.display()))?;
    let mut partitions = 0;
    for topic in std::fs::read_dir(&topics)? {
        for partition in std::fs::read_dir(topic?.path())? {
            let dir = partition?.path();
            if !dir.is_dir() {
                continue;
            }
            let log = Log::open(&dir, LogConfig::default())
                .with_context(|| format!("opening {}", dir.display()))?;
            let r = log.recovery_report();
            tracing::info!(
                dir = %dir.display(),
                clean = r.clean_shutdown,
                segments = r.segments,
                scanned = r.segments_scanned,
                truncated_bytes = r.truncated_bytes,
                indexes_rebuilt = r.indexes_rebuilt.len(),
                start = r.log_start.0,
                end = r.log_end.0,
                "partition recovered"
            );
            log.close()?;
            partitions += 1;
        }
    }
    tracing::info!(
        data_dir = %args.data_dir.display(),
        partitions,
        listen = %args.listen,
        "storage opened and closed cleanly; the gRPC server is not built yet"
    );
    Ok(())
}
