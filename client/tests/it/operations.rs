//! What an operator relies on, against the real broker: the Prometheus
//! endpoint's figures move as traffic does, the probes answer, and the
//! recovery counters describe the last startup.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{BrokerProcess, batch_of, produce_batch};
use strata_client::proto::v1;
use strata_client::{Client, ConsumerConfig, OffsetReset};

/// The value of series `name` whose labels include `labels`, in the
/// Prometheus text format.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let found: BTreeMap<&str, &str> = rest
                .trim_end_matches('}')
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            labels
                .iter()
                .all(|(k, v)| found.get(k) == Some(v))
                .then(|| value.parse().ok())?
        })
}

fn scrape(b: &BrokerProcess) -> String {
    let (code, body) = b.http_get("/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_traffic_and_probes_answer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut b = BrokerProcess::start_in(&data, &[]);
    assert_eq!(b.http_get("/healthz"), (200, "ok\n".into()));
    assert_eq!(b.http_get("/readyz"), (200, "ready\n".into()));
    assert_eq!(b.http_get("/nope").0, 404);

    let client = Client::connect(b.url()).await.unwrap();
    client.admin().create_topic("t", 2, &[]).await.unwrap();
    let mut records = b.records().await;
    let first = batch_of("a", 10);
    records
        .produce(produce_batch("t", 0, first.clone(), v1::Acks::Durable))
        .await
        .unwrap();
    let before = scrape(&b);
    let bytes_in = |text: &str| metric(text, "strata_topic_bytes_in_total", &[("topic", "t")]);
    let records_in = |text: &str| metric(text, "strata_topic_records_in_total", &[("topic", "t")]);
    assert_eq!(bytes_in(&before), Some(first.len() as f64));
    assert_eq!(records_in(&before), Some(10.0));

    // Bytes in grow by exactly what was produced.
    let second = batch_of("b", 25);
    records
        .produce(produce_batch("t", 1, second.clone(), v1::Acks::Durable))
        .await
        .unwrap();
    let after = scrape(&b);
    assert_eq!(
        bytes_in(&after).unwrap() - bytes_in(&before).unwrap(),
        second.len() as f64
    );
    assert_eq!(records_in(&after), Some(35.0));
    let p1 = [("topic", "t"), ("partition", "1")];
    assert_eq!(
        metric(&after, "strata_partition_end_offset", &p1),
        Some(25.0)
    );
    assert_eq!(metric(&after, "strata_partition_segments", &p1), Some(1.0));
    assert!(metric(&after, "strata_partition_size_bytes", &p1).unwrap() >= second.len() as f64);
    let produce = [("rpc", "strata.v1.Records/Produce")];
    assert_eq!(
        metric(&after, "strata_rpc_requests_total", &produce),
        Some(2.0)
    );
    assert!(metric(&after, "strata_rpc_duration_seconds_count", &produce).unwrap() >= 2.0);
    assert!(metric(&after, "strata_fsync_duration_seconds_count", &[]).unwrap() >= 2.0);
    assert_eq!(
        metric(&after, "strata_produce_batch_bytes_count", &[]),
        Some(2.0)
    );
    assert!(metric(&after, "strata_connections_active", &[]).unwrap() >= 1.0);

    // Errors are counted by RPC and code.
    let err = records
        .produce(produce_batch("nope", 0, first.clone(), v1::Acks::Durable))
        .await
        .unwrap()
        .into_inner();
    assert!(err.topics[0].partitions[0].error.is_some());
    client.admin().describe_topic("nope").await.unwrap_err();
    let text = scrape(&b);
    let describe_errors = [
        ("rpc", "strata.v1.Admin/DescribeTopic"),
        ("code", "NotFound"),
    ];
    assert_eq!(
        metric(&text, "strata_rpc_errors_total", &describe_errors),
        Some(1.0)
    );

    // A group: lag appears with a partial commit and falls to zero.
    let mut c = client.consumer(ConsumerConfig {
        auto_commit: false,
        offset_reset: OffsetReset::Earliest,
        fetch_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    });
    c.subscribe("g", &["t"]).await.unwrap();
    let mut got = 0;
    while got < 35 {
        got += c.poll().await.unwrap().len();
    }
    c.commit_offsets(&[("t".into(), 0, 4), ("t".into(), 1, 5)])
        .await
        .unwrap();
    let text = scrape(&b);
    let lag = |text: &str, p: &str| {
        metric(
            text,
            "strata_group_lag",
            &[("group", "g"), ("topic", "t"), ("partition", p)],
        )
    };
    assert_eq!((lag(&text, "0"), lag(&text, "1")), (Some(6.0), Some(20.0)));
    assert_eq!(
        metric(&text, "strata_group_members", &[("group", "g")]),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "strata_topic_records_out_total", &[("topic", "t")]),
        Some(35.0)
    );
    c.commit().await.unwrap();
    let text = scrape(&b);
    assert_eq!((lag(&text, "0"), lag(&text, "1")), (Some(0.0), Some(0.0)));
    c.close().await.unwrap();

    // After a restart the recovery counters describe that startup.
    assert!(b.terminate().success());
    let b = BrokerProcess::start_in(&data, &[]);
    let text = scrape(&b);
    assert_eq!(
        metric(
            &text,
            "strata_recovery_partitions_total",
            &[("clean", "true")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, "strata_recovery_truncated_bytes_total", &[]),
        Some(0.0)
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        metric(&text, "strata_build_info", &[("version", version)]),
        Some(1.0)
    );
}

#[test]
fn the_broker_reports_its_version() {
    let out = std::process::Command::new(crate::support::broker_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("strata-broker {}", env!("CARGO_PKG_VERSION"))
    );
}
