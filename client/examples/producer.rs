//! Produces records with keys to a topic and prints where each one landed.
//!
//! ```sh
//! cargo run --release --bin strata-broker &
//! cargo run -p strata-client --example producer -- http://127.0.0.1:7390 orders 10
//! ```

use strata_client::{Client, Error, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let broker = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7390".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    let client = Client::connect(broker).await?;
    match client.admin().create_topic(&topic, 3, &[]).await {
        Ok(_) => println!("created topic {topic}"),
        Err(Error::Status {
            code: tonic::Code::AlreadyExists,
            ..
        }) => {}
        Err(e) => return Err(e),
    }

    let producer = client.producer(ProducerConfig::default());
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let record = ProducerRecord::new(&topic)
            .key(format!("customer-{}", i % 4))
            .value(format!("order {i}"))
            .header("source", "example");
        // `send` returns once the record is buffered; the future resolves
        // when the broker has fsynced it.
        deliveries.push(producer.send(record).await?);
    }
    for d in deliveries {
        let m = d.await?;
        println!("{}/{} offset {}", m.topic, m.partition, m.offset);
    }
    producer.close().await
}
