//! The report of a run: throughput, latency percentiles, what was lost or
//! duplicated, and the workload that produced them; printed for people,
//! written as JSON for machines, histograms saved for HdrHistogram tools.

use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies are recorded in microseconds, from 1 µs to an hour, at three
/// significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// The percentiles every report gives.
pub const PERCENTILES: &[(&str, f64)] = &[
    ("p50", 50.0),
    ("p90", 90.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p99.99", 99.99),
];

/// A latency distribution's summary, in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// `(name, value)` for each of [`PERCENTILES`].
    pub percentiles_us: Vec<(&'static str, u64)>,
    /// Largest value.
    pub max_us: u64,
}

impl Latency {
    /// Summarises `h`.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            mean_us: h.mean(),
            percentiles_us: PERCENTILES
                .iter()
                .map(|(name, p)| (*name, h.value_at_percentile(*p)))
                .collect(),
            max_us: h.max(),
        }
    }

    fn json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("count".into(), json!(self.count));
        m.insert("mean_us".into(), json!(self.mean_us));
        for (name, v) in &self.percentiles_us {
            m.insert(format!("{name}_us"), json!(v));
        }
        m.insert("max_us".into(), json!(self.max_us));
        Value::Object(m)
    }

    fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        let mut parts: Vec<String> = self
            .percentiles_us
            .iter()
            .map(|(n, v)| format!("{n} {}", ms(*v)))
            .collect();
        parts.push(format!("max {}", ms(self.max_us)));
        format!("{} ms ({} samples)", parts.join("  "), self.count)
    }
}

/// Messages and bytes over a time window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// Messages counted.
    pub messages: u64,
    /// Their bytes (message values).
    pub bytes: u64,
    /// The window they were counted over.
    pub seconds: f64,
}

impl Rate {
    /// Messages per second.
    pub fn messages_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.messages as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Megabytes (10^6) per second.
    pub fn mb_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds / 1e6
        } else {
            0.0
        }
    }

    fn json(&self) -> Value {
        json!({
            "messages": self.messages,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "messages_per_s": self.messages_per_s(),
            "mb_per_s": self.mb_per_s(),
        })
    }
}

/// Whether every message acknowledged to a producer reached a consumer,
/// exactly once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Integrity {
    /// Acknowledged messages (warm-up included).
    pub acknowledged: u64,
    /// Distinct acknowledged messages consumers received.
    pub received: u64,
    /// Acknowledged messages no consumer received.
    pub missing: u64,
    /// Receptions of a message already received.
    pub duplicates: u64,
    /// Messages received that were never acknowledged (a send that failed
    /// but reached the log).
    pub unacknowledged: u64,
}

impl Integrity {
    /// Nothing lost, nothing twice.
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.duplicates == 0
    }
}

/// A run's results.
#[derive(Debug, Clone)]
pub struct Report {
    /// "produce", "consume" or "e2e".
    pub workload: &'static str,
    /// The parameters, as given (for the report and the JSON).
    pub params: Vec<(&'static str, String)>,
    /// Acknowledgement mode and the topic's durability.
    pub durability: String,
    /// Acknowledged publishes after the warm-up.
    pub publish: Option<Rate>,
    /// Failed publishes (after retries).
    pub publish_errors: u64,
    /// From scheduled send to acknowledgement.
    pub publish_latency: Option<Latency>,
    /// Consumed after the warm-up (for `consume`, the whole backlog).
    pub consume: Option<Rate>,
    /// From scheduled send to reception.
    pub e2e_latency: Option<Latency>,
    /// How long draining the backlog took (`consume`).
    pub drain_seconds: Option<f64>,
    /// Loss and duplication, when consumers ran.
    pub integrity: Option<Integrity>,
    /// The run was cut short by Ctrl-C.
    pub interrupted: bool,
}

impl Report {
    /// The report for people.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "strata-bench {}", self.workload);
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "  workload     {}", params.join(" "));
        let _ = writeln!(out, "  durability   {}", self.durability);
        if let Some(r) = &self.publish {
            let _ = writeln!(
                out,
                "  publish      {:.0} msg/s  {:.1} MB/s  ({} messages in {:.2} s, {} errors)",
                r.messages_per_s(),
                r.mb_per_s(),
                r.messages,
                r.seconds,
                self.publish_errors
            );
        }
        if let Some(l) = &self.publish_latency {
            let _ = writeln!(out, "  publish latency  {}", l.line());
        }
        if let Some(r) = &self.consume {
            let _ = writeln!(
                out,
                "  consume      {:.0} msg/s  {:.1} MB/s  ({} messages in {:.2} s)",
                r.messages_per_s(),
                r.mb_per_s(),
                r.messages,
                r.seconds
            );
        }
        if let Some(s) = self.drain_seconds {
            let _ = writeln!(out, "  drain        {s:.2} s for the whole backlog");
        }
        if let Some(l) = &self.e2e_latency {
            let _ = writeln!(out, "  end-to-end latency  {}", l.line());
        }
        if let Some(i) = &self.integrity {
            let verdict = if i.ok() {
                "no message lost or duplicated"
            } else {
                "MESSAGES LOST OR DUPLICATED"
            };
            let _ = writeln!(
                out,
                "  integrity    {verdict}: {} acknowledged, {} received, {} missing, {} duplicates, {} unacknowledged",
                i.acknowledged, i.received, i.missing, i.duplicates, i.unacknowledged
            );
        }
        if self.interrupted {
            let _ = writeln!(
                out,
                "  (interrupted: these are the figures measured until Ctrl-C)"
            );
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let params: serde_json::Map<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({
            "workload": self.workload,
            "params": params,
            "durability": self.durability,
            "publish": self.publish.map(|r| r.json()),
            "publish_errors": self.publish_errors,
            "publish_latency": self.publish_latency.as_ref().map(Latency::json),
            "consume": self.consume.map(|r| r.json()),
            "e2e_latency": self.e2e_latency.as_ref().map(Latency::json),
            "drain_seconds": self.drain_seconds,
            "integrity": self.integrity.map(|i| json!({
                "ok": i.ok(),
                "acknowledged": i.acknowledged,
                "received": i.received,
                "missing": i.missing,
                "duplicates": i.duplicates,
                "unacknowledged": i.unacknowledged,
            })),
            "interrupted": self.interrupted,
        })
    }

    /// Writes the JSON to `path` (`-`: standard output).
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.json())?;
        if path == Path::new("-") {
            println!("{text}");
            Ok(())
        } else {
            std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
        }
    }
}

/// Writes `h` as HdrHistogram's percentile distribution text (`.hgrm`, in
/// milliseconds), the format HdrHistogram's plotters read.
pub fn write_hgrm(h: &Histogram<u64>, path: &Path) -> anyhow::Result<()> {
    use std::fmt::Write;
    let mut out = String::new();
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let inverse = if q < 1.0 {
            1.0 / (1.0 - q)
        } else {
            f64::INFINITY
        };
        writeln!(
            out,
            "{:>12.3} {:>14.12} {:>10} {:>14.2}",
            v.value_iterated_to() as f64 / 1000.0,
            q,
            v.count_since_last_iteration(),
            inverse
        )?;
    }
    writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    )?;
    writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    )?;
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set() {
        // 1..=10 000 µs, once each: the p-th percentile is p% of 10 000.
        let mut h = histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 10_000);
        let close = |got: u64, want: u64| got.abs_diff(want) <= want / 1000 + 1;
        for ((name, got), want) in l
            .percentiles_us
            .iter()
            .zip([5_000, 9_000, 9_900, 9_990, 9_999])
        {
            assert!(close(*got, want), "{name}: {got} is not {want}");
        }
        assert!(close(l.max_us, 10_000));
        assert!((l.mean_us - 5_000.5).abs() < 10.0, "{}", l.mean_us);
    }

    #[test]
    fn one_slow_outlier_shows_only_in_the_high_percentiles() {
        let mut h = histogram();
        for _ in 0..999 {
            h.record(100).unwrap();
        }
        h.record(1_000_000).unwrap();
        let l = Latency::of(&h);
        let p = |n: &str| l.percentiles_us.iter().find(|(k, _)| *k == n).unwrap().1;
        assert_eq!(p("p50"), 100);
        assert_eq!(p("p99"), 100);
        assert!(p("p99.99") >= 999_000);
        assert!(l.max_us >= 999_000);
    }

    #[test]
    fn rates_and_integrity() {
        let r = Rate {
            messages: 3_000,
            bytes: 3_072_000,
            seconds: 1.5,
        };
        assert_eq!(r.messages_per_s(), 2_000.0);
        assert!((r.mb_per_s() - 2.048).abs() < 1e-9);
        assert_eq!(Rate::default().mb_per_s(), 0.0);
        assert!(Integrity::default().ok());
        assert!(
            !Integrity {
                missing: 1,
                ..Integrity::default()
            }
            .ok()
        );
    }
}
