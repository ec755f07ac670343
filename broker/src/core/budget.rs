//! The broker-wide budget of response memory: bytes that fetch answers and
//! queued subscription messages may hold at once (`response_bytes_max`).
//!
//! Reads copy batches into heap buffers, so without a bound the memory a
//! broker holds for answers is requests × `fetch_bytes_max` (fetches) or
//! subscriptions × buffered messages × message size (slow subscribers):
//! hundreds of GB. Every read first reserves the most it may return, gives
//! back what it did not use, and keeps the rest until its bytes leave: a
//! fetch until it answers, a subscription message until the stream hands it
//! to the transport. A read that cannot reserve waits (backpressure, as
//! Kafka's `queued.max.request.bytes` pool does), it is never refused: every
//! holder finishes, within a fetch's `max_wait_ms` or a client's read.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: permits count KiB, so a budget of terabytes still
/// fits tokio's `u32` acquisitions.
const UNIT_BYTES: u64 = 1024;

/// The shared budget.
#[derive(Debug, Clone)]
pub struct ResponseBudget {
    permits: Arc<Semaphore>,
    units_max: u32,
}

/// Bytes held against the budget; dropping it gives them back.
#[derive(Debug, Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

fn units(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(UNIT_BYTES)
}

impl ResponseBudget {
    /// A budget of `bytes_max` bytes (at least one unit).
    pub fn new(bytes_max: u64) -> Self {
        let units_max = units(bytes_max as usize).clamp(1, u64::from(u32::MAX >> 3)) as u32;
        Self {
            permits: Arc::new(Semaphore::new(units_max as usize)),
            units_max,
        }
    }

    /// Waits until `bytes` may be held (at most the whole budget: a read
    /// larger than it waits for everything, and then goes on alone).
    pub async fn reserve(&self, bytes: usize) -> Held {
        let n = units(bytes).min(u64::from(self.units_max)) as u32;
        if n == 0 {
            return Held(None);
        }
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphore is never closed");
        Held(Some(permit))
    }

    /// Bytes held now, across the broker.
    pub fn held_bytes(&self) -> u64 {
        (u64::from(self.units_max) - self.permits.available_permits() as u64) * UNIT_BYTES
    }
}

impl Held {
    /// Gives back all but `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = units(bytes) as usize;
        if let Some(p) = &mut self.0 {
            if keep == 0 {
                self.0 = None;
            } else if p.num_permits() > keep {
                drop(p.split(p.num_permits() - keep));
            }
        }
    }

    /// Holds `other`'s bytes too, until this is dropped.
    pub fn merge(&mut self, other: Held) {
        match (&mut self.0, other.0) {
            (Some(p), Some(o)) => p.merge(o),
            (None, o) => self.0 = o,
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_come_back_when_shrunk_or_dropped() {
        let budget = ResponseBudget::new(10 * 1024);
        let mut a = budget.reserve(8 * 1024).await;
        assert_eq!(budget.held_bytes(), 8 * 1024);
        a.shrink_to(1500);
        assert_eq!(budget.held_bytes(), 2 * 1024, "rounded up to whole KiB");
        let b = budget.reserve(8 * 1024).await;
        a.merge(b);
        assert_eq!(budget.held_bytes(), 10 * 1024);
        // Full: a further reservation waits until the bytes come back.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(4 * 1024).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        let c = waiting.await.unwrap();
        assert_eq!(budget.held_bytes(), 4 * 1024);
        drop(c);
        // Larger than the budget: clamped, so it does not wait forever.
        let all = budget.reserve(1 << 30).await;
        assert_eq!(budget.held_bytes(), 10 * 1024);
        drop(all);
        assert_eq!(budget.held_bytes(), 0);
    }
}
