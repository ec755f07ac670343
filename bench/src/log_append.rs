//! The `log` workload: N threads append pre-encoded batches of fixed-size
//! records to one partition log, for a fixed number of bytes, and we report
//! throughput and per-append latency.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use strata_storage::{Durability, Log, LogConfig};

/// Durability mode names on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    /// Acknowledge once in the page cache.
    Pagecache,
    /// Acknowledge after an fsync (group commit).
    Fsync,
}

/// Arguments of `strata-bench log`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the log; a fresh temporary directory inside it is used
    /// and removed afterwards.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Durability mode.
    #[arg(long, value_enum, default_value = "fsync")]
    durability: Mode,
    /// Concurrent appending threads.
    #[arg(long, default_value_t = 1)]
    appenders: usize,
    #[command(flatten)]
    shape: crate::shape::Shape,
    /// Segment size.
    #[arg(long, default_value_t = 1 << 30)]
    segment_bytes_max: u64,
}

/// Runs the workload and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.appenders == 0 || args.appenders > 1024 {
        bail!("--appenders must be between 1 and 1024");
    }
    args.shape.check()?;
    let template = args.shape.batch().to_vec();
    let batch_bytes = template.len() as u64;
    let config = LogConfig {
        durability: match args.durability {
            Mode::Pagecache => Durability::PageCache,
            Mode::Fsync => Durability::Fsync,
        },
        segment_bytes_max: args.segment_bytes_max,
        batch_bytes_max: (batch_bytes as u32).max(1 << 20),
        ..LogConfig::default()
    };
    let tmp = tempfile::Builder::new()
        .prefix("strata-bench-log-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("creating a directory in {}", args.dir.display()))?;
    let log = Arc::new(Log::open(tmp.path(), config)?);

    let run_phase = |total: u64| -> anyhow::Result<(Duration, Histogram<u64>)> {
        let batches = total.div_ceil(batch_bytes);
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let threads: Vec<_> = (0..args.appenders)
            .map(|_| {
                let (log, next, batch) = (log.clone(), next.clone(), template.clone());
                std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                    while next.fetch_add(1, Ordering::Relaxed) < batches {
                        let t = Instant::now();
                        log.append(&batch)?;
                        hist.saturating_record(t.elapsed().as_micros() as u64);
                    }
                    Ok(hist)
                })
            })
            .collect();
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        for t in threads {
            hist.add(t.join().expect("appender thread")?)?;
        }
        // Timed to the last acknowledgement: in page-cache mode that is
        // the promise made. The fsync below only settles the disk before
        // the next phase.
        let elapsed = started.elapsed();
        log.flush()?;
        Ok((elapsed, hist))
    };

    run_phase(args.shape.total_bytes / 10)?; // warm-up: first touch of the files and page cache
    let (elapsed, hist) = run_phase(args.shape.total_bytes)?;
    println!("strata-bench log");
    println!(
        "  durability {:?}, appenders {}, {} records of {} bytes per batch ({} bytes), {} batches",
        args.durability,
        args.appenders,
        args.shape.batch_records,
        args.shape.record_bytes,
        batch_bytes,
        hist.len()
    );
    crate::report::throughput_and_latency(
        "append",
        &hist,
        batch_bytes,
        args.shape.batch_records as u64,
        elapsed,
    );
    log.close()?;
    Ok(())
}
