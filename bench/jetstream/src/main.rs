//! `strata-bench share`'s workload on NATS JetStream, to run beside it: a
//! backlog on a work-queue stream (file storage), then C workers pulling
//! from one durable pull consumer with explicit acks, each "working"
//! WORK_MS per record (a thread's sleep) and acking it. Prints accepted
//! records per second, like `strata-bench share`.
//!
//! Usage: `jetstream-bench NATS_URL CONSUMERS MESSAGES WORK_MS BATCH [double]`;
//! `double` waits for the server to confirm each ack (as a Strata accept
//! is confirmed, after an fsync), otherwise acks are fire-and-forget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let url = a.get(1).cloned().unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let consumers: usize = a.get(2).map_or(Ok(8), |v| v.parse())?;
    let messages: u64 = a.get(3).map_or(Ok(200_000), |v| v.parse())?;
    let work_ms: f64 = a.get(4).map_or(Ok(0.0), |v| v.parse())?;
    let batch: usize = a.get(5).map_or(Ok(500), |v| v.parse())?;
    let double = a.get(6).is_some_and(|v| v == "double");
    let client = async_nats::connect(&url).await?;
    let js = jetstream::new(client);
    let _ = js.delete_stream("WORK").await;
    let s = js
        .create_stream(stream::Config {
            name: "WORK".into(),
            subjects: vec!["work".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let loaded = Instant::now();
    let value = bytes::Bytes::from(vec![b'x'; 100]);
    let mut acks = Vec::with_capacity(10_000);
    for i in 0..messages {
        acks.push(js.publish("work", value.clone()).await?);
        if acks.len() == 10_000 || i + 1 == messages {
            for ack in acks.drain(..) {
                ack.await?;
            }
        }
    }
    println!("jetstream: {messages} records of 100 bytes in {:.1?}; {consumers} consumer(s), {work_ms} ms of work each", loaded.elapsed());
    s.create_consumer(pull::Config {
        durable_name: Some("workers".into()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        max_ack_pending: 100_000,
        ..Default::default()
    })
    .await?;
    let done = Arc::new(AtomicU64::new(0));
    let work = Duration::from_secs_f64(work_ms / 1000.0);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let client = async_nats::connect(&url).await?;
        let js = jetstream::new(client);
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let stream = js.get_stream("WORK").await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let c: jetstream::consumer::PullConsumer = stream
                .get_consumer("workers")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            while done.load(Ordering::Relaxed) < messages {
                let mut got = c.fetch().max_messages(batch).expires(Duration::from_millis(100)).messages().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                while let Some(m) = got.next().await {
                    let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
                    if !work.is_zero() {
                        tokio::task::spawn_blocking(move || std::thread::sleep(work)).await?;
                    }
                    if double {
                        m.double_ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    } else {
                        m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    let n = done.load(Ordering::Relaxed);
    println!(
        "jetstream: {n} acked in {elapsed:.2?}: {:.0} records/s ({:.0} per consumer), acks {}",
        n as f64 / elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64() / consumers as f64,
        if double { "confirmed" } else { "fire-and-forget" }
    );
    Ok(())
}
