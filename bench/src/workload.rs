//! The client workloads, modelled on the OpenMessaging Benchmark:
//! `produce` (P producers, publish throughput and latency), `consume`
//! (C consumers draining a backlog from the beginning) and `e2e`
//! (producers at a fixed rate and consumers at once: end-to-end latency).
//!
//! Every message carries its producer, sequence number and *scheduled*
//! send time (`crate::payload`): at a fixed rate, message i of a producer is
//! due at `start + i / rate`, and both its publish latency (to the
//! acknowledgement) and its end-to-end latency (to the consumer) count from
//! then, so a producer that falls behind cannot hide the delay
//! (coordinated omission). Messages scheduled during the warm-up are sent
//! and checked for loss but not measured. Consumers mark every message
//! they receive; the report says whether any acknowledged message was
//! lost or received twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use strata_client::Client;

use crate::consume::{Drain, merge_consumed, start_consumers};
use crate::payload::HEADER_BYTES;
use crate::publish::produce_loop;
use crate::stats::{self, Latency, Rate, Report};

/// The largest message the bench sends (the broker's default
/// `max.message.bytes`).
const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// How messages are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// No key: the client spreads messages (sticky partitioning).
    None,
    /// A random 8-byte key per message.
    Random,
    /// One of this many keys, in turn.
    Fixed(u32),
}

impl std::str::FromStr for Keys {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "random" => Ok(Self::Random),
            _ => match s.strip_prefix("fixed:").map(str::parse::<u32>) {
                Some(Ok(n)) if n >= 1 => Ok(Self::Fixed(n)),
                _ => Err(format!(
                    "{s:?} is not a key distribution: none, random, or fixed:N with N >= 1"
                )),
            },
        }
    }
}

impl std::fmt::Display for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Random => f.write_str("random"),
            Self::Fixed(n) => write!(f, "fixed:{n}"),
        }
    }
}

/// Acknowledgement modes (each also sets the topic's durability).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckArg {
    /// Answer before writing (topic durability page_cache): may lose data.
    None,
    /// Answer once in the page cache (topic durability page_cache).
    Written,
    /// Answer once fsynced (topic durability fsync).
    Durable,
}

fn parse_compression(s: &str) -> Result<strata_client::Compression, String> {
    strata_client::Compression::parse(s)
        .ok_or_else(|| format!("{s:?} is not a codec: none, gzip, snappy, lz4 or zstd"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (write it like 30s or 500ms)"))
}

/// Settings every client workload shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The broker to load.
    #[arg(long, default_value = "http://127.0.0.1:7390")]
    pub broker: String,
    /// Start a broker from this build on a temporary data directory (in
    /// --dir) instead, and stop and remove it afterwards.
    #[arg(long)]
    pub spawn_broker: bool,
    /// Where --spawn-broker puts its data directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Topic to (re)create and use.
    #[arg(long, default_value = "strata-bench")]
    pub topic: String,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Bytes of each message's value (at least 20: the bench's stamp).
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// What fills each message after its stamp: random bytes, or
    /// JSON-like event text (which compresses like real records).
    #[arg(long, value_enum, default_value = "random")]
    pub payload: crate::payload::PayloadKind,
    /// The producer's compression codec: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub compression: strata_client::Compression,
    /// Keys: none, random, or fixed:N (N keys in turn).
    #[arg(long, default_value = "none")]
    pub keys: Keys,
    /// The producer's batch size in bytes (per partition).
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// The producer's linger: how long a batch waits to fill.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub linger: Duration,
    /// Acknowledgement mode (and the topic's durability).
    #[arg(long, value_enum, default_value = "durable")]
    pub acks: AckArg,
    /// Messages per second across all producers (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long to measure, after the warm-up (like 30s; the default when
    /// --messages is not given).
    #[arg(long, value_parser = parse_duration, conflicts_with = "messages")]
    pub duration: Option<Duration>,
    /// Messages to measure, after the warm-up.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Time at the start that is sent but not measured.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Batches of one partition the producer keeps in flight (1 to 5).
    #[arg(long, default_value_t = strata_client::MAX_IN_FLIGHT_MAX)]
    pub in_flight: usize,
    /// Hand the producer about a batch of messages per call
    /// (`Producer::send_all`) instead of one `send` per message.
    #[arg(long)]
    pub batch_api: bool,
    /// Write the report as JSON to this file (`-`: standard output, and
    /// then the report for people goes to standard error).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Save the latency histograms as PREFIX-publish.hgrm and
    /// PREFIX-e2e.hgrm (HdrHistogram's percentile distribution format).
    #[arg(long, value_name = "PREFIX")]
    pub hdr_out: Option<PathBuf>,
    /// Draw latency over time and its percentile distribution as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

impl Common {
    /// Refuses settings that cannot run, before anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.partitions == 0 {
            bail!("--partitions must be at least 1");
        }
        if !(HEADER_BYTES..=MESSAGE_BYTES_MAX).contains(&self.message_size) {
            bail!(
                "--message-size must be between {HEADER_BYTES} (the bench's stamp) and {MESSAGE_BYTES_MAX}"
            );
        }
        if self.batch_bytes < 1024 || self.batch_bytes > MESSAGE_BYTES_MAX {
            bail!("--batch-bytes must be between 1024 and {MESSAGE_BYTES_MAX}");
        }
        if self.linger > Duration::from_secs(10) {
            bail!("--linger must be at most 10s");
        }
        if self.messages == Some(0) {
            bail!("--messages must be at least 1");
        }
        if !(1..=strata_client::MAX_IN_FLIGHT_MAX).contains(&self.in_flight) {
            bail!(
                "--in-flight must be between 1 and {} (the batches the broker remembers per producer)",
                strata_client::MAX_IN_FLIGHT_MAX
            );
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            bail!("--duration must be longer than 0");
        }
        if self
            .plot
            .as_ref()
            .is_some_and(|p| p.extension().is_none_or(|e| e != "svg"))
        {
            bail!("--plot writes SVG: give a file name ending in .svg");
        }
        if let Some(dir) = self.json.as_ref().and_then(|p| p.parent())
            && !dir.as_os_str().is_empty()
            && !dir.is_dir()
        {
            bail!("--json: directory {} does not exist", dir.display());
        }
        Ok(())
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("topic", self.topic.clone()),
            ("partitions", self.partitions.to_string()),
            ("message_size", self.message_size.to_string()),
            ("keys", self.keys.to_string()),
            ("payload", format!("{:?}", self.payload).to_lowercase()),
            ("compression", self.compression.name().to_string()),
            ("batch_bytes", self.batch_bytes.to_string()),
            (
                "linger",
                humantime::format_duration(self.linger).to_string(),
            ),
            ("acks", format!("{:?}", self.acks).to_lowercase()),
            ("in_flight", self.in_flight.to_string()),
            ("batch_api", self.batch_api.to_string()),
            ("rate", self.rate.to_string()),
            (
                "warmup",
                humantime::format_duration(self.warmup).to_string(),
            ),
        ];
        match (self.messages, self.duration) {
            (Some(n), _) => p.push(("messages", n.to_string())),
            (None, d) => p.push((
                "duration",
                humantime::format_duration(d.unwrap_or(DEFAULT_DURATION)).to_string(),
            )),
        }
        p
    }

    fn durability(&self) -> (&'static str, String) {
        let topic = match self.acks {
            AckArg::Durable => "fsync",
            AckArg::Written | AckArg::None => "page_cache",
        };
        let what = match self.acks {
            AckArg::Durable => "acks=durable: acknowledged after fsync (group commit)",
            AckArg::Written => "acks=written: acknowledged once in the page cache",
            AckArg::None => "acks=none: not acknowledged",
        };
        (topic, format!("{what}; topic durability={topic}"))
    }
}

/// What to measure when neither --duration nor --messages is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);

/// `strata-bench produce`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub common: Common,
    /// Producers, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
}

/// `strata-bench consume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Consumers, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Consume as members of this consumer group (default: each consumer
    /// assigns itself a share of the partitions).
    #[arg(long)]
    pub group: Option<String>,
}

/// `strata-bench e2e`.
#[derive(Debug, Clone, clap::Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub common: Common,
    /// Producers, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consumers, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Consume as members of this consumer group.
    #[arg(long)]
    pub group: Option<String>,
}

impl ProduceArgs {
    /// Refuses settings that cannot run.
    pub fn check(&self) -> anyhow::Result<()> {
        self.common.check()?;
        if self.producers == 0 {
            bail!("--producers must be at least 1");
        }
        Ok(())
    }
}

impl ConsumeArgs {
    /// Refuses settings that cannot run.
    pub fn check(&self) -> anyhow::Result<()> {
        self.common.check()?;
        if self.consumers == 0 {
            bail!("--consumers must be at least 1");
        }
        if self.common.duration.is_some() {
            bail!("consume drains a backlog of --messages; --duration does not apply");
        }
        Ok(())
    }
}

impl E2eArgs {
    /// Refuses settings that cannot run.
    pub fn check(&self) -> anyhow::Result<()> {
        self.common.check()?;
        if self.producers == 0 || self.consumers == 0 {
            bail!("--producers and --consumers must be at least 1");
        }
        if self.common.rate == 0 {
            bail!(
                "e2e measures latency at a fixed rate: give --rate (find the highest sustainable one with `produce`)"
            );
        }
        Ok(())
    }
}

/// Counters the progress bar reads while the run goes.
#[derive(Debug, Default)]
pub struct Live {
    /// Messages handed to producers.
    pub sent: AtomicU64,
    /// Messages acknowledged.
    pub acked: AtomicU64,
    /// Bytes acknowledged.
    pub acked_bytes: AtomicU64,
    /// Messages received by consumers (duplicates included).
    pub received: AtomicU64,
    /// Bytes received.
    pub received_bytes: AtomicU64,
}

/// The clock and switches of one run.
#[derive(Debug)]
pub(crate) struct Run {
    /// Time zero of every stamp.
    pub start: Instant,
    /// Messages scheduled before this are not measured.
    pub warm_end: Instant,
    /// Producers stop scheduling at this time (duration mode).
    pub end: Option<Instant>,
    /// Measured messages left to send (messages mode).
    pub measured_left: Option<AtomicU64>,
    /// Producers stop (time up, count reached, Ctrl-C).
    pub stop: AtomicBool,
    /// Ctrl-C was pressed.
    pub interrupted: AtomicBool,
    pub live: Arc<Live>,
}

impl Run {
    pub fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    pub fn warm_end_ns(&self) -> u64 {
        self.nanos(self.warm_end)
    }
}

/// Sets bit `i`; returns whether it was set already.
pub(crate) fn set_bit(bits: &mut Vec<u64>, i: u64) -> bool {
    let (word, bit) = ((i / 64) as usize, i % 64);
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    let was = bits[word] & (1 << bit) != 0;
    bits[word] |= 1 << bit;
    was
}

async fn setup_topic(client: &Client, c: &Common) -> anyhow::Result<()> {
    let admin = client.admin();
    let _ = admin.delete_topic(&c.topic).await;
    let (durability, _) = c.durability();
    admin
        .create_topic(&c.topic, c.partitions, &[("durability", durability)])
        .await
        .with_context(|| format!("creating topic {}", c.topic))?;
    Ok(())
}

/// Which workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Producers only.
    Produce,
    /// A backlog first, then consumers drain it.
    Consume,
    /// Producers and consumers at once.
    E2e,
}

/// Everything a run needs, whichever workload it is.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workload.
    pub kind: Kind,
    /// Shared settings.
    pub common: Common,
    /// Producers.
    pub producers: u32,
    /// Consumers (0 for `produce`).
    pub consumers: u32,
    /// Consumer group, if consumers join one.
    pub group: Option<String>,
}

/// Runs a plan to its report (and its plot, histograms and JSON).
pub fn run(plan: Plan) -> anyhow::Result<Report> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run_async(plan.clone()))?;
    // With `--json -` standard output carries the JSON alone, so that it
    // can be piped; the report for people goes to standard error.
    let json_on_stdout = plan.common.json.as_deref() == Some(std::path::Path::new("-"));
    let say = |text: &str| {
        if json_on_stdout {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    };
    say(&report.0.text());
    if let Some(path) = &plan.common.json {
        report.0.write_json(path)?;
    }
    if let Some(prefix) = &plan.common.hdr_out {
        let name = |what: &str| {
            let mut p = prefix.clone().into_os_string();
            p.push(format!("-{what}.hgrm"));
            PathBuf::from(p)
        };
        if let Some(h) = &report.1 {
            stats::write_hgrm(h, &name("publish"))?;
        }
        if let Some(h) = &report.2 {
            stats::write_hgrm(h, &name("e2e"))?;
        }
    }
    if let Some(path) = &plan.common.plot {
        let (hist, series, label) = match (&report.2, &report.1) {
            (Some(e2e), _) => (e2e, &report.3, "end-to-end latency"),
            (None, Some(publish)) => (publish, &report.4, "publish latency"),
            (None, None) => bail!("--plot: no latency was measured"),
        };
        crate::plot::draw(path, label, hist, series, &report.0)?;
        say(&format!("  plot         {}\n", path.display()));
    }
    Ok(report.0)
}

type Outcome = (
    Report,
    Option<Histogram<u64>>,
    Option<Histogram<u64>>,
    Vec<Histogram<u64>>,
    Vec<Histogram<u64>>,
);

async fn run_async(plan: Plan) -> anyhow::Result<Outcome> {
    let c = plan.common.clone();
    let (_spawned, url) = if c.spawn_broker {
        let (s, url) = crate::spawn::spawn_broker(&c.dir)?;
        (Some(s), url)
    } else {
        (None, c.broker.clone())
    };
    let admin_client = crate::credentials::client(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    setup_topic(&admin_client, &c).await?;
    let live = Arc::new(Live::default());
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        // Registered here, before the run says Ctrl-C stops it: a listener
        // made inside the task would only register once the task first
        // ran, and a SIGINT before that killed the bench.
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("listening for Ctrl-C")?;
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if sigint.recv().await.is_some() {
                interrupted.store(true, Ordering::Release);
            }
        });
    }
    let progress = crate::progress::start(live.clone());

    // `consume`: the backlog first, at full speed, not measured.
    if plan.kind == Kind::Consume {
        let total = c.messages.unwrap_or(1_000_000);
        let now = Instant::now();
        let fill = Arc::new(Run {
            start: now,
            // Every message counts toward the backlog's size.
            warm_end: now,
            end: None,
            measured_left: Some(AtomicU64::new(total)),
            stop: AtomicBool::new(false),
            interrupted: AtomicBool::new(false),
            live: live.clone(),
        });
        let fill_common = Common {
            rate: 0,
            ..c.clone()
        };
        let producer = crate::credentials::client(&url).await?;
        let produced = produce_loop(producer, fill_common, fill.clone(), 0, 0.0).await?;
        if produced.errors > 0 {
            bail!(
                "filling the backlog failed: {}",
                produced.first_error.unwrap_or_default()
            );
        }
        live.received.store(0, Ordering::Release);
        let acked = live.acked.load(Ordering::Acquire);
        let started = Instant::now();
        let run = Arc::new(Run {
            start: fill.start,
            warm_end: fill.start,
            end: None,
            measured_left: None,
            stop: AtomicBool::new(true),
            interrupted: AtomicBool::new(false),
            live: live.clone(),
        });
        let drain = Arc::new(Drain::default());
        drain.expected.store(acked, Ordering::Release);
        drain.producers_done.store(true, Ordering::Release);
        let consumed = start_consumers(&plan, &url, &run, &drain, true, &interrupted).await?;
        let drain_seconds = started.elapsed().as_secs_f64();
        progress.finish_and_clear();
        let (rate, _e2e, _series, integrity) =
            merge_consumed(consumed, std::slice::from_ref(&produced.acked), started);
        let report = Report {
            workload: "consume",
            params: params(&plan),
            durability: c.durability().1,
            publish: None,
            publish_errors: 0,
            publish_latency: None,
            consume: Some(Rate {
                seconds: drain_seconds,
                ..rate
            }),
            e2e_latency: None,
            drain_seconds: Some(drain_seconds),
            integrity: Some(integrity),
            interrupted: interrupted.load(Ordering::Acquire),
        };
        return Ok((report, None, None, Vec::new(), Vec::new()));
    }

    let start = Instant::now() + Duration::from_millis(200);
    let warm_end = start + c.warmup;
    let end = match (c.messages, c.duration) {
        (Some(_), _) => None,
        (None, d) => Some(warm_end + d.unwrap_or(DEFAULT_DURATION)),
    };
    let run = Arc::new(Run {
        start,
        warm_end,
        end,
        measured_left: c.messages.map(AtomicU64::new),
        stop: AtomicBool::new(false),
        interrupted: AtomicBool::new(false),
        live: live.clone(),
    });
    let drain = Arc::new(Drain::default());
    // Consumers first, so they are reading when the first message lands.
    let consumers = if plan.kind == Kind::E2e {
        let (plan, url, run, drain, interrupted) = (
            plan.clone(),
            url.clone(),
            run.clone(),
            drain.clone(),
            interrupted.clone(),
        );
        Some(tokio::spawn(async move {
            start_consumers(&plan, &url, &run, &drain, false, &interrupted).await
        }))
    } else {
        None
    };
    let rate_each = c.rate as f64 / f64::from(plan.producers);
    let mut producers = Vec::new();
    for id in 0..plan.producers {
        let client = crate::credentials::client(&url).await?;
        producers.push(tokio::spawn(produce_loop(
            client,
            c.clone(),
            run.clone(),
            id,
            rate_each,
        )));
    }
    eprintln!("strata-bench: running; Ctrl-C stops it and reports what was measured");
    let watcher = {
        let (run, interrupted) = (run.clone(), interrupted.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tick.tick().await;
                if interrupted.load(Ordering::Acquire) {
                    run.interrupted.store(true, Ordering::Release);
                    run.stop.store(true, Ordering::Release);
                    return;
                }
            }
        })
    };
    let mut produced = Vec::new();
    for p in producers {
        produced.push(p.await.context("producer task")??);
    }
    let acked: u64 = live.acked.load(Ordering::Acquire);
    drain.expected.store(acked, Ordering::Release);
    drain.producers_done.store(true, Ordering::Release);
    let consumed = match consumers {
        Some(task) => Some(task.await.context("consumer tasks")??),
        None => None,
    };
    watcher.abort();
    progress.finish_and_clear();

    let mut publish_latency = stats::histogram();
    let mut measured = 0;
    let mut measured_bytes = 0;
    let mut last_ack = None;
    let mut errors = 0;
    let mut first_error = None;
    for p in &produced {
        publish_latency.add(&p.latency).ok();
        measured += p.measured;
        measured_bytes += p.measured_bytes;
        last_ack = last_ack.max(p.last_ack);
        errors += p.errors;
        if first_error.is_none() {
            first_error.clone_from(&p.first_error);
        }
    }
    if let Some(e) = &first_error {
        eprintln!("strata-bench: {errors} publishes failed; the first: {e}");
    }
    let publish = Rate {
        messages: measured,
        bytes: measured_bytes,
        seconds: last_ack.map_or(0.0, |t| t.saturating_duration_since(warm_end).as_secs_f64()),
    };
    let acked_bits: Vec<Vec<u64>> = produced.iter().map(|p| p.acked.clone()).collect();
    let (consume, e2e, series, integrity) = match consumed {
        Some(consumed) => {
            let (rate, e2e, series, integrity) = merge_consumed(consumed, &acked_bits, warm_end);
            (Some(rate), Some(e2e), series, Some(integrity))
        }
        None => (None, None, Vec::new(), None),
    };
    let report = Report {
        workload: match plan.kind {
            Kind::Produce => "produce",
            Kind::E2e => "e2e",
            Kind::Consume => "consume",
        },
        params: params(&plan),
        durability: c.durability().1,
        publish: Some(publish),
        publish_errors: errors,
        publish_latency: Some(Latency::of(&publish_latency)),
        consume,
        e2e_latency: e2e.as_ref().map(Latency::of),
        drain_seconds: None,
        integrity,
        interrupted: run.interrupted.load(Ordering::Acquire),
    };
    Ok((report, Some(publish_latency), e2e, series, Vec::new()))
}

fn params(plan: &Plan) -> Vec<(&'static str, String)> {
    let mut p = plan.common.params();
    if plan.kind != Kind::Consume {
        p.push(("producers", plan.producers.to_string()));
    }
    if plan.kind != Kind::Produce {
        p.push(("consumers", plan.consumers.to_string()));
        p.push((
            "group",
            plan.group
                .clone()
                .unwrap_or_else(|| "none (assigned)".into()),
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_distributions_parse_and_refuse_nonsense() {
        assert_eq!("none".parse::<Keys>(), Ok(Keys::None));
        assert_eq!("random".parse::<Keys>(), Ok(Keys::Random));
        assert_eq!("fixed:16".parse::<Keys>(), Ok(Keys::Fixed(16)));
        assert!("fixed:0".parse::<Keys>().is_err());
        assert!("some".parse::<Keys>().unwrap_err().contains("fixed:N"));
    }
}
