//! The `log` workload: N threads append pre-encoded batches of fixed-size
//! records to one partition log, for a fixed number of bytes, and we report
//! throughput and per-append latency.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use strata_broker::storage::{Durability, Log, LogConfig};
use strata_proto::BatchBuilder;

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
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 1000)]
    batch_records: usize,
    /// Total bytes of batches to append, across all appenders (after a
    /// warm-up of a tenth as much, not counted).
    #[arg(long, default_value_t = 4 << 30)]
    total_bytes: u64,
    /// Segment size.
    #[arg(long, default_value_t = 1 << 30)]
    segment_bytes_max: u64,
}

fn make_batch(records: usize, record_bytes: usize) -> Vec<u8> {
    let mut b = BatchBuilder::with_capacity(records * (record_bytes + 16));
    let value: Vec<u8> = (0..record_bytes).map(|i| (i * 31 % 251) as u8).collect();
    for i in 0..records {
        b.push(1_700_000_000_000 + i as i64, None, Some(&value), &[]);
    }
    b.finish().to_vec()
}

/// Runs the workload and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.appenders == 0 || args.appenders > 1024 {
        bail!("--appenders must be between 1 and 1024");
    }
    if args.batch_records == 0 || args.record_bytes == 0 {
        bail!("--batch-records and --record-bytes must be at least 1");
    }
    let template = make_batch(args.batch_records, args.record_bytes);
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

    run_phase(args.total_bytes / 10)?; // warm-up: first touch of the files and page cache
    let (elapsed, hist) = run_phase(args.total_bytes)?;
    println!("strata-bench log");
    println!(
        "  durability {:?}, appenders {}, {} records of {} bytes per batch ({} bytes), {} batches",
        args.durability,
        args.appenders,
        args.batch_records,
        args.record_bytes,
        batch_bytes,
        hist.len()
    );
    crate::report::throughput_and_latency(
        "append",
        &hist,
        batch_bytes,
        args.batch_records as u64,
        elapsed,
    );
    log.close()?;
    Ok(())
}
