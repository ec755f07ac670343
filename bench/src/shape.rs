//! The shape of the load every workload sends: fixed-size records in
//! batches of a fixed count, a fixed total.

use bytes::Bytes;
use strata_proto::BatchBuilder;

/// Record size, batch size and amount, shared by the workloads' flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_records: usize,
    /// Bytes of batches to send after a warm-up of a tenth as much.
    #[arg(long, default_value_t = 4 << 30)]
    pub total_bytes: u64,
}

impl Shape {
    /// Refuses shapes that cannot run.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.batch_records == 0 || self.record_bytes == 0 || self.total_bytes == 0 {
            anyhow::bail!("--batch-records, --record-bytes and --total-bytes must be at least 1");
        }
        Ok(())
    }

    /// One batch of this shape (values are a fixed, non-zero pattern).
    pub fn batch(&self) -> Bytes {
        let mut b = BatchBuilder::with_capacity(self.batch_records * (self.record_bytes + 16));
        let value: Vec<u8> = (0..self.record_bytes)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for i in 0..self.batch_records {
            b.push(1_700_000_000_000 + i as i64, None, Some(&value), &[]);
        }
        b.finish()
    }
}
