//! The `strata-broker` binary: parses settings, sets up logging and the
//! runtime, and runs the server until SIGINT or SIGTERM.

use strata_broker::server::{self, Args};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

// tonic allocates a fresh buffer per call; glibc's allocator hands large
// ones back to the kernel each time, which capped throughput in our
// measurements (docs/BENCHMARKS.md). mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::load(std::env::args_os())?;
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&args.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Sized from appends_in_flight_max, so appends waiting on fsyncs leave
    // threads for reads, heartbeats and retention.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(args.broker_options().limits.blocking_threads_max())
        .build()?;
    runtime.block_on(async {
        // Install the handlers now, before recovery, so that a signal that
        // arrives early still means "shut down cleanly".
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        server::run(args, Box::pin(stop)).await
    })
}
