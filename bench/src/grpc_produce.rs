//! The `grpc-produce` workload: P producers, each on its own connection
//! with several requests in flight, send pre-encoded batches of fixed-size
//! records to a broker over gRPC. It measures the whole produce path:
//! HTTP/2, decoding, validation, the append and (for durable acks) the
//! group-committed fsync.
//!
//! It uses the generated gRPC client directly; the richer workloads of
//! `strata-bench` will use `strata-client`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use strata_proto::v1::{self, admin_client::AdminClient, records_client::RecordsClient};
use tonic::transport::Channel;

/// Acknowledgement modes on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AckMode {
    /// Answer once written to the page cache (topic durability page_cache).
    Written,
    /// Answer once fsynced (topic durability fsync).
    Durable,
}

/// Arguments of `strata-bench grpc-produce`.
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
    /// Topic to (re)create and produce to.
    #[arg(long, default_value = "strata-bench")]
    topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Requests in flight per producer.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// Acknowledgement mode (and the topic's durability).
    #[arg(long, value_enum, default_value = "durable")]
    acks: AckMode,
    #[command(flatten)]
    shape: crate::shape::Shape,
}

/// A channel tuned for megabyte batches: big HTTP/2 windows and frames.
pub async fn connect(url: &str) -> anyhow::Result<Channel> {
    // The client's channel: the same windows and frame size, and TLS.
    let client = crate::credentials::client(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(client.channel())
}

/// Runs the workload and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.producers == 0 || args.in_flight == 0 || args.partitions == 0 {
        bail!("--producers, --in-flight and --partitions must be at least 1");
    }
    args.shape.check()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let (_spawned, url) = if args.spawn_broker {
        let (s, url) = crate::spawn::spawn_broker(&args.dir)?;
        (Some(s), url)
    } else {
        (None, args.broker.clone())
    };
    let mut admin =
        AdminClient::with_interceptor(connect(&url).await?, crate::credentials::bearer()?);
    let _ = admin
        .delete_topic(v1::DeleteTopicRequest {
            name: args.topic.clone(),
        })
        .await;
    let durability = match args.acks {
        AckMode::Written => "page_cache",
        AckMode::Durable => "fsync",
    };
    admin
        .create_topic(v1::CreateTopicRequest {
            name: args.topic.clone(),
            partitions: args.partitions,
            config: [("durability".to_string(), durability.to_string())].into(),
        })
        .await
        .context("creating the topic")?;
    let batch = args.shape.batch();
    let acks = match args.acks {
        AckMode::Written => v1::Acks::Written,
        AckMode::Durable => v1::Acks::Durable,
    };
    let mut clients = Vec::new();
    for _ in 0..args.producers {
        clients.push(
            RecordsClient::with_interceptor(connect(&url).await?, crate::credentials::bearer()?)
                .max_encoding_message_size(256 << 20)
                .max_decoding_message_size(256 << 20),
        );
    }

    let phase = |total: u64| {
        let batches = total.div_ceil(batch.len() as u64);
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for client in &clients {
            for _ in 0..args.in_flight {
                let (mut client, next, batch, topic) = (
                    client.clone(),
                    next.clone(),
                    batch.clone(),
                    args.topic.clone(),
                );
                let partitions = args.partitions;
                tasks.push(tokio::spawn(async move {
                    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= batches {
                            return anyhow::Ok(hist);
                        }
                        let req = v1::ProduceRequest {
                            acks: acks as i32,
                            topics: vec![v1::TopicProduceData {
                                topic: topic.clone(),
                                partitions: vec![v1::PartitionProduceData {
                                    partition: (i % u64::from(partitions)) as u32,
                                    data: Some(v1::partition_produce_data::Data::Batch(
                                        batch.clone(),
                                    )),
                                }],
                            }],
                        };
                        let t = Instant::now();
                        let resp = client.produce(req).await?.into_inner();
                        if let Some(e) = &resp.topics[0].partitions[0].error {
                            bail!("produce failed: {}", e.message);
                        }
                        hist.saturating_record(t.elapsed().as_micros() as u64);
                    }
                }));
            }
        }
        async move {
            let started = Instant::now();
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            for t in tasks {
                hist.add(t.await??)?;
            }
            anyhow::Ok((started.elapsed(), hist))
        }
    };
    phase(args.shape.total_bytes / 10).await?;
    let (elapsed, hist) = phase(args.shape.total_bytes).await?;
    println!("strata-bench grpc-produce");
    println!(
        "  acks {:?} (topic durability {durability}), {} producers x {} in flight, {} partitions, {} records of {} bytes per batch ({} bytes)",
        args.acks,
        args.producers,
        args.in_flight,
        args.partitions,
        args.shape.batch_records,
        args.shape.record_bytes,
        batch.len()
    );
    crate::report::throughput_and_latency(
        "request",
        &hist,
        batch.len() as u64,
        args.shape.batch_records as u64,
        elapsed,
    );
    let _ = admin
        .delete_topic(v1::DeleteTopicRequest {
            name: args.topic.clone(),
        })
        .await;
    Ok(())
}
