//! `strata-bench share`: a work queue drained by share consumers. A
//! backlog of --messages is produced first; then C share consumers (each
//! on its own connection, in one share group) lease, "work" (--work-ms of
//! sleep per record, one record at a time per consumer, as a worker that
//! waits on I/O) and accept every record. Reported: accepted records per
//! second, from the first poll to the last accept confirmed, and how many
//! deliveries were redeliveries. With work, keep --max-records small: a
//! consumer works through what it leased one record at a time, and the
//! partition leases at most `share_partition_leased_records_max` at once.
//!
//! `bench/jetstream/` is the same workload on a NATS JetStream work-queue
//! stream, to run beside it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use strata_client::{Client, ProducerConfig, ProducerRecord, ShareConfig};

/// Arguments of `strata-bench share`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The broker to load.
    #[arg(long, default_value = "http://127.0.0.1:7390")]
    broker: String,
    /// Start a broker from this build on a temporary data directory (in
    /// --dir) instead, and stop and remove it afterwards.
    #[arg(long)]
    spawn_broker: bool,
    /// Where --spawn-broker puts its data directory.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Partitions of the work topic.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Share consumers, each on its own connection.
    #[arg(long, default_value_t = 8)]
    consumers: usize,
    /// Records in the backlog.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    message_size: usize,
    /// Simulated work per record, as a sleep (ms; 0: none).
    #[arg(long, default_value_t = 0.0)]
    work_ms: f64,
    /// Records one poll may lease.
    #[arg(long, default_value_t = 500)]
    max_records: u32,
}

/// Runs the workload and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.consumers == 0 || args.partitions == 0 || args.messages == 0 {
        bail!("--consumers, --partitions and --messages must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn backlog(client: &Client, topic: &str, args: &Args) -> anyhow::Result<()> {
    let producer = client.producer(ProducerConfig::default());
    let value = vec![b'x'; args.message_size];
    let topic: Arc<str> = topic.into();
    let mut sent = 0;
    while sent < args.messages {
        let n = (args.messages - sent).min(10_000);
        let records = (0..n).map(|_| ProducerRecord::new(topic.clone()).value(value.clone()));
        producer.send_all(records).await?.await;
        sent += n;
    }
    producer.close().await?;
    Ok(())
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let (_spawned, url) = if args.spawn_broker {
        let (s, url) = crate::spawn::spawn_broker(&args.dir)?;
        (Some(s), url)
    } else {
        (None, args.broker.clone())
    };
    let client = crate::credentials::client(&url).await?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    let topic = format!("share-bench-{nanos:08x}");
    client
        .admin()
        .create_topic(&topic, args.partitions, &[])
        .await
        .context("creating the topic")?;
    let loaded = Instant::now();
    backlog(&client, &topic, &args).await?;
    println!(
        "share: {} records of {} bytes on {} partition(s) in {:.1?}; {} consumer(s), {} ms of work each",
        args.messages,
        args.message_size,
        args.partitions,
        loaded.elapsed(),
        args.consumers,
        args.work_ms
    );
    let done = Arc::new(AtomicU64::new(0));
    let redelivered = Arc::new(AtomicU64::new(0));
    let work = Duration::from_secs_f64(args.work_ms / 1000.0);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.consumers {
        let client = crate::credentials::client(&url).await?;
        let cfg = ShareConfig {
            client_id: format!("bench-{i}"),
            max_records: args.max_records,
            max_wait: Duration::from_millis(100),
            ..ShareConfig::new("bench", &[topic.as_str()])
        };
        let (done, redelivered, total) = (done.clone(), redelivered.clone(), args.messages);
        tasks.push(tokio::spawn(async move {
            let mut c = client.share_consumer(cfg).await?;
            while done.load(Ordering::Relaxed) < total {
                for r in c.poll().await? {
                    if !work.is_zero() {
                        // A thread's sleep: tokio's timer rounds a 1 ms
                        // sleep up to 2 ms or more.
                        tokio::task::spawn_blocking(move || std::thread::sleep(work)).await?;
                    }
                    if r.lease.delivery > 1 {
                        redelivered.fetch_add(1, Ordering::Relaxed);
                    }
                    r.ack().clone().accept();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            let mut failed = 0;
            for (_, r) in c.take_ack_results().into_iter().chain(c.close().await?) {
                failed += u64::from(r.is_err());
            }
            anyhow::Ok(failed)
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await??;
    }
    let elapsed = started.elapsed();
    let accepted = done.load(Ordering::Relaxed);
    println!(
        "share: {accepted} accepted in {:.2?}: {:.0} records/s ({:.0} per consumer), {} redelivered, {failed} acks refused",
        elapsed,
        accepted as f64 / elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64() / args.consumers as f64,
        redelivered.load(Ordering::Relaxed),
    );
    Ok(())
}
