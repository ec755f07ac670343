//! A small stream processor: reads a topic, upper-cases each value, and
//! writes the result to another topic with the same key (so per-key order
//! is kept), for as long as it runs.
//!
//! ```sh
//! cargo run -p strata-client --example stream_processor -- http://127.0.0.1:7390 orders orders-upper
//! ```

use futures::StreamExt;
use strata_client::{Client, ConsumerConfig, Error, ProducerConfig, ProducerRecord, Seek};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let broker = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7390".into());
    let input = args.next().unwrap_or_else(|| "orders".into());
    let output = args.next().unwrap_or_else(|| format!("{input}-upper"));

    let client = Client::connect(broker).await?;
    let partitions = client
        .admin()
        .describe_topic(&input)
        .await?
        .partitions
        .len() as u32;
    match client.admin().create_topic(&output, partitions, &[]).await {
        Ok(_)
        | Err(Error::Status {
            code: tonic::Code::AlreadyExists,
            ..
        }) => {}
        Err(e) => return Err(e),
    }

    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.assign_topic(&input, Seek::Beginning).await?;
    let producer = client.producer(ProducerConfig::default());
    let mut records = consumer.into_stream();
    while let Some(record) = records.next().await {
        let r = record?;
        let mut out = ProducerRecord::new(&output);
        out.key = r.key.clone();
        out.value = r.value.map(|v| v.to_ascii_uppercase().into());
        out.headers = r.headers;
        // Await each delivery before moving on: a crash never loses a
        // record that was read but not yet written (at-least-once).
        let m = producer.send_and_wait(out).await?;
        println!(
            "{}/{}@{} -> {}/{}@{}",
            r.topic, r.partition, r.offset, m.topic, m.partition, m.offset
        );
    }
    producer.close().await
}
