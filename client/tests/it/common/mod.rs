//! Helpers shared by the client's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use strata_client::{Client, ConsumerConfig, Seek};

/// Reads partition 0 of `topic` from its start to its high watermark.
pub async fn read_everything(client: &Client, topic: &str) -> Vec<strata_client::ConsumerRecord> {
    let end = client
        .admin()
        .list_offset(topic, 0, strata_client::OffsetSpec::Latest)
        .await
        .unwrap()
        .unwrap();
    let mut c = client.consumer(ConsumerConfig {
        fetch_wait: Duration::from_millis(10),
        ..ConsumerConfig::default()
    });
    c.assign(topic, 0, Seek::Beginning).await.unwrap();
    let mut out = Vec::new();
    while c.position(topic, 0).unwrap() < end {
        out.extend(c.poll().await.unwrap());
    }
    out
}
