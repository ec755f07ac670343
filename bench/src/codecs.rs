//! `strata-bench codecs`: each codec on 1 MiB of the bench's own payload
//! (`--payload json` or `random`, cut into messages as the producer cuts
//! them), on one core, with no broker: the compression ratio and the
//! compress and decompress speed in MB/s of uncompressed bytes. This is
//! the figure behind the choice of codec crates, and the ceiling a
//! producer's compression puts on its throughput.

use std::time::{Duration, Instant};

use strata_client::Compression;
use strata_client::proto::compression::{compress, decompress};

use crate::payload::{HEADER_BYTES, PayloadKind, Pool};

/// Arguments of `codecs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the messages hold.
    #[arg(long, value_enum, default_value = "json")]
    pub payload: PayloadKind,
    /// Bytes per message.
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// Bytes of messages compressed as one batch.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// How long to repeat each measurement.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
}

/// Runs every codec and prints a line each.
pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.message_size > HEADER_BYTES && args.batch_bytes >= args.message_size,
        "--message-size must be above {HEADER_BYTES} and at most --batch-bytes"
    );
    let pool = Pool::new(args.payload, args.message_size, 1);
    let pad = args.message_size - HEADER_BYTES;
    let mut batch = Vec::with_capacity(args.batch_bytes);
    let mut seq = 0;
    while batch.len() + args.message_size <= args.batch_bytes {
        batch.extend_from_slice(&[0; HEADER_BYTES]);
        batch.extend_from_slice(pool.padding(seq, pad));
        seq += 1;
    }
    println!(
        "codecs: {} bytes of {:?} payload ({seq} messages of {}), each step repeated for {:?}",
        batch.len(),
        args.payload,
        args.message_size,
        args.duration
    );
    for codec in &Compression::ALL[1..] {
        let (compressed, c_mbs) = repeat(args.duration, batch.len(), || {
            compress(*codec, &batch).expect("compresses")
        });
        let (back, d_mbs) = repeat(args.duration, batch.len(), || {
            decompress(*codec, &compressed, batch.len(), "batch").expect("decompresses")
        });
        anyhow::ensure!(back == batch, "{codec:?} did not round-trip");
        println!(
            "{:<7} ratio {:>5.2}  compress {:>7.0} MB/s  decompress {:>7.0} MB/s",
            codec.name(),
            batch.len() as f64 / compressed.len() as f64,
            c_mbs,
            d_mbs
        );
    }
    Ok(())
}

/// Calls `f` until `duration` passes; its last result and the MB/s of
/// `bytes` per call.
fn repeat<T>(duration: Duration, bytes: usize, mut f: impl FnMut() -> T) -> (T, f64) {
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        let out = f();
        calls += 1;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return (
                out,
                (calls * bytes as u64) as f64 / elapsed.as_secs_f64() / 1e6,
            );
        }
    }
}
