//! `strata-bench soak`: the crash soak. Loops `kill -9` of the real broker
//! under durable load from several idempotent producers and a consumer
//! group that commits, then checks what survived:
//!
//! - every acknowledged record is in the log exactly once, at the offset
//!   its acknowledgement named, and each producer's records are in the
//!   order it sent them, partition by partition;
//! - a record whose send got no answer is there at most once;
//! - the group's committed offsets are never ahead of what the consumer
//!   was delivered;
//! - the broker is back and takes writes after every kill.
//!
//! Not part of CI (it runs for minutes); `docs/TESTING.md` records a run.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use strata_client::{
    Acks, Client, ConsumerConfig, ProducerConfig, ProducerRecord, RecordMetadata, Seek,
};

const TOPIC: &str = "soak";
const GROUP: &str = "soak-group";

/// `strata-bench soak` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the broker's data (a fresh temporary one inside it).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Kill-and-restart cycles.
    #[arg(long, default_value_t = 200)]
    cycles: u32,
    /// Producers, each on its own task.
    #[arg(long, default_value_t = 3)]
    producers: u32,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// The longest a cycle's load runs before the kill (ms); each cycle
    /// picks between a tenth of it and all of it.
    #[arg(long, default_value_t = 1000)]
    kill_after_ms_max: u64,
}

/// What the run saw, shared by its tasks.
#[derive(Debug, Default)]
struct Seen {
    /// Every value sent, and where its acknowledgement put it (if any).
    sent: HashMap<String, Option<(u32, i64)>>,
    /// Per partition, one past the highest offset the consumer was given.
    delivered: BTreeMap<u32, i64>,
    acked: u64,
}

/// Runs the soak; `Err` on the first violation or if the broker fails.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let exe = crate::spawn::broker_exe()?;
    let tmp = tempfile::Builder::new()
        .prefix("strata-soak-")
        .tempdir_in(&args.dir)?;
    let data = tmp.path().join("data");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut listen = "127.0.0.1:0".to_string();
    for cycle in 0..args.cycles {
        let (mut child, url) = start(&exe, &data, &listen)?;
        listen = url.trim_start_matches("http://").to_string();
        let client = crate::credentials::client(&url).await?;
        if cycle == 0 {
            client
                .admin()
                .create_topic(TOPIC, args.partitions, &[])
                .await?;
        }
        check_committed(&client, &seen, cycle).await?;
        let acked_before = seen.lock().expect("seen").acked;
        let mut tasks = Vec::new();
        for p in 0..args.producers {
            tasks.push(tokio::spawn(produce(
                client.clone(),
                seen.clone(),
                cycle,
                p,
            )));
        }
        tasks.push(tokio::spawn(consume(client.clone(), seen.clone())));
        rng_state = rng_state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let max = args.kill_after_ms_max.max(10);
        let run_ms = max / 10 + (rng_state >> 33) % (max - max / 10);
        // Let the load run: this is a soak, not a test; time is the point.
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        // The broker must have taken writes this cycle before it dies.
        let mut waited = 0;
        while seen.lock().expect("seen").acked == acked_before {
            if waited >= 10_000 {
                bail!("cycle {cycle}: the broker acknowledged nothing in 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 10;
        }
        child.kill().context("kill -9")?;
        child.wait()?;
        for t in tasks {
            t.abort();
        }
        if (cycle + 1) % 20 == 0 {
            let s = seen.lock().expect("seen");
            eprintln!(
                "cycle {}: {} records acknowledged, {} sent",
                cycle + 1,
                s.acked,
                s.sent.len()
            );
        }
    }
    let (mut child, url) = start(&exe, &data, &listen)?;
    let client = crate::credentials::client(&url).await?;
    check_committed(&client, &seen, args.cycles).await?;
    let result = check_log(&client, &seen, args.partitions).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait()?;
    let s = seen.lock().expect("seen");
    result?;
    let delivered: i64 = s.delivered.values().sum();
    println!(
        "soak: {} kill -9 cycles, {} records acknowledged ({} sent), the group delivered up to {delivered} offsets: every acknowledged record once, in order; commits never ahead of deliveries",
        args.cycles,
        s.acked,
        s.sent.len()
    );
    Ok(())
}

fn start(
    exe: &std::path::Path,
    data: &std::path::Path,
    listen: &str,
) -> anyhow::Result<(Child, String)> {
    // The port of a killed broker is free at once (nothing lingers on a
    // listening socket), but retry a few times rather than trust it.
    let mut last = None;
    for _ in 0..20 {
        match crate::spawn::start_broker(exe, data, listen) {
            Ok(started) => return Ok(started),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last.expect("tried").context("restarting the broker"))
}

/// One producer: sends numbered records, durable, until its task ends.
async fn produce(client: Client, seen: Arc<Mutex<Seen>>, cycle: u32, p: u32) {
    let producer = client.producer(ProducerConfig {
        acks: Acks::Durable,
        delivery_timeout: Duration::from_secs(5),
        ..ProducerConfig::default()
    });
    for seq in 0u64.. {
        let value = format!("{cycle}:{p}:{seq}");
        seen.lock().expect("seen").sent.insert(value.clone(), None);
        let r = producer
            .send_and_wait(ProducerRecord::new(TOPIC).value(value.clone().into_bytes()))
            .await;
        match r {
            Ok(RecordMetadata {
                partition, offset, ..
            }) => {
                let mut s = seen.lock().expect("seen");
                s.sent.insert(value, Some((partition, offset)));
                s.acked += 1;
            }
            Err(_) => return,
        }
    }
}

/// The group's one member: polls and commits what it was given.
async fn consume(client: Client, seen: Arc<Mutex<Seen>>) {
    let mut c = client.consumer(ConsumerConfig {
        auto_commit: false,
        fetch_wait: Duration::from_millis(50),
        group_instance_id: Some("soak-consumer".into()),
        session_timeout: Some(Duration::from_secs(6)),
        ..ConsumerConfig::default()
    });
    if c.subscribe(GROUP, &[TOPIC]).await.is_err() {
        return;
    }
    loop {
        let Ok(records) = c.poll().await else { return };
        {
            let mut s = seen.lock().expect("seen");
            for r in &records {
                let d = s.delivered.entry(r.partition).or_insert(0);
                *d = (*d).max(r.offset + 1);
            }
        }
        if c.commit().await.is_err() {
            return;
        }
    }
}

async fn check_committed(client: &Client, seen: &Mutex<Seen>, cycle: u32) -> anyhow::Result<()> {
    let committed = client.admin().committed_offsets(GROUP, &[]).await?;
    let s = seen.lock().expect("seen");
    for c in committed.iter().filter(|c| c.offset >= 0) {
        let delivered = s.delivered.get(&c.partition).copied().unwrap_or(0);
        if c.offset > delivered {
            bail!(
                "cycle {cycle}: partition {} committed at {} but only {delivered} was delivered",
                c.partition,
                c.offset
            );
        }
    }
    Ok(())
}

/// Reads every partition whole and checks it against what was sent.
async fn check_log(client: &Client, seen: &Mutex<Seen>, partitions: u32) -> anyhow::Result<()> {
    let mut found: HashMap<String, (u32, i64)> = HashMap::new();
    for partition in 0..partitions {
        let end = client
            .admin()
            .list_offset(TOPIC, partition, strata_client::OffsetSpec::Latest)
            .await?
            .unwrap_or(0);
        let mut c = client.consumer(ConsumerConfig {
            fetch_wait: Duration::from_millis(10),
            ..ConsumerConfig::default()
        });
        c.assign(TOPIC, partition, Seek::Beginning).await?;
        // The last sequence seen of each (cycle, producer) here.
        let mut last: HashMap<String, u64> = HashMap::new();
        while c.position(TOPIC, partition).unwrap_or(end) < end {
            for r in c.poll().await? {
                let value =
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                if let Some(prev) = found.insert(value.clone(), (partition, r.offset)) {
                    bail!(
                        "{value:?} is in the log twice: at {prev:?} and at {partition}/{}",
                        r.offset
                    );
                }
                let (who, seq) = value.rsplit_once(':').context("a soak value")?;
                let seq: u64 = seq.parse()?;
                if let Some(&before) = last.get(who)
                    && before >= seq
                {
                    bail!("{who}: sequence {seq} after {before} in partition {partition}");
                }
                last.insert(who.to_string(), seq);
            }
        }
    }
    let s = seen.lock().expect("seen");
    for (value, at) in &found {
        if !s.sent.contains_key(value) {
            bail!("{value:?} at {at:?} was never sent");
        }
    }
    for (value, acked) in &s.sent {
        if let Some(at) = acked {
            match found.get(value) {
                Some(f) if f == at => {}
                Some(f) => bail!("{value:?} was acknowledged at {at:?} but is at {f:?}"),
                None => bail!("{value:?} was acknowledged at {at:?} and is gone"),
            }
        }
    }
    Ok(())
}
