//! Printing a workload's results, the same way for every workload.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Prints throughput from `ops` operations of `op_bytes` bytes holding
/// `op_records` records each over `elapsed`, and the latency percentiles
/// of `hist` (microseconds). `op` names an operation ("append", "request").
pub fn throughput_and_latency(
    op: &str,
    hist: &Histogram<u64>,
    op_bytes: u64,
    op_records: u64,
    elapsed: Duration,
) {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let ops = hist.len();
    println!(
        "  throughput {:.1} MB/s, {:.0} records/s, {:.0} {op}s/s over {secs:.2} s",
        (ops * op_bytes) as f64 / secs / 1e6,
        (ops * op_records) as f64 / secs,
        ops as f64 / secs,
    );
    println!(
        "  {op} latency us: p50 {} p90 {} p99 {} p99.9 {} max {}",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max()
    );
}
