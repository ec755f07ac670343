//! Reads every partition of a topic from the beginning and prints records,
//! stopping after a number of them.
//!
//! ```sh
//! cargo run -p strata-client --example consumer -- http://127.0.0.1:7390 orders 10
//! ```

use futures::StreamExt;
use strata_client::{Client, ConsumerConfig, Error, Seek};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let broker = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7390".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    let client = Client::connect(broker).await?;
    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.assign_topic(&topic, Seek::Beginning).await?;
    let mut records = consumer.into_stream().take(count);
    while let Some(record) = records.next().await {
        let r = record?;
        println!(
            "{}/{} @{} key={:?} value={:?}",
            r.topic,
            r.partition,
            r.offset,
            r.key.as_deref().map(String::from_utf8_lossy),
            r.value.as_deref().map(String::from_utf8_lossy),
        );
    }
    Ok(())
}
