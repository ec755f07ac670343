//! `strata-bench`: Strata's load generator.
//!
//! Today it measures the storage engine in-process (`strata-bench log`):
//! appends of pre-built batches straight to a partition log on disk, with
//! a chosen durability mode and number of concurrent appenders; and the
//! gRPC produce path (`strata-bench grpc-produce`). The full workloads
//! (produce, consume, end-to-end latency) come with the client.
//!
//! The `log` workload links the broker's storage engine directly, which is
//! the one place `bench` depends on `strata-broker`: it measures the engine
//! without the network, as the baseline the gRPC path is compared with.

mod grpc_produce;
mod log_append;
mod report;
mod shape;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "strata-bench",
    version,
    about = "Load generator for the Strata log broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Append batches straight to a partition log on disk (no network).
    Log(log_append::Args),
    /// Produce pre-encoded batches to a broker over gRPC.
    GrpcProduce(grpc_produce::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Log(args) => log_append::run(args),
        Command::GrpcProduce(args) => grpc_produce::run(args),
    }
}

// The same allocator as the broker: tonic allocates per call.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
