//! Starts the real `strata-broker` binary on an ephemeral port with a
//! temporary data directory, and connects generated gRPC clients to it.
//! Shared by the broker's and the client's integration tests (the client's
//! include this file by path: it must not depend on the broker crate).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use bytes::Bytes;
use strata_proto::v1::{self, admin_client::AdminClient, records_client::RecordsClient};
use tonic::transport::Channel;

/// The broker binary: cargo's path to it in the broker's own tests;
/// elsewhere (the client's tests) the one in this target directory, built
/// first if it is not there.
pub fn broker_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_strata-broker") {
        return bin.into();
    }
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // target/<profile>/deps/<test binary> -> target/<profile>/strata-broker
            let exe = std::env::current_exe().unwrap();
            let bin = exe
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("strata-broker");
            if !bin.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let ok = Command::new(cargo)
                    .args(["build", "-p", "strata-broker", "--bin", "strata-broker"])
                    .status()
                    .expect("run cargo build");
                assert!(ok.success(), "building strata-broker failed");
            }
            bin
        })
        .clone()
}

/// A running broker process. Killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct BrokerProcess {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The metrics and probes endpoint, unless started with --no-metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// The Kafka protocol listener, unless started with --no-kafka.
    pub kafka_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    stderr: PathBuf,
    stdout: std::sync::Mutex<std::sync::mpsc::Receiver<String>>,
}

impl BrokerProcess {
    /// Starts a broker on `data_dir` with extra flags.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Self {
        let stderr = data_dir.with_extension(format!("stderr.{}", std::process::id()));
        let mut child = Command::new(broker_bin())
            .arg("--data-dir")
            .arg(data_dir)
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"][..]
            })
            .args(
                if extra.contains(&"--kafka-listen") || extra.contains(&"--no-kafka") {
                    &[][..]
                } else {
                    &["--kafka-listen", "127.0.0.1:0"][..]
                },
            )
            .args(
                if extra.contains(&"--metrics-listen") || extra.contains(&"--no-metrics") {
                    &[][..]
                } else {
                    &["--metrics-listen", "127.0.0.1:0"][..]
                },
            )
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("STRATA_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start strata-broker");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut metrics_addr = None;
        let mut kafka_addr = None;
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("strata-broker metrics on ") {
                        metrics_addr = Some(a.parse().unwrap());
                    }
                    if let Some(a) = line.strip_prefix("strata-broker kafka on ") {
                        kafka_addr = Some(a.parse().unwrap());
                    }
                    if let Some(a) = line.strip_prefix("strata-broker listening on ") {
                        break a.parse().unwrap();
                    }
                }
                _ => panic!(
                    "broker exited before listening: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                ),
            }
        };
        // Keep draining stdout so the broker never blocks on a full pipe;
        // later lines (a TLS reload's) go to `wait_stdout`.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            child: Some(child),
            addr,
            metrics_addr,
            kafka_addr,
            data_dir: data_dir.to_owned(),
            stderr,
            stdout: std::sync::Mutex::new(rx),
        }
    }

    /// GET `path` on the metrics endpoint: the status code and the body.
    /// A few lines of HTTP/1.0 over a socket, so the tests need no HTTP
    /// client crate.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let addr = self.metrics_addr.expect("started with metrics");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (code, body)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connect to broker")
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel().await).max_decoding_message_size(256 << 20)
    }

    pub async fn records(&self) -> RecordsClient<Channel> {
        RecordsClient::new(self.channel().await)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no chance to flush or close anything.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Sends `signal` (`HUP`, ...) without waiting for anything.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// The next line the broker prints on stdout after startup that
    /// starts with `prefix` (others are skipped); panics after 30 s.
    pub fn wait_stdout(&self, prefix: &str) -> String {
        let rx = self.stdout.lock().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(e) => panic!(
                    "no stdout line {prefix:?} from the broker: {e}; {}",
                    self.stderr()
                ),
            }
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        c.wait().unwrap()
    }

    /// Resident memory of the broker process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// Broker flags for tests of retention and compaction: the cleaner runs
/// every 20 ms, and topics may have segments as small as 1 KiB.
pub const FAST_CLEANUP: &[&str] = &[
    "--retention-check-interval-ms",
    "20",
    "--segment-bytes-min",
    "1024",
];

/// Creates a topic, panicking on failure.
pub async fn create_topic(
    admin: &mut AdminClient<Channel>,
    name: &str,
    partitions: u32,
    config: &[(&str, &str)],
) {
    admin
        .create_topic(v1::CreateTopicRequest {
            name: name.into(),
            partitions,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .await
        .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
}

/// A produce request for one partition with one raw batch.
pub fn produce_batch(
    topic: &str,
    partition: u32,
    batch: Bytes,
    acks: v1::Acks,
) -> v1::ProduceRequest {
    v1::ProduceRequest {
        acks: acks as i32,
        topics: vec![v1::TopicProduceData {
            topic: topic.into(),
            partitions: vec![v1::PartitionProduceData {
                partition,
                data: Some(v1::partition_produce_data::Data::Batch(batch)),
            }],
        }],
    }
}

/// A subscription to one partition from its start, in raw batches.
pub fn subscribe_earliest(topic: &str, partition: u32, max_bytes: u32) -> v1::SubscribeRequest {
    v1::SubscribeRequest {
        partitions: vec![v1::SubscribePartition {
            topic: topic.into(),
            partition,
            start: Some(v1::subscribe_partition::Start::Earliest(true)),
        }],
        max_bytes,
        decode: false,
    }
}

/// A fetch request for one partition.
pub fn fetch_one(topic: &str, partition: u32, offset: i64, decode: bool) -> v1::FetchRequest {
    v1::FetchRequest {
        topics: vec![v1::FetchTopic {
            topic: topic.into(),
            partitions: vec![v1::FetchPartition {
                partition,
                offset,
                max_bytes: 0,
            }],
        }],
        max_bytes: 0,
        min_bytes: 0,
        max_wait_ms: 0,
        decode,
    }
}

/// The single partition result of a one-partition response.
pub fn only(resp: v1::FetchResponse) -> v1::FetchPartitionResult {
    resp.topics
        .into_iter()
        .next()
        .unwrap()
        .partitions
        .into_iter()
        .next()
        .unwrap()
}

/// A batch of `n` records with values `"{tag}-{i}"`.
pub fn batch_of(tag: &str, n: usize) -> Bytes {
    let mut b = strata_proto::BatchBuilder::new();
    for i in 0..n {
        b.push(
            1_700_000_000_000 + i as i64,
            None,
            Some(format!("{tag}-{i}").as_bytes()),
            &[],
        );
    }
    b.finish()
}
