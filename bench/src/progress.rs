//! The live progress line: elapsed time and the current publish and
//! consume rates, redrawn a few times a second on a terminal, silent
//! otherwise (indicatif hides itself when standard error is not a tty).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::workload::Live;

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(250);

/// Starts the line; `finish_and_clear` it when the run ends.
pub fn start(live: Arc<Live>) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .expect("a valid template"),
    );
    let weak = bar.downgrade();
    std::thread::Builder::new()
        .name("strata-bench-progress".into())
        .spawn(move || {
            let mut last = (Instant::now(), 0u64, 0u64, 0u64);
            while let Some(bar) = weak.upgrade() {
                std::thread::sleep(TICK);
                let now = Instant::now();
                let acked = live.acked.load(Ordering::Relaxed);
                let acked_bytes = live.acked_bytes.load(Ordering::Relaxed);
                let received = live.received.load(Ordering::Relaxed);
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "publish {:>9.0} msg/s {:>8.1} MB/s | consume {:>9.0} msg/s | acked {acked} received {received}",
                    (acked - last.1) as f64 / secs,
                    (acked_bytes - last.2) as f64 / secs / 1e6,
                    (received.saturating_sub(last.3)) as f64 / secs,
                ));
                bar.tick();
                last = (now, acked, acked_bytes, received);
            }
        })
        .ok();
    bar
}
